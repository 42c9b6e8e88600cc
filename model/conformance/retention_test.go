package conformance

import (
	"testing"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/recommend"
)

// approximateEviction names the models whose Evict does not promise the
// state of never having seen the event, with the reason their package
// gives; models that do not implement model.Evicter forget by bounds of
// their own and are skipped too.
var approximateEviction = map[string]string{
	"content": "Evict subtracts with the item's current vector from the terms the bounded profile still holds (package content: retention is approximate by design)",
}

// roundingEviction names the models whose eviction is exact but for
// floating-point rounding, with the relative tolerance their answers must
// meet and why.
var roundingEviction = map[string]struct {
	tol float64
	why string
}{
	"trending": {1e-6, "Remove subtracts w·e^x from a float sum, and an engine that never saw the event has another reference time"},
}

// kept is the records an engine that never saw what retention evicts is
// fed: the catalogue, then each user's last max events, in log order.
func kept(w *world, max int) []event.Record {
	count := map[string]int{}
	for _, r := range w.events {
		count[r.Event.User]++
	}
	recs := w.catalogue()
	seen := map[string]int{}
	for _, r := range w.events {
		u := r.Event.User
		if seen[u]++; count[u]-seen[u] < max {
			recs = append(recs, r)
		}
	}
	return recs
}

// TestRetentionEqualsKeptEvents: with at most 3 events a user, an engine
// fed the whole stream answers as one fed only the events retention kept
// (for the source, the blend and similar items; matrix factorisation
// trained on each at the end, as training reads the kept histories).
func TestRetentionEqualsKeptEvents(t *testing.T) {
	keep := recommend.Retention{MaxEventsPerUser: 3}
	forEach(t, func(t *testing.T, preset, name string) {
		if _, ok := newModel(t, name).(model.Evicter); !ok {
			t.Skipf("%s is no model.Evicter: it forgets by its own bounds, not event by event (see its package documentation)", name)
		}
		if why, ok := approximateEviction[name]; ok {
			t.Skipf("%s: eviction is approximate: %s", name, why)
		}
		tol := 0.0
		if r, ok := roundingEviction[name]; ok {
			tol = r.tol
			t.Logf("%s: compared within %g: %s", name, tol, r.why)
		}
		w := newWorld(t, preset, 6, true)
		full, lean := newEngine(t, preset, name, keep), newEngine(t, preset, name, keep)
		full.Apply(w.records())
		lean.Apply(kept(w, keep.MaxEventsPerUser))
		if a, b := full.Stats().Events, lean.Stats().Events; a != b {
			t.Fatalf("%d events kept, the lean engine holds %d", a, b)
		}
		trainMF(t, full)
		trainMF(t, lean)
		sameAnswers(t, "retention", collect(t, full, w, name, 10), collect(t, lean, w, name, 10), tol)
	})
}
