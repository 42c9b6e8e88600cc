package sessionknn

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/model"
)

var yoo struct {
	once sync.Once
	ev   []triple
	err  error
}

// yoochoose returns the clicks of yoochoose-clicks-100k (train and test
// files) in time order, with dense user (session) and item ids.
func yoochoose(tb testing.TB) []triple {
	tb.Helper()
	dir := shared.Dataset(tb, "yoochoose-clicks-100k")
	yoo.once.Do(func() {
		d, err := dataset.Load(dir, nil)
		if err != nil {
			yoo.err = err
			return
		}
		users, items := map[string]int32{}, map[string]int32{}
		id := func(m map[string]int32, k string) int32 {
			v, ok := m[k]
			if !ok {
				v = int32(len(m))
				m[k] = v
			}
			return v
		}
		for _, e := range d.Events {
			t := float64(e.Timestamp.UnixMilli()) / 1000
			yoo.ev = append(yoo.ev, triple{id(users, e.UserID), id(items, e.ItemID), t})
		}
	})
	if yoo.err != nil {
		tb.Fatal(yoo.err)
	}
	return yoo.ev
}

// figures are HitRate@20 and MRR@20 over the scored events of a part.
type figures struct {
	n        int
	hits     int
	rr       float64
	from, to float64 // the part, as fractions of the events
}

func (f figures) String() string {
	return fmt.Sprintf("events %.0f%%-%.0f%%: HitRate@20 %.3f MRR@20 %.3f (%d scored)",
		100*f.from, 100*f.to, float64(f.hits)/float64(max(f.n, 1)), f.rr/float64(max(f.n, 1)), f.n)
}

// prequential replays ev in order: for every event after the first 20%
// whose user already has an event in the current session, src is asked for
// the user's top 20 (excluding nothing) before the event is applied. It
// returns the figures on events 20-60% (validation) and 60-100% (test).
func prequential(m interface {
	Apply(*model.Interaction)
	Candidates(*model.Query, []model.Candidate) []model.Candidate
}, ev []triple) (val, test figures) {
	d := newDriver(m)
	val, test = figures{from: 0.2, to: 0.6}, figures{from: 0.6, to: 1}
	var dst []model.Candidate
	for i, e := range ev {
		if i >= len(ev)/5 && d.inSession(e.user, e.t) {
			f := &val
			if i >= len(ev)*3/5 {
				f = &test
			}
			dst = m.Candidates(d.query(e.user, 20), dst[:0])
			f.n++
			for r, c := range dst {
				if c.Item == e.item {
					f.hits++
					f.rr += 1 / float64(r+1)
					break
				}
			}
		}
		d.apply(e.user, e.item, e.t)
	}
	return val, test
}

// TestYoochooseReplay logs the prequential figures of the defaults on
// yoochoose-clicks-100k. The reference, over the same protocol through the
// engine: recency-weighted item-kNN 0.380 / 0.153.
func TestYoochooseReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole data set replay: not in -short")
	}
	shared.SkipUnderRace(t)
	ev := yoochoose(t)
	start := time.Now()
	val, test := prequential(New(DefaultConfig()), ev)
	t.Logf("session_knn defaults on yoochoose-clicks-100k (%d events, %v):\n  validation %v\n  test       %v", len(ev), time.Since(start).Round(time.Millisecond), val, test)
	if float64(val.hits)/float64(val.n) < 0.40 {
		t.Errorf("validation HitRate@20 %.3f: below the item-kNN reference", float64(val.hits)/float64(val.n))
	}
}

// TestTune replays yoochoose under a grid of configurations: set
// STREAMREC_TUNE=1 to run it.
func TestTune(t *testing.T) {
	if os.Getenv("STREAMREC_TUNE") == "" {
		t.Skip("set STREAMREC_TUNE=1 to tune on yoochoose-clicks-100k")
	}
	ev := yoochoose(t)
	base := DefaultConfig()
	try := func(name string, c Config) {
		val, test := prequential(New(c), ev)
		t.Logf("%-28s val %v | test %v", name, val, test)
	}
	try("defaults", base)
	for _, own := range []bool{false, true} {
		for _, snh := range []float64{0, 20 * 86400} {
			for _, k := range []int{100, 200} {
				for _, spw := range []float64{0.5, 1.2} {
					for _, inh := range []float64{2, 4} {
						c := base
						c.ExcludeOwnSession, c.RecencySeconds, c.Neighbours, c.PositionDecay, c.ItemDecay = !own, snh, k, spw, inh
						try(fmt.Sprintf("own=%t snh=%g k=%d spw=%g inh=%g", !own, snh, k, spw, inh), c)
					}
				}
			}
		}
	}
}

func benchEvents(b *testing.B) []triple {
	if _, err := os.Stat("../../../shared/datasets/yoochoose-clicks-100k"); err == nil {
		return yoochoose(b)
	}
	return randomEvents(1, 5000, 3000, 100000)
}

// recorder keeps the Interactions a driver builds.
type recorder []model.Interaction

func (r *recorder) Apply(x *model.Interaction) { *r = append(*r, *x) }

// BenchmarkApply is the cost of one event (yoochoose-clicks-100k, or
// synthetic sessions when it is absent), the Interactions built beforehand
// the way the engine builds them, replayed over and over into fresh models.
func BenchmarkApply(b *testing.B) {
	var xs recorder
	d := newDriver(&xs)
	for _, e := range benchEvents(b) {
		d.apply(e.user, e.item, e.t)
	}
	b.ReportAllocs()
	var m *Model
	for i := 0; i < b.N; i++ {
		k := i % len(xs)
		if k == 0 {
			b.StopTimer()
			m = New(DefaultConfig())
			b.StartTimer()
		}
		m.Apply(&xs[k])
	}
}

// BenchmarkCandidates is one top-20 request for the user of each event of
// the last 20% of yoochoose, after the first 80% were applied.
func BenchmarkCandidates(b *testing.B) {
	ev := benchEvents(b)
	m := New(DefaultConfig())
	d := newDriver(m)
	cut := len(ev) * 4 / 5
	for _, e := range ev[:cut] {
		d.apply(e.user, e.item, e.t)
	}
	var qs []*model.Query
	for _, e := range ev[cut:] {
		if d.inSession(e.user, e.t) {
			qs = append(qs, d.query(e.user, 20))
		}
		if len(qs) == 2000 {
			break
		}
	}
	dst := make([]model.Candidate, 0, 20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = m.Candidates(qs[i%len(qs)], dst[:0])
	}
}
