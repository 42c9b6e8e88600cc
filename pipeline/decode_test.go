package pipeline

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		ndjson    bool
		events    int
		rejected  []int
		syntaxErr bool
		tooMany   bool
	}{
		{"array", `[{"user_id":"u","item_id":"i","type":"view"},{"user_id":"v","item_id":"j","type":"click"}]`, false, 2, nil, false, false},
		{"single object", `{"user_id":"u","item_id":"i","type":"view"}`, false, 1, nil, false, false},
		{"wrong field type rejects one", `[{"user_id":5,"item_id":"i","type":"view"},{"user_id":"u","item_id":"i","type":"view"}]`, false, 2, []int{0}, false, false},
		{"non-object element", `[1, {"user_id":"u","item_id":"i","type":"view"}]`, false, 2, []int{0}, false, false},
		{"bad timestamp rejects one", `[{"user_id":"u","item_id":"i","type":"view","timestamp":"yesterday"}]`, false, 1, []int{0}, false, false},
		{"numeric timestamp", `[{"user_id":"u","item_id":"i","type":"view","timestamp":1714557600}]`, false, 1, nil, false, false},
		{"broken JSON", `[{"user_id":`, false, 0, nil, true, false},
		{"trailing garbage", `[] x`, false, 0, nil, true, false},
		{"not an array", `"hello"`, false, 0, nil, true, false},
		{"empty body", ``, false, 0, nil, true, false},
		{"too many", `[{},{},{},{}]`, false, 0, nil, false, true},
		{"ndjson", "{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"view\"}\n\n{\"user_id\":\"v\",\"item_id\":\"i\",\"type\":\"view\"}\n", true, 2, nil, false, false},
		{"ndjson bad line rejects one", "{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"view\"}\nnot json\n", true, 2, []int{1}, false, false},
		{"ndjson empty", "\n\n", true, 0, nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rej, err := Decode(strings.NewReader(tt.body), tt.ndjson, 3)
			var se *SyntaxError
			switch {
			case tt.syntaxErr:
				if !errors.As(err, &se) {
					t.Fatalf("want a SyntaxError, got %v", err)
				}
				return
			case tt.tooMany:
				if !errors.Is(err, ErrTooManyEvents) {
					t.Fatalf("want ErrTooManyEvents, got %v", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if len(got) != tt.events {
				t.Fatalf("got %d events, want %d", len(got), tt.events)
			}
			var idx []int
			for _, r := range rej {
				idx = append(idx, r.Index)
				if r.Reason == "" {
					t.Errorf("rejection %d has no reason", r.Index)
				}
			}
			if len(idx) != len(tt.rejected) {
				t.Fatalf("rejected %v, want %v", idx, tt.rejected)
			}
			for i := range idx {
				if idx[i] != tt.rejected[i] {
					t.Fatalf("rejected %v, want %v", idx, tt.rejected)
				}
			}
		})
	}
}

// sameAsStream fails unless Decode's answer for body is the one of the
// streaming encoding/json path alone (decodeArray is only a faster way to
// the same events, rejections and errors).
func sameAsStream(t *testing.T, body []byte, max int, inputs []event.Input, rej []Rejection, err error) {
	t.Helper()
	wi, wr, werr := decodeStream(bytes.NewReader(body), max)
	if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
		t.Fatalf("%q: error %v, the stream's %v", body, err, werr)
	}
	if !reflect.DeepEqual(inputs, wi) || !reflect.DeepEqual(rej, wr) {
		t.Fatalf("%q:\n got %+v %+v\nwant %+v %+v", body, inputs, rej, wi, wr)
	}
}

// TestDecodeFastPathMatchesStream: well-formed arrays take the one-pass
// parser, everything else the streaming decoder; both answer alike.
func TestDecodeFastPathMatchesStream(t *testing.T) {
	for _, body := range []string{
		`[]`, ` [ ] `, `[{"user_id":"u","item_id":"i","type":"view"}]`,
		`[{"user_id":"u","item_id":"i","type":"view","value":2.5,"timestamp":1714557600,"context":{"device":"tv","n":[1,2]}},{"user_id":5},[],null,"s",{"user_id":"u","type":"view","foo":1}]`,
		`[{"user_id":"u","type":"view","timestamp":"2024-05-01T10:00:00Z"},{"user_id":"u","type":"view","timestamp":"2024-05-01T10:00:00\u005a"}]`,
		`[{"user_id":"\u00e9t\u00e9","type":"view"}]`,
		`[{"user_id":"u","type":"view"},]`, `[{"user_id":"u","type":"view"}`, `[{"user_id":"u","type":"view"}] x`, `[{"user_id":"u",}]`,
		`{"user_id":"u","type":"view"}`, ``, `   `, `nul`, `[1,2,3,4,5]`,
	} {
		inputs, rej, err := Decode(strings.NewReader(body), false, 4)
		sameAsStream(t, []byte(body), 4, inputs, rej, err)
	}
}

// FuzzDecode feeds arbitrary bodies to the decoder and the pipeline: nothing
// may panic, and every event is either rejected with a reason or valid.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`[{"user_id":"u","item_id":"i","type":"view","value":1,"timestamp":"2024-01-01T00:00:00Z","context":{"a":1}}]`), false)
	f.Add([]byte(`{"user_id":"u","type":"search","context":{"query":"q"}}`), false)
	f.Add([]byte("{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"watch\",\"value\":0.3}\nxx\n"), true)
	f.Add([]byte(`[{"user_id":5},[],null,"s"]`), false)
	tb, _ := event.Preset(event.PresetVideo)
	p := New(DefaultConfig(tb))
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		inputs, rej, err := Decode(bytes.NewReader(body), ndjson, 100)
		if !ndjson {
			sameAsStream(t, body, 100, inputs, rej, err)
		}
		if err != nil {
			return
		}
		bad := map[int]bool{}
		for _, r := range rej {
			if r.Reason == "" {
				t.Fatalf("rejection without a reason: %+v", r)
			}
			bad[r.Index] = true
		}
		for i := range inputs {
			if bad[i] {
				continue
			}
			ev, err := p.Process(&inputs[i], time.Now())
			if err != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Reason == "" {
					t.Fatalf("error without field and reason: %v", err)
				}
				continue
			}
			if ev.User == "" || ev.Type == event.TypeUnknown {
				t.Fatalf("accepted an event without user or type: %+v", ev)
			}
		}
	})
}

// TestDecodeRejectionReasons names the field and what was wrong with it, for
// every kind of value in the wrong place.
func TestDecodeRejectionReasons(t *testing.T) {
	for _, c := range []struct{ body, field, reason string }{
		{`{"user_id":5,"type":"view"}`, "user_id", "user_id must be a JSON string, not number"},
		{`{"user_id":"u","type":["a"]}`, "type", "type must be a JSON string, not array"},
		{`{"user_id":"u","type":"view","event_id":{"x":1}}`, "event_id", "event_id must be a JSON string, not object"},
		{`{"user_id":"u","type":"view","item_id":true}`, "item_id", "item_id must be a JSON string, not bool"},
		{`{"user_id":"u","type":"view","value":"x"}`, "value", "value must be a JSON number, not string"},
		{`{"user_id":"u","type":"view","value":1e400}`, "value", "value must be a JSON number, not a number out of range"},
		{`{"user_id":"u","type":"view","foo":1}`, "foo", "unknown field; an event has event_id, user_id, item_id, type, value, timestamp and context (put anything else in context)"},
		{`{"user_id":"u","type":"view","timestamp":"bad"}`, "", `timestamp "bad": want RFC 3339 text or Unix seconds`},
	} {
		_, rej, err := Decode(strings.NewReader("["+c.body+"]"), false, 10)
		if err != nil || len(rej) != 1 {
			t.Fatalf("%s: rejections %+v, err %v", c.body, rej, err)
		}
		if rej[0].Field != c.field || rej[0].Reason != c.reason {
			t.Errorf("%s: field %q reason %q, want %q %q", c.body, rej[0].Field, rej[0].Reason, c.field, c.reason)
		}
	}
}
