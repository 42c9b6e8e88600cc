package content

import (
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
)

// ml is ml-latest-small with dense ids: movies in movies.csv order, users
// in order of first rating, ratings sorted by time (stable).
type ml struct {
	items   []event.Item
	tags    [][]mlTag // by item
	ratings []mlRating
	users   int
}

type mlTag struct {
	tag string
	t   uint32
}

type mlRating struct {
	user, item int32
	t          uint32
}

func readCSV(tb testing.TB, path string, fn func(rec []string)) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	if _, err := r.Read(); err != nil { // header
		tb.Fatal(err)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		fn(rec)
	}
}

func loadML(tb testing.TB) *ml {
	tb.Helper()
	if testing.Short() {
		tb.Skip("ml-latest-small: not in -short")
	}
	shared.SkipUnderRace(tb)
	dir := shared.Dataset(tb, "ml-latest-small")
	d := &ml{}
	byMovie := map[string]int32{}
	readCSV(tb, filepath.Join(dir, "movies.csv"), func(rec []string) {
		byMovie[rec[0]] = int32(len(d.items))
		it := event.Item{ID: rec[0], Title: rec[1]}
		if rec[2] != "(no genres listed)" {
			it.Categories = strings.Split(rec[2], "|")
		}
		d.items = append(d.items, it)
	})
	d.tags = make([][]mlTag, len(d.items))
	readCSV(tb, filepath.Join(dir, "tags.csv"), func(rec []string) {
		if i, ok := byMovie[rec[1]]; ok {
			ts, _ := strconv.ParseUint(rec[3], 10, 32)
			d.tags[i] = append(d.tags[i], mlTag{rec[2], uint32(ts)})
		}
	})
	users := map[string]int32{}
	readCSV(tb, filepath.Join(dir, "ratings.csv"), func(rec []string) {
		u, ok := users[rec[0]]
		if !ok {
			u = int32(len(users))
			users[rec[0]] = u
		}
		ts, _ := strconv.ParseUint(rec[3], 10, 32)
		if i, ok := byMovie[rec[1]]; ok {
			d.ratings = append(d.ratings, mlRating{u, i, uint32(ts)})
		}
	})
	d.users = len(users)
	slices.SortStableFunc(d.ratings, func(a, b mlRating) int { return int(a.t) - int(b.t) })
	return d
}

// catalogue is the items with the tags known before cut (all tags when cut
// is the maximum) as their tags; noTags leaves tags out.
func (d *ml) catalogue(cut uint32, noTags bool) []event.Item {
	out := slices.Clone(d.items)
	for i := range out {
		if noTags {
			continue
		}
		for _, tg := range d.tags[i] {
			if tg.t < cut && !slices.Contains(out[i].Tags, tg.tag) {
				out[i].Tags = append(out[i].Tags, tg.tag)
			}
		}
	}
	return out
}

// mlWorld feeds a catalogue and then ratings (weight 1, as the presets
// weigh a rating) to a world.
func mlWorld(cfg Config, cat []event.Item, ratings []mlRating) *world {
	w := newWorld(cfg)
	for i := range cat {
		w.put(int32(i), cat[i])
	}
	for _, r := range ratings {
		w.apply(r.user, r.item, 1, r.t)
	}
	return w
}

// TestMovieLensColdStart measures what the source is for: items nobody had
// rated before the split. Ratings are split by time, 80/20; an item whose
// first rating falls in the test period is new. After the catalogue and the
// training ratings, every test rating in time order is first predicted (top
// 10 for its user, the user's items excluded) and then applied. HitRate@10
// counts the test ratings of new items whose item was in the answer; "first
// touch" counts only the rating that is the item's very first, where every
// collaborative source scores zero by construction.
func TestMovieLensColdStart(t *testing.T) {
	d := loadML(t)
	split := len(d.ratings) * 8 / 10
	cut := d.ratings[split].t
	train, test := d.ratings[:split], d.ratings[split:]
	seen := make([]bool, len(d.items))
	for _, r := range train {
		seen[r.item] = true
	}
	for _, v := range []struct {
		name   string
		cut    uint32
		noTags bool
		cfg    Config
	}{
		{"titles+genres", 0, true, Config{}},
		{"titles+genres+tags before the split", cut, false, Config{}},
		{"titles+genres+all tags", ^uint32(0), false, Config{}},
		{"titles+genres+all tags, MaxPostings 250", ^uint32(0), false, Config{MaxPostings: 250}},
	} {
		start := time.Now()
		w := mlWorld(v.cfg, d.catalogue(v.cut, v.noTags), train)
		fed := time.Since(start)
		touched := slices.Clone(seen)
		var newEv, newHit, firstEv, firstHit, allHit int
		dst := make([]model.Candidate, 0, 10)
		start = time.Now()
		for _, r := range test {
			q := w.query(r.user, 10)
			dst = w.m.Candidates(q, dst[:0])
			hit := slices.ContainsFunc(dst, func(c model.Candidate) bool { return c.Item == r.item })
			if hit {
				allHit++
			}
			if !seen[r.item] {
				newEv++
				if hit {
					newHit++
				}
				if !touched[r.item] {
					firstEv++
					if hit {
						firstHit++
					}
				}
			}
			touched[r.item] = true
			w.apply(r.user, r.item, 1, r.t)
		}
		per := time.Since(start) / time.Duration(len(test))
		t.Logf("%s: HitRate@10 on new items %.4f (%d/%d test ratings), first touch %.4f (%d/%d), all test ratings %.4f (%d); fed in %v, %v a test rating (query+apply); %+v",
			v.name, ratio(newHit, newEv), newHit, newEv, ratio(firstHit, firstEv), firstHit, firstEv,
			ratio(allHit, len(test)), len(test), fed.Round(time.Millisecond), per, w.m.Stats())
		if newEv == 0 || newHit == 0 {
			t.Fatalf("%s: %d hits on %d new-item ratings: the source must reach new items", v.name, newHit, newEv)
		}
	}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func benchWorld(b *testing.B) (*ml, *world) {
	d := loadML(b)
	return d, mlWorld(benchConfig(b), d.catalogue(^uint32(0), false), d.ratings)
}

func BenchmarkApply(b *testing.B) {
	d := loadML(b)
	cat := d.catalogue(^uint32(0), false)
	w := newWorld(Config{})
	for i := range cat {
		w.put(int32(i), cat[i])
	}
	x := &model.Interaction{Items: w.items}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := d.ratings[i%len(d.ratings)]
		x.User, x.Item = r.user, r.item
		x.Entry = history.Entry{Item: r.item, Time: r.t + uint32(i/len(d.ratings))*1e6, Weight: 1}
		w.m.Apply(x)
	}
}

func BenchmarkPutItem(b *testing.B) {
	d := loadML(b)
	cat := d.catalogue(^uint32(0), false)
	w := newWorld(Config{})
	for i := range cat {
		w.put(int32(i), cat[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(cat)
		w.m.PutItem(int32(k), &cat[k]) // a replacement: out of the index and back
	}
}

func BenchmarkCandidates(b *testing.B) {
	d, w := benchWorld(b)
	qs := make([]*model.Query, 64)
	for u := range qs {
		qs[u] = w.query(int32(u), 100)
		// Each query its own marks: query() reuses one array.
		qs[u].Mark = slices.Clone(qs[u].Mark)
		qs[u].Acc = make([]float32, w.items)
		qs[u].Touched = make([]int32, 0, w.items)
	}
	_ = d
	dst := make([]model.Candidate, 0, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		dst = w.m.Candidates(qs[i%len(qs)], dst[:0])
	}
}

func BenchmarkNeighbours(b *testing.B) {
	_, w := benchWorld(b)
	q := w.query(-1, 20)
	q.Touched = make([]int32, 0, w.items)
	dst := make([]model.Candidate, 0, 20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		dst = w.m.Neighbours(q, int32(i%w.items), dst[:0])
	}
}

// benchConfig is the default configuration, with MaxPostings from
// CONTENT_MAX_POSTINGS when set (to measure the cap's latency).
func benchConfig(tb testing.TB) Config {
	var cfg Config
	if s := os.Getenv("CONTENT_MAX_POSTINGS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			tb.Fatalf("CONTENT_MAX_POSTINGS=%q: %v", s, err)
		}
		cfg.MaxPostings = n
	}
	return cfg
}
