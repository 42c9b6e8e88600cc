package event

import (
	"encoding/json"
	"testing"
	"time"
)

func TestTimestampForms(t *testing.T) {
	want := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, in := range []string{`"2024-05-01T10:00:00Z"`, `"2024-05-01T12:00:00+02:00"`, `1714557600`, `"1714557600"`, `1714557600.0`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !ts.Equal(want) {
			t.Fatalf("%s: got %v", in, ts.Time)
		}
	}
	for _, in := range []string{`"yesterday"`, `true`, `1e300`, `"NaN"`, `{}`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err == nil {
			t.Fatalf("%s: accepted as %v", in, ts.Time)
		}
	}
}

func TestParseTypeAndPresets(t *testing.T) {
	for _, name := range []string{"view", "favourite", "add_to_cart", "rate"} {
		if _, ok := ParseType(name); !ok {
			t.Errorf("%s not recognised", name)
		}
	}
	if _, ok := ParseType("unknown"); ok {
		t.Error("unknown must not parse")
	}
	if _, err := Preset("casino"); err == nil {
		t.Error("unknown preset accepted")
	}
	for _, p := range Presets() {
		tb, err := Preset(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tb.Rule(Search); !ok {
			t.Errorf("%s: no search", p)
		}
	}
}

func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{`"2024-05-01T10:00:00Z"`, `1714557600.25`, `"x"`, `-5`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ts Timestamp
		if err := ts.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := ts.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Timestamp
		if err := json.Unmarshal(out, &back); err != nil || !back.Equal(ts.Time) {
			t.Fatalf("%s → %s → %v (%v)", b, out, back.Time, err)
		}
	})
}
