package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/recommend"
)

// stressPlan is the writer's stream, worked out before anyone reads: the
// groups it applies and what each prefix of them leaves acknowledged. A
// reader that loaded acked = a before its read checks its answer against
// the state after groups[:a]; one that loads submitted = p after its read
// knows that nothing of groups[p:] was applied while it read.
type stressPlan struct {
	groups [][]event.Record
	// consumedAt[user][item] is the number of groups after which the
	// user's first consuming event on item is acknowledged (0: the world's).
	consumedAt map[string]map[string]int
	// blocked[item][a]: hidden or deleted after groups[:a].
	blocked map[string][]bool
	// unhide[item][k]: groups[k] puts item visible.
	unhide map[string][]bool
	// at[a] is the latest event time of the world and groups[:a].
	at    []time.Time
	users []string            // whose answers the readers check
	items []string            // every item of the stream, and one never seen
	cats  map[string][]string // each item's categories (never changed)
}

// consumed says whether user's consumption of item was acknowledged once a
// groups were.
func (p *stressPlan) consumed(user, item string, a int) bool {
	k, ok := p.consumedAt[user][item]
	return ok && k <= a
}

// surelyBlocked: item was hidden or deleted once a groups were
// acknowledged, and no group begun by the time p were put it visible again,
// so no read between the two may answer it.
func (p *stressPlan) surelyBlocked(item string, a, sub int) bool {
	b := p.blocked[item]
	if b == nil || !b[a] {
		return false
	}
	return !slices.Contains(p.unhide[item][a:sub], true)
}

// newStressPlan is the world (its catalogue and events acknowledged before
// the readers start) and about n further records in groups of 1 to 130:
// events of the world's users and of new ones on the topic items and on new
// items put along the way, and catalogue records that hide, show again and
// delete items. The pivots are left alone: the readers' own users need A
// and X as the world made them.
func newStressPlan(w *world, n int, seed uint64) *stressPlan {
	rng := rand.New(rand.NewPCG(seed, 13))
	p := &stressPlan{consumedAt: map[string]map[string]int{}, blocked: map[string][]bool{}, unhide: map[string][]bool{},
		cats: map[string][]string{}}
	put := map[string]event.Item{} // items the catalogue holds, by id
	blocked := map[string]bool{}
	var live []string // the items events may name (no pivots)
	for _, it := range w.items {
		put[it.ID] = it
		p.cats[it.ID] = it.Categories
		p.items = append(p.items, it.ID)
		if it.ID != pivotA && it.ID != pivotX {
			live = append(live, it.ID)
		}
	}
	var fresh []event.Item // new items, put during the stream
	for i := range 12 {
		tp := topics[i%len(topics)]
		it := event.Item{ID: fmt.Sprintf("n%02d", i), Title: tp[rng.IntN(6)] + " " + tp[rng.IntN(6)],
			Categories: []string{fmt.Sprint("topic", i%len(topics))}, Tags: []string{tp[rng.IntN(6)]}}
		fresh = append(fresh, it)
		p.cats[it.ID] = it.Categories
		p.items = append(p.items, it.ID)
	}
	p.items = append(p.items, "never")
	users := slices.Clone(w.users)
	for i := range 8 {
		users = append(users, fmt.Sprintf("s%02d", i))
	}
	p.users = append(slices.Clone(users), "stranger")
	use := func(user, item string, k int) {
		if p.consumedAt[user] == nil {
			p.consumedAt[user] = map[string]int{}
		}
		if _, ok := p.consumedAt[user][item]; !ok {
			p.consumedAt[user][item] = k
		}
	}
	for _, r := range w.events {
		if rule, _ := w.table.Rule(r.Event.Type); rule.Consumed {
			use(r.Event.User, r.Event.Item, 0)
		}
	}
	at := w.events[len(w.events)-1].Event.Time
	p.at = append(p.at, at)
	snapshotBlocked := func() {
		for _, id := range p.items {
			p.blocked[id] = append(p.blocked[id], blocked[id])
		}
	}
	snapshotBlocked()
	sizes := []int{1, 1, 1, 1, 2, 2, 3, 5, 8, 13, 30, 90}
	for total := 0; total < n; {
		k := len(p.groups)
		size := sizes[rng.IntN(len(sizes))]
		g := make([]event.Record, 0, size)
		shown := map[string]bool{}
		for range size {
			switch c := rng.IntN(100); {
			case c < 3 && len(fresh) > 0:
				it := fresh[0]
				fresh = fresh[1:]
				g = append(g, event.Record{Kind: event.KindItemPut, Item: it})
				put[it.ID], blocked[it.ID] = it, false
				live = append(live, it.ID)
				shown[it.ID] = true
			case c < 12:
				id := live[rng.IntN(len(live))]
				switch d := rng.IntN(3); {
				case d == 0: // hide
					it := put[id]
					it.Hidden = true
					g = append(g, event.Record{Kind: event.KindItemPut, Item: it})
					blocked[id] = true
				case d == 1: // show again (or put anew after a delete)
					it := put[id]
					it.Hidden = false
					g = append(g, event.Record{Kind: event.KindItemPut, Item: it})
					blocked[id] = false
					shown[id] = true
				default:
					g = append(g, event.Record{Kind: event.KindItemDelete, Item: event.Item{ID: id}})
					blocked[id] = true
				}
			default:
				user := users[rng.IntN(len(users))]
				id := live[rng.IntN(len(live))]
				typ, v := w.randomType(rng)
				at = at.Add(time.Duration(1+rng.IntN(120)) * time.Second)
				g = append(g, w.record(user, id, typ, v, at, ""))
				if rule, _ := w.table.Rule(typ); rule.Consumed {
					use(user, id, k+1)
				}
			}
		}
		for _, id := range p.items {
			p.unhide[id] = append(p.unhide[id], shown[id])
		}
		p.groups = append(p.groups, g)
		p.at = append(p.at, at)
		snapshotBlocked()
		total += len(g)
	}
	return p
}

// stressFailures collects what the goroutines find; the first stops them.
type stressFailures struct {
	stop atomic.Bool
	mu   sync.Mutex
	n    int
	msgs []string
}

func (f *stressFailures) add(format string, args ...any) {
	f.stop.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n++; len(f.msgs) < 8 {
		f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	}
}

// stress is one engine under one writer and several readers.
type stress struct {
	w         *world
	plan      *stressPlan
	e         *recommend.Engine
	sources   []string        // the engine's sources and "" for the blend
	popular   map[string]bool // sources that answer everyone alike
	acked     atomic.Int64    // groups applied (Apply returned)
	submitted atomic.Int64    // groups begun
	done      atomic.Bool     // the writer is through
	fail      stressFailures
	reads     atomic.Int64
	cycles    atomic.Int64
}

// checkList: at most n items, none twice, no NaN or infinite score, scores
// non-increasing.
func checkList(got []recommend.Scored, n int) string {
	if len(got) > n {
		return fmt.Sprintf("%d items, asked for %d", len(got), n)
	}
	seen := map[string]bool{}
	for i, g := range got {
		if math.IsNaN(g.Score) || math.IsInf(g.Score, 0) {
			return fmt.Sprintf("score %v at %d", g.Score, i)
		}
		if seen[g.Item] {
			return fmt.Sprintf("%s twice", g.Item)
		}
		seen[g.Item] = true
		if i > 0 && g.Score > got[i-1].Score {
			return fmt.Sprintf("score rises at %d (%v after %v)", i, g.Score, got[i-1].Score)
		}
	}
	return ""
}

// checkItems fails an answer holding an item that was surely blocked
// throughout the read (acked a before it, submitted sub after it) or that
// used says the asker consumed.
func (s *stress) checkItems(what string, got []recommend.Scored, a, sub int, used func(string) bool) {
	if msg := checkList(got, math.MaxInt); msg != "" {
		s.fail.add("%s: %s: %v", what, msg, brief(got))
	}
	for i, g := range got {
		if s.plan.surelyBlocked(g.Item, a, sub) {
			s.fail.add("%s: %s at %d, hidden or deleted by a record acknowledged before the read (groups %d..%d): %v", what, g.Item, i, a, sub, itemsOf(got))
		}
		if used != nil && used(g.Item) {
			s.fail.add("%s: %s at %d, consumed in an event acknowledged before the read (group %d): %v", what, g.Item, i, a, itemsOf(got))
		}
	}
}

// recommend asks req and checks the answer: the list's shape, each item
// allowed (used: the asker's acknowledged consumption), the request's own
// exclusions, category and cap, and the source named.
func (s *stress) recommend(req recommend.Request, used func(a int, item string) bool) []recommend.Scored {
	a := int(s.acked.Load())
	got := s.e.Recommend(req)
	sub := int(s.submitted.Load())
	s.reads.Add(1)
	what := fmt.Sprintf("Recommend(%s, n=%d, source %q, category %q, exclude %v, cap %d)", req.User, req.N, req.Source, req.Category, req.Exclude, req.MaxPerCategory)
	if msg := checkList(got, req.N); msg != "" {
		s.fail.add("%s: %s: %v", what, msg, brief(got))
	}
	s.checkItems(what, got, a, sub, func(item string) bool { return used != nil && used(a, item) })
	perCat := map[string]int{}
	for _, g := range got {
		if slices.Contains(req.Exclude, g.Item) {
			s.fail.add("%s: %s, excluded by the request: %v", what, g.Item, itemsOf(got))
		}
		if req.Category != "" && !slices.Contains(s.plan.cats[g.Item], req.Category) {
			s.fail.add("%s: %s (categories %v) outside the category: %v", what, g.Item, s.plan.cats[g.Item], itemsOf(got))
		}
		if req.Source != "" && g.Source != req.Source {
			s.fail.add("%s: %s from source %q: %v", what, g.Item, g.Source, itemsOf(got))
		}
		for _, c := range s.plan.cats[g.Item] {
			if perCat[c]++; req.MaxPerCategory > 0 && perCat[c] > req.MaxPerCategory {
				s.fail.add("%s: more than %d of %s: %v", what, req.MaxPerCategory, c, itemsOf(got))
			}
		}
	}
	return got
}

// rank asks Rank of list for user: exactly the list's distinct items, those
// scored first by non-increasing score, then the cold ones at 0 in the
// order given (consumed, hidden and deleted items included: the list is
// the client's).
func (s *stress) rank(user string, list []string) {
	got := s.e.Rank(recommend.RankRequest{User: user, Items: list})
	s.reads.Add(1)
	what := fmt.Sprintf("Rank(%s, %v)", user, list)
	want := map[string]bool{}
	for _, id := range list {
		want[id] = true
	}
	if len(got) != len(want) {
		s.fail.add("%s: %d items for %d distinct: %v", what, len(got), len(want), brief(got))
	}
	seen := map[string]bool{}
	cold, lastCold := false, -1
	for i, g := range got {
		switch {
		case !want[g.Item]:
			s.fail.add("%s: %s not in the list", what, g.Item)
		case seen[g.Item]:
			s.fail.add("%s: %s twice: %v", what, g.Item, brief(got))
		case math.IsNaN(g.Score) || math.IsInf(g.Score, 0):
			s.fail.add("%s: score %v", what, g.Score)
		case g.ColdStart:
			at := slices.Index(list, g.Item)
			if g.Score != 0 || at < lastCold {
				s.fail.add("%s: cold %s at %d scores %v, or out of the list's order: %v", what, g.Item, i, g.Score, brief(got))
			}
			cold, lastCold = true, at
		case cold:
			s.fail.add("%s: scored %s after a cold one: %v", what, g.Item, brief(got))
		case i > 0 && g.Score > got[i-1].Score:
			s.fail.add("%s: score rises at %d: %v", what, i, brief(got))
		}
		seen[g.Item] = true
	}
}

// similar asks the items like item, by kind: never item itself, nor one
// hidden or deleted throughout the read.
func (s *stress) similar(item string, n int, by string) {
	a := int(s.acked.Load())
	got, err := s.e.Similar(item, n, by)
	sub := int(s.submitted.Load())
	s.reads.Add(1)
	what := fmt.Sprintf("Similar(%s, %d, %q)", item, n, by)
	if err != nil {
		if !errors.Is(err, recommend.ErrUnknownItem) && !errors.Is(err, recommend.ErrUnknownSimilarity) {
			s.fail.add("%s: %v", what, err)
		}
		return
	}
	if msg := checkList(got, n); msg != "" {
		s.fail.add("%s: %s: %v", what, msg, brief(got))
	}
	if position(got, item) >= 0 {
		s.fail.add("%s: the item itself answered: %v", what, itemsOf(got))
	}
	s.checkItems(what, got, a, sub, nil)
}

// trending asks the popular items, in category when set.
func (s *stress) trending(n int, category string) {
	a := int(s.acked.Load())
	got := s.e.Trending(n, category)
	sub := int(s.submitted.Load())
	s.reads.Add(1)
	what := fmt.Sprintf("Trending(%d, %q)", n, category)
	if msg := checkList(got, n); msg != "" {
		s.fail.add("%s: %s: %v", what, msg, brief(got))
	}
	s.checkItems(what, got, a, sub, nil)
	for _, g := range got {
		if category != "" && !slices.Contains(s.plan.cats[g.Item], category) {
			s.fail.add("%s: %s outside the category: %v", what, g.Item, itemsOf(got))
		}
	}
}

// read is one random request of a reader, checked.
func (s *stress) read(rng *rand.Rand) {
	p := s.plan
	user := p.users[rng.IntN(len(p.users))]
	ns := []int{1, 3, 10, 25}
	n := ns[rng.IntN(len(ns))]
	switch k := rng.IntN(10); {
	case k < 6:
		req := recommend.Request{User: user, N: n, Source: s.sources[rng.IntN(len(s.sources))]}
		switch rng.IntN(5) {
		case 0:
			req.Category = fmt.Sprint("topic", rng.IntN(len(topics)))
		case 1:
			req.Exclude = []string{p.items[rng.IntN(len(p.items))], p.items[rng.IntN(len(p.items))]}
		case 2:
			req.MaxPerCategory = 1 + rng.IntN(2)
		}
		s.recommend(req, func(a int, item string) bool { return p.consumed(user, item, a) })
	case k < 7:
		list := make([]string, 1+rng.IntN(12))
		for i := range list {
			list[i] = p.items[rng.IntN(len(p.items))]
		}
		s.rank(user, list)
	case k < 9:
		kinds := []string{"", model.Behaviour, model.Content}
		s.similar(p.items[rng.IntN(len(p.items))], n, kinds[rng.IntN(len(kinds))])
	default:
		cat := ""
		if rng.IntN(2) == 0 {
			cat = fmt.Sprint("topic", rng.IntN(len(topics)))
		}
		s.trending(n, cat)
	}
}

// cycle is one read-your-writes round of a reader that writes for users of
// its own. A user never seen consumes the blend's first item for them: no
// answer may hold it after. Another consumes A, strongly: no answer holds A
// and every personal source's holds X (A then X is the world's pattern),
// which a cold user's did not; then they consume X: no answer holds A or
// X. (Whether anything is left to answer then is not checked: the other
// readers' users doing A then X may be all the neighbours A has.)
func (s *stress) cycle(name string, round int) {
	w := s.w
	consume := event.Watch
	if w.preset == event.PresetEcommerce {
		consume = event.View
	}
	now := func() time.Time { return s.plan.at[s.acked.Load()].Add(time.Second) }
	mine := map[string]map[string]bool{}
	do := func(user, item string, typ event.Type) {
		if mine[user] == nil {
			mine[user] = map[string]bool{}
		}
		if rule, _ := w.table.Rule(typ); rule.Consumed {
			mine[user][item] = true // Apply returns before the next read: acknowledged
		}
		s.e.Apply([]event.Record{w.record(user, item, typ, 1, now(), "")})
	}
	ask := func(user, source string) []recommend.Scored {
		return s.recommend(recommend.Request{User: user, N: 10, Source: source}, func(_ int, item string) bool { return mine[user][item] })
	}

	first := fmt.Sprintf("%s-%d-t", name, round)
	if top := ask(first, ""); len(top) > 0 {
		do(first, top[0].Item, consume)
		for _, src := range s.sources {
			if got := ask(first, src); position(got, top[0].Item) >= 0 {
				s.fail.add("read-your-writes: %s consumed %s, the blend's first for them, and Apply returned; source %q still answers it: %v", first, top[0].Item, src, itemsOf(got))
			}
		}
	}

	user := fmt.Sprintf("%s-%d", name, round)
	cold := map[string]bool{}
	for _, src := range s.sources {
		cold[src] = position(ask(user, src), pivotX) >= 0
	}
	do(user, pivotA, w.strong())
	for _, src := range s.sources {
		got := ask(user, src)
		if position(got, pivotA) >= 0 {
			s.fail.add("read-your-writes: %s consumed A and Apply returned; source %q answers it: %v", user, src, itemsOf(got))
		}
		if src != "" && !s.popular[src] && !cold[src] && position(got, pivotX) < 0 {
			s.fail.add("read-your-writes: %s did A and Apply returned; source %q does not answer X: %v", user, src, itemsOf(got))
		}
	}
	do(user, pivotX, consume)
	for _, src := range s.sources {
		got := ask(user, src)
		if position(got, pivotA) >= 0 || position(got, pivotX) >= 0 {
			s.fail.add("read-your-writes: %s consumed A and X and Apply returned; source %q answers one: %v", user, src, itemsOf(got))
		}
	}
	s.cycles.Add(1)
}

// run applies the plan's groups from one goroutine while `readers`
// goroutines read, the last `writers` of them also applying events of
// users of their own (cycle); with mf, a training runs alongside from the
// middle of the stream. A reader reads at most perGroup times a state, the
// writer waits for paceReads reads of each, and the readers go on until
// the writer is through and each has read minReads times.
func (s *stress) run(readers, writers, minReads, paceReads, perGroup int) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer s.done.Store(true)
		var train sync.WaitGroup
		defer train.Wait()
		for k, g := range s.plan.groups {
			if s.fail.stop.Load() {
				return
			}
			s.submitted.Store(int64(k + 1))
			s.e.Apply(g)
			// Let the readers read this state before the next group, for
			// paceReads reads (counted from before they can see it, so
			// that none is missed) or 20 ms: the reads interleave with
			// the whole stream however the goroutines are scheduled.
			target, until := s.reads.Load()+int64(paceReads), time.Now().Add(20*time.Millisecond)
			s.acked.Store(int64(k + 1))
			for s.reads.Load() < target && !s.fail.stop.Load() && time.Now().Before(until) {
				runtime.Gosched()
			}
			if k == len(s.plan.groups)/2 {
				train.Add(1)
				go func() {
					defer train.Done()
					if _, err := s.e.TrainMF(context.Background(), nil, nil); err != nil && err != recommend.ErrNoMF {
						s.fail.add("TrainMF during the stream: %v", err)
					}
				}()
			}
		}
	}()
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			writer := r >= readers-writers
			group, inGroup := int64(-1), 0
			for i, round := 0, 0; !s.fail.stop.Load(); i++ {
				if s.done.Load() && i >= minReads && (!writer || round >= 2) {
					return
				}
				// At most perGroup reads of one acknowledged state: the
				// writer, waiting for reads, gets its turn.
				if g := s.acked.Load(); g != group {
					group, inGroup = g, 0
				} else if inGroup++; inGroup > perGroup && !s.done.Load() {
					runtime.Gosched()
					continue
				}
				if writer && i%25 == 0 {
					s.cycle(fmt.Sprint("rw", r), round)
					round++
					continue
				}
				s.read(rng)
			}
		}()
	}
	wg.Wait()
}

// TestConcurrentReadersSeeConsistentAnswers: for every default model alone,
// and for all of them in one engine, under both presets, one writer applies
// a stream of events and catalogue records (hide, show again, delete, new
// items) in groups of 1 to 130 while four readers ask Recommend (the blend
// and each source, some with a category, exclusions or a cap per
// category), Rank, Similar and Trending. Every answer is checked against
// what was acknowledged (Apply returned) before the read began: no item the
// asker consumed, none hidden or deleted (and not put visible again by a
// group begun before the read ended), scores non-increasing, no duplicate,
// at most N, no NaN. Two of the readers also write for users of their own
// (read-your-writes, see cycle). Matrix factorisation is trained on the
// world first and again in the middle of the stream, alongside the reads.
// Run it under -race.
func TestConcurrentReadersSeeConsistentAnswers(t *testing.T) {
	records, minReads := 2500, 20
	if testing.Short() {
		records = 400
	}
	names := append(modelNames(), "all")
	for _, name := range names {
		for _, preset := range event.Presets() {
			t.Run(name+"/"+preset, func(t *testing.T) {
				w := newWorld(t, preset, 12, true)
				var e *recommend.Engine
				var models []model.Model
				if name == "all" {
					c := config.Default()
					cfg := c.EngineConfig(presetTable(t, preset))
					cfg.Retention = recommend.Retention{} // what is consumed stays consumed
					e, models = recommend.New(cfg), c.Models()
				} else {
					e, models = newEngine(t, preset, name, recommend.Retention{}), []model.Model{newModel(t, name)}
				}
				s := &stress{w: w, plan: newStressPlan(w, records, 21), e: e, sources: append(e.Sources(), ""), popular: map[string]bool{}}
				for _, m := range models {
					if _, ok := m.(model.Popular); ok {
						s.popular[m.Name()] = true
					}
				}
				e.Apply(w.records())
				trainMF(t, e)
				start := time.Now()
				s.run(4, 2, minReads, 8, 4)
				s.fail.mu.Lock()
				defer s.fail.mu.Unlock()
				for _, m := range s.fail.msgs {
					t.Error(m)
				}
				if s.fail.n > len(s.fail.msgs) {
					t.Errorf("and %d failures more", s.fail.n-len(s.fail.msgs))
				}
				t.Logf("%d groups, %d reads, %d read-your-writes rounds in %v", len(s.plan.groups), s.reads.Load(), s.cycles.Load(), time.Since(start).Round(time.Millisecond))
			})
		}
	}
}
