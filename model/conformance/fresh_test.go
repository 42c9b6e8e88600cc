package conformance

import (
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/recommend"
)

// TestFreshAfterEachEvent: the world holds twelve sessions of A then X (A
// and X alike in text too, and in nobody else's history). A probe user with
// an old, unrelated session starts a new session with a strong event on A:
// the very next answer of every personal source must hold X, where it was
// not before (or rank it higher). Then the probe consumes X: the next answer
// of every source, popular ones included, must not hold X, nor A.
//
// Matrix factorisation is trained on the world first, so what is checked
// is its fold-in. Popular sources answer the same to everyone: their
// freshness is that their answer equals the brute-force reference after
// every event (TestTrendingReference); here only the consumption.
func TestFreshAfterEachEvent(t *testing.T) {
	forEach(t, func(t *testing.T, preset, name string) {
		if !isSource(t, name) {
			t.Skipf("%s answers nothing", name)
		}
		w := newWorld(t, preset, 1, true)
		e := newEngine(t, preset, name, recommend.Retention{})
		end := w.events[len(w.events)-1].Event.Time
		probe := "probe"
		old := []event.Record{
			w.record(probe, "i00", event.View, 1, end.Add(-3*time.Hour), ""),
			w.record(probe, "i04", event.View, 1, end.Add(-3*time.Hour+time.Minute), ""),
		}
		e.Apply(append(w.records(), old...))
		trainMF(t, e)
		ask := func() []recommend.Scored {
			return e.Recommend(recommend.Request{User: probe, N: 10, Source: name})
		}
		_, popular := newModel(t, name).(model.Popular)

		before := ask()
		e.Apply([]event.Record{w.record(probe, pivotA, w.strong(), 1, end.Add(time.Minute), "")})
		after := ask()
		if pa := position(after, pivotA); pa >= 0 {
			t.Errorf("A, just consumed, answered at %d: %v", pa, itemsOf(after))
		}
		if !popular {
			pb, pa := position(before, pivotX), position(after, pivotX)
			switch {
			case pa < 0:
				t.Errorf("X missing after the event on A: before %v, after %v", itemsOf(before), itemsOf(after))
			case pb >= 0 && pa >= pb && pa > 0:
				t.Errorf("X at %d before the event on A and at %d after: before %v, after %v", pb, pa, itemsOf(before), itemsOf(after))
			}
		}

		consume := event.Watch
		if preset == event.PresetEcommerce {
			consume = event.View
		}
		e.Apply([]event.Record{w.record(probe, pivotX, consume, 1, end.Add(2*time.Minute), "")})
		gone := ask()
		if p := position(gone, pivotX); p >= 0 {
			t.Errorf("X, just consumed, answered at %d: %v", p, itemsOf(gone))
		}
		if !popular && len(after) > 1 && len(gone) == 0 {
			t.Errorf("nothing answered after consuming X (before: %v)", itemsOf(after))
		}
		if slices.Contains(itemsOf(gone), pivotA) {
			t.Errorf("A answered after consumption: %v", itemsOf(gone))
		}
	})
}
