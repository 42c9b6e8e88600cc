package experiment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/snapshot"
)

func defRec(d Definition, reassign bool) event.Record {
	return event.Record{Kind: event.KindExperiment, Doc: Record(d, reassign)}
}

func imp(user, rec string, at time.Time, items ...string) event.Record {
	return event.Record{Kind: event.KindImpression, Impression: event.Impression{RecommendationID: rec, User: user, Items: items, Time: at}}
}

func ev(user, item string, typ event.Type, at time.Time, value float64, ctx string) event.Record {
	e := event.Event{User: user, Item: item, Type: typ, Time: at, Value: value, Weight: 1}
	if ctx != "" {
		e.Context = json.RawMessage(ctx)
	}
	return event.Record{Kind: event.KindEvent, Event: e}
}

// userIn finds a user id that the experiment puts in group g.
func userIn(t *testing.T, tr *Tracker, name string, g string) string {
	t.Helper()
	for i := range 10000 {
		u := fmt.Sprintf("u%d", i)
		for _, a := range tr.Assign(u, t0.Add(time.Hour), nil) {
			if a.Experiment == name && a.Variant == g {
				return u
			}
		}
	}
	t.Fatalf("no user in %s/%s", name, g)
	return ""
}

func figures(t *testing.T, tr *Tracker, name string) map[string]Figures {
	t.Helper()
	res, ok := tr.Results(name, t0.Add(48*time.Hour))
	if !ok {
		t.Fatalf("no results for %s", name)
	}
	out := map[string]Figures{}
	for _, f := range res.Variants {
		out[f.Variant] = f
	}
	if res.Holdout != nil {
		out[HoldoutName] = *res.Holdout
	}
	return out
}

func TestAttribution(t *testing.T) {
	tr := New(DefaultConfig())
	d := def("a", 0.5, 0.5)
	d.Holdout = 0.2
	tr.Record(ptrRec(defRec(d, false)))
	ctl, trt, hold := userIn(t, tr, "a", "v0"), userIn(t, tr, "a", "v1"), userIn(t, tr, "a", HoldoutName)
	at := t0.Add(time.Hour)
	recs := []event.Record{
		ev(ctl, "old", event.View, at.Add(-2*time.Hour), 1, ""),                         // before the start: the CUPED covariate
		imp(ctl, "r1", at, "x", "y", "z"),                                               // 3 impressions
		ev(ctl, "x", event.Click, at.Add(10*time.Minute), 1, ""),                        // within 30 min: a click
		ev(ctl, "x", event.View, at.Add(11*time.Minute), 1, ""),                         // the same shown item again: no second click
		ev(ctl, "y", event.Click, at.Add(31*time.Minute), 1, ""),                        // past the click window: not attributed
		ev(ctl, "z", event.Purchase, at.Add(20*time.Hour), 25, ""),                      // within 24 h: a click and a conversion worth 25
		ev(ctl, "w", event.Click, at.Add(time.Minute), 1, ""),                           // never shown
		imp(trt, "r2", at, "x", "y"),                                                    // 2 impressions
		ev(trt, "y", event.Click, at.Add(2*time.Hour), 1, `{"recommendation_id":"r2"}`), // named: attributed past the window
		ev(trt, "x", event.Click, at.Add(time.Minute), 1, `{"recommendation_id":"zz"}`), // names another answer: not attributed
		imp(hold, "r3", at, "x"),
		ev(hold, "x", event.Purchase, at.Add(time.Minute), 5, ""),
	}
	for i := range recs {
		tr.Record(&recs[i])
	}
	f := figures(t, tr, "a")
	want := map[string]Figures{
		"v0":        {Variant: "v0", Share: 0.5, Users: 1, Impressions: 3, Clicks: 2, Conversions: 1, Value: 25},
		"v1":        {Variant: "v1", Share: 0.5, Users: 1, Impressions: 2, Clicks: 1},
		HoldoutName: {Variant: HoldoutName, Share: 0.2, Users: 1, Impressions: 1, Clicks: 1, Conversions: 1, Value: 5},
	}
	for g, w := range want {
		got := f[g]
		got.CTR, got.ConversionsPerUser, got.ValuePerUser = 0, 0, 0
		if got != w {
			t.Errorf("%s: got %+v, want %+v", g, got, w)
		}
	}
	if got := float64(f["v0"].CTR); got != 2.0/3 {
		t.Errorf("v0 CTR %v, want 2/3", got)
	}
	if got := tr.users[ctl].Members[0].Pre; got != 1 {
		t.Errorf("the control user's events before the start: %v, want 1", got)
	}
}

func ptrRec(r event.Record) *event.Record { return &r }

func TestStoppedExperimentCountsNothingNew(t *testing.T) {
	tr := New(DefaultConfig())
	d := def("s", 0.5, 0.5)
	tr.Record(ptrRec(defRec(d, false)))
	u := userIn(t, tr, "s", "v0")
	stopped := d
	stopped.State = Stopped
	tr.Record(ptrRec(defRec(stopped, false)))
	if as := tr.Assign(u, t0.Add(time.Hour), nil); len(as) != 0 {
		t.Fatalf("a stopped experiment assigns %v", as)
	}
	tr.Record(ptrRec(imp(u, "r", t0.Add(time.Hour), "x")))
	if f := figures(t, tr, "s"); f["v0"].Users != 0 {
		t.Fatalf("an impression after the stop counted: %+v", f["v0"])
	}
}

func TestOverlappingExperiments(t *testing.T) {
	tr := New(DefaultConfig())
	tr.Record(ptrRec(defRec(def("one", 0.5, 0.5), false)))
	tr.Record(ptrRec(defRec(def("two", 0.5, 0.5), false)))
	u := "someone"
	as := tr.Assign(u, t0.Add(time.Hour), nil)
	if len(as) != 2 || as[0].Experiment != "one" || as[1].Experiment != "two" {
		t.Fatalf("assignments %v, want one then two", as)
	}
	tr.Record(ptrRec(imp(u, "r", t0.Add(time.Hour), "x")))
	tr.Record(ptrRec(ev(u, "x", event.Click, t0.Add(time.Hour+time.Minute), 1, "")))
	for _, name := range []string{"one", "two"} {
		f := figures(t, tr, name)
		if f[as[0].Variant].Clicks+f["v0"].Clicks+f["v1"].Clicks == 0 {
			t.Fatalf("%s did not count the click", name)
		}
	}
}

// The tracker is a deterministic consumer of the log: replaying the same
// records, or restoring a snapshot and replaying the rest, gives the same
// state.
func TestReplayAndSnapshot(t *testing.T) {
	var recs []event.Record
	d := def("r", 0.4, 0.6)
	d.Traffic = ptr(0.5)
	recs = append(recs, defRec(d, false))
	at := t0.Add(time.Hour)
	for i := range 400 {
		u := fmt.Sprintf("u%d", i%97)
		it := fmt.Sprintf("i%d", i%13)
		recs = append(recs, imp(u, fmt.Sprintf("r%d", i), at.Add(time.Duration(i)*time.Second), it, "j"))
		if i%3 == 0 {
			recs = append(recs, ev(u, it, event.Click, at.Add(time.Duration(i)*time.Second+time.Minute), 1, ""))
		}
		if i%7 == 0 {
			recs = append(recs, ev(u, it, event.Purchase, at.Add(time.Duration(i)*time.Second+time.Hour), float64(i), ""))
		}
		if i == 200 {
			up := d
			up.Traffic = ptr(1.0)
			recs = append(recs, defRec(up, false))
		}
	}
	whole := New(DefaultConfig())
	for i := range recs {
		whole.Record(&recs[i])
	}
	half := New(DefaultConfig())
	for i := range recs[:len(recs)/2] {
		half.Record(&recs[i])
	}
	var buf bytes.Buffer
	enc := snapshot.NewEncoder(&buf)
	half.Encode(enc)
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	restored := New(DefaultConfig())
	dec := snapshot.NewDecoder(&buf, int64(buf.Len()))
	restored.Decode(dec)
	if err := dec.Err(); err != nil {
		t.Fatal(err)
	}
	for i := len(recs) / 2; i < len(recs); i++ {
		restored.Record(&recs[i])
	}
	a, _ := whole.Results("r", t0.Add(72*time.Hour))
	b, _ := restored.Results("r", t0.Add(72*time.Hour))
	if !reflect.DeepEqual(a.Variants, b.Variants) {
		t.Fatalf("replayed %+v\nrestored %+v", a.Variants, b.Variants)
	}
	if a.Variants[0].Users+a.Variants[1].Users == 0 || a.Variants[0].Clicks+a.Variants[1].Clicks == 0 {
		t.Fatalf("nothing counted: %+v", a.Variants)
	}
	if !reflect.DeepEqual(whole.exps[0].alloc, restored.exps[0].alloc) {
		t.Fatal("allocations differ after the snapshot")
	}
}

func TestResultsJSON(t *testing.T) {
	tr := New(DefaultConfig())
	tr.Record(ptrRec(defRec(def("j", 0.5, 0.5), false)))
	res, _ := tr.Results("j", t0)
	b, err := json.Marshal(res) // empty arms: NaN ratios must encode
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"ctr":null`)) {
		t.Fatalf("an empty arm's CTR is not null: %s", b)
	}
}

// TestCountsOnlyWhatWasCounted: what an impression earns counts only for
// the experiments that counted the impression — not after a stop, not for
// a user whose bucket moved to another variant — and a retried impression
// counts once, whenever it is stamped.
func TestCountsOnlyWhatWasCounted(t *testing.T) {
	at := t0.Add(time.Hour)
	t.Run("stopped", func(t *testing.T) {
		tr := New(DefaultConfig())
		d := def("s", 0.5, 0.5)
		tr.Record(ptrRec(defRec(d, false)))
		u := userIn(t, tr, "s", "v0")
		tr.Record(ptrRec(imp(u, "r1", at, "a")))
		stopped := d
		stopped.State = Stopped
		tr.Record(ptrRec(defRec(stopped, false)))
		tr.Record(ptrRec(imp(u, "r2", at.Add(time.Minute), "b", "c")))
		tr.Record(ptrRec(ev(u, "b", event.Click, at.Add(2*time.Minute), 1, "")))
		tr.Record(ptrRec(ev(u, "c", event.Click, at.Add(2*time.Minute), 1, "")))
		if f := figures(t, tr, "s")["v0"]; f.Impressions != 1 || f.Clicks != 0 {
			t.Fatalf("after the stop: %+v, want the 1 impression before it and no click", f)
		}
	})
	t.Run("reassigned", func(t *testing.T) {
		tr := New(DefaultConfig())
		d := def("m", 0.5, 0.5)
		tr.Record(ptrRec(defRec(d, false)))
		// A user in the part of v0 that a 0.3/0.7 reassignment gives v1.
		var u string
		for i := range 100000 {
			if b := bucket("m", fmt.Sprint("x", i)); b >= 3000 && b < 5000 {
				u = fmt.Sprint("x", i)
				break
			}
		}
		tr.Record(ptrRec(imp(u, "r1", at, "a")))
		moved := d
		moved.Variants = []Variant{{Name: "v0", Share: 0.3}, {Name: "v1", Share: 0.7}}
		tr.Record(ptrRec(defRec(moved, true)))
		if as := tr.Assign(u, at, nil); len(as) != 1 || as[0].Variant != "v1" {
			t.Fatalf("after the reassignment %s is in %v, want v1", u, as)
		}
		tr.Record(ptrRec(imp(u, "r2", at.Add(time.Minute), "b")))
		tr.Record(ptrRec(ev(u, "b", event.Click, at.Add(2*time.Minute), 1, "")))
		tr.Record(ptrRec(ev(u, "a", event.Click, at.Add(2*time.Minute), 1, "")))
		f := figures(t, tr, "m")
		if f["v0"].Impressions != 1 || f["v0"].Clicks != 1 || f["v1"].Users != 0 {
			t.Fatalf("v0 %+v, v1 %+v: want the first impression and its click in v0 only, the moved user counted nowhere after", f["v0"], f["v1"])
		}
	})
	t.Run("retried and backdated", func(t *testing.T) {
		tr := New(DefaultConfig())
		tr.Record(ptrRec(defRec(def("r", 0.5, 0.5), false)))
		u := userIn(t, tr, "r", "v1")
		tr.Record(ptrRec(imp(u, "r1", at.Add(time.Hour), "a")))
		tr.Record(ptrRec(imp(u, "r0", at, "b"))) // posted later, stamped earlier
		tr.Record(ptrRec(imp(u, "r0", at, "b"))) // a retry of it
		tr.Record(ptrRec(ev(u, "b", event.Click, at.Add(time.Minute), 1, "")))
		if f := figures(t, tr, "r")["v1"]; f.Impressions != 2 || f.Clicks != 1 {
			t.Fatalf("%+v: want 2 impressions (the retry not counted) and the click on the backdated one", f)
		}
	})
	t.Run("values that would overflow", func(t *testing.T) {
		tr := New(DefaultConfig())
		tr.Record(ptrRec(defRec(def("v", 0.5, 0.5), false)))
		u := userIn(t, tr, "v", "v0")
		tr.Record(ptrRec(imp(u, "r", at, "a", "b")))
		tr.Record(ptrRec(ev(u, "a", event.Purchase, at.Add(time.Minute), 1e300, "")))
		tr.Record(ptrRec(ev(u, "b", event.Purchase, at.Add(time.Minute), math.NaN(), "")))
		var buf bytes.Buffer
		enc := snapshot.NewEncoder(&buf)
		tr.Encode(enc) // must not panic
		if err := enc.Flush(); err != nil {
			t.Fatal(err)
		}
		if f := figures(t, tr, "v")["v0"]; f.Conversions != 2 || f.Value != 0 {
			t.Fatalf("%+v: want 2 conversions, out-of-range values counted as 0", f)
		}
	})
}
