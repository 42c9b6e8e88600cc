package sessionknn

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/snapshot"
)

func items(cs []model.Candidate) []int32 {
	out := make([]int32, len(cs))
	for i, c := range cs {
		out[i] = c.Item
	}
	return out
}

// candidates asks m for user's top want and checks that Acc is left zero.
func candidates(t *testing.T, m *Model, d *driver, user int32, want int) []model.Candidate {
	t.Helper()
	q := d.query(user, want)
	got := m.Candidates(q, nil)
	for i, a := range q.Acc {
		if a != 0 {
			t.Fatalf("Acc[%d] = %v left after Candidates", i, a)
		}
	}
	return got
}

// fan applies every event to several models.
type fan []*Model

func (f fan) Apply(x *model.Interaction) {
	for _, m := range f {
		m.Apply(x)
	}
}

// TestFreshAfterEachEvent: the next request reflects the event just applied,
// both in the user's own session and through sessions other users are in
// right now.
func TestFreshAfterEachEvent(t *testing.T) {
	type ev struct {
		user, item int32
		t          float64
	}
	tests := []struct {
		name    string
		events  []ev
		user    int32
		want    []int32 // must be answered
		absent  []int32 // must not be
		exclude bool
	}{
		{"the user's own session excluded is no neighbour", []ev{{0, 1, 0}, {0, 2, 10}}, 0, nil, []int32{1, 2}, true},
		{"excluded, the others still are", []ev{{0, 1, 0}, {0, 2, 10}, {1, 1, 15}, {1, 3, 16}, {0, 1, 20}}, 0, []int32{3, 1}, []int32{2}, true},
		{"a running session is a neighbour", []ev{{0, 1, 0}, {0, 2, 10}, {1, 1, 20}}, 1, []int32{2}, nil, false},
		{"its newest event counts at once", []ev{{0, 1, 0}, {0, 2, 10}, {1, 1, 20}, {0, 9, 30}}, 1, []int32{2, 9}, nil, false},
		{"the query's newest event counts at once", []ev{{0, 1, 0}, {0, 2, 10}, {2, 5, 11}, {2, 6, 12}, {1, 1, 20}, {1, 5, 30}}, 1, []int32{6}, nil, false},
		{"a session after a gap starts afresh", []ev{{0, 1, 0}, {0, 2, 10}, {2, 5, 11}, {2, 6, 12}, {1, 1, 20}, {1, 5, 20 + 2*sessionGap}}, 1, []int32{6}, []int32{2}, false},
		{"the user's own session votes for its items", []ev{{0, 1, 0}, {0, 2, 10}}, 0, []int32{1, 2}, nil, false},
		{"a neighbour sharing nothing votes nothing", []ev{{0, 1, 0}, {0, 2, 10}, {1, 3, 20}}, 1, nil, []int32{1, 2}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{ItemDecay: 2, RecencySeconds: 3600, ExcludeOwnSession: tc.exclude})
			d := newDriver(m)
			for _, e := range tc.events {
				d.apply(e.user, e.item, e.t)
			}
			got := items(candidates(t, m, d, tc.user, 10))
			for _, it := range tc.want {
				if !slices.Contains(got, it) {
					t.Errorf("answer %v lacks %d", got, it)
				}
			}
			for _, it := range tc.absent {
				if slices.Contains(got, it) {
					t.Errorf("answer %v holds %d", got, it)
				}
			}
		})
	}
}

type triple struct {
	user, item int32
	t          float64
}

func randomEvents(seed uint64, users, nitems, n int) []triple {
	rng := rand.New(rand.NewPCG(seed, 7))
	ev := make([]triple, n)
	t := 1e9
	for i := range ev {
		t += 1 + rng.Float64()*300
		// A skewed item distribution, so sessions share items.
		it := int32(math.Floor(float64(nitems) * rng.Float64() * rng.Float64()))
		ev[i] = triple{int32(rng.IntN(users)), it, t}
	}
	return ev
}

// brute is an obviously correct STAN scorer over all sessions, kept as
// plain lists.
type brute struct {
	cfg      Config
	sessions []bruteSession
	current  map[int32]int // user → index in sessions
}

type bruteSession struct {
	user  int32
	items []int32
	last  float64
}

func (b *brute) apply(d *driver, e triple) {
	newSess := !d.inSession(e.user, e.t)
	i, ok := b.current[e.user]
	if newSess || !ok || len(b.sessions[i].items) >= b.cfg.MaxSessionLength {
		b.sessions = append(b.sessions, bruteSession{user: e.user})
		i = len(b.sessions) - 1
		b.current[e.user] = i
	}
	b.sessions[i].items = append(b.sessions[i].items, e.item)
	b.sessions[i].last = e.t
}

func lastPos(items []int32, it int32) int {
	for k := len(items) - 1; k >= 0; k-- {
		if items[k] == it {
			return k
		}
	}
	return -1
}

func (b *brute) scores(q *model.Query, n int) []model.Candidate {
	sess := q.SessionItems()
	weight := map[int32]float64{}
	for i := 0; i < b.cfg.QueryItems && i < len(sess); i++ {
		it := sess[len(sess)-1-i].Item
		if _, ok := weight[it]; !ok {
			weight[it] = math.Exp(-float64(i) / b.cfg.PositionDecay)
		}
	}
	type nb struct {
		idx int
		sim float64
	}
	var nbs []nb
	for idx, s := range b.sessions {
		if b.cfg.ExcludeOwnSession && q.User >= 0 && b.current[q.User] == idx && s.user == q.User {
			continue
		}
		sim := 0.0
		for it, w := range weight {
			if slices.Contains(s.items, it) {
				sim += w
			}
		}
		if b.cfg.RecencySeconds > 0 {
			sim *= math.Exp(-(q.Now - s.last) / b.cfg.RecencySeconds)
		}
		if sim > 0 {
			nbs = append(nbs, nb{idx, sim})
		}
	}
	sort.Slice(nbs, func(i, j int) bool {
		if nbs[i].sim != nbs[j].sim {
			return nbs[i].sim > nbs[j].sim
		}
		return nbs[i].idx > nbs[j].idx
	})
	if len(nbs) > b.cfg.Neighbours {
		nbs = nbs[:b.cfg.Neighbours]
	}
	score := map[int32]float64{}
	for _, x := range nbs {
		s := b.sessions[x.idx].items
		anchor, best := -1, -1.0
		for it, w := range weight {
			if p := lastPos(s, it); p >= 0 && w > best {
				anchor, best = p, w
			}
		}
		seen := map[int32]bool{}
		for _, it := range s {
			if seen[it] {
				continue
			}
			seen[it] = true
			if d := lastPos(s, it) - anchor; b.cfg.ItemWindow >= 0 && (d > b.cfg.ItemWindow || -d > b.cfg.ItemWindow) {
				continue // outside the window
			}
			w := x.sim
			if b.cfg.ItemDecay > 0 {
				w *= math.Exp(-math.Abs(float64(lastPos(s, it)-anchor)) / b.cfg.ItemDecay)
			}
			score[it] += w
		}
	}
	var out []model.Candidate
	for it, s := range score {
		if b.cfg.IDF > 0 {
			held := 0
			for _, x := range b.sessions {
				if slices.Contains(x.items, it) {
					held++
				}
			}
			s *= 1 + b.cfg.IDF*math.Log(float64(len(b.sessions))/float64(held))
		}
		if !q.Skip(it) {
			out = append(out, model.Candidate{Item: it, Score: float32(s)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Item < out[j].Item
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// sameTop compares two answers rank by rank: equal scores (to float32
// rounding) and equal items where the scores are not near-ties.
func sameTop(t *testing.T, got, want []model.Candidate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d candidates %v, want %d %v", len(got), got, len(want), want)
	}
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-4*math.Max(float64(b), 1e-6) }
	for i := range want {
		if !near(got[i].Score, want[i].Score) {
			t.Fatalf("rank %d: got %v, want %v\n got %v\nwant %v", i, got[i], want[i], got, want)
		}
		tie := (i > 0 && near(want[i].Score, want[i-1].Score)) || (i+1 < len(want) && near(want[i].Score, want[i+1].Score))
		if !tie && got[i].Item != want[i].Item {
			t.Fatalf("rank %d: got item %d, want %d\n got %v\nwant %v", i, got[i].Item, want[i].Item, got, want)
		}
	}
}

// TestAgainstBruteForce replays random sessions and compares every answer
// with the brute-force scorer, for several configurations.
func TestAgainstBruteForce(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		users int32 // fewer users: longer sessions
	}{
		{"defaults", Config{Neighbours: 5, Sample: 10000, QueryItems: 6, PositionDecay: 1.2, RecencySeconds: 3600, ItemDecay: 2}, 12},
		{"no decays, every neighbour", Config{Neighbours: 10000, Sample: 10000, QueryItems: 3, PositionDecay: 5, ItemWindow: -1}, 12},
		{"idf, many neighbours", Config{Neighbours: 1000, Sample: 10000, QueryItems: 10, PositionDecay: 2, RecencySeconds: 600, ItemDecay: 1, IDF: 0.5}, 12},
		{"own session excluded", Config{Neighbours: 5, Sample: 10000, QueryItems: 6, PositionDecay: 0.5, RecencySeconds: 3600, ItemDecay: 4, ExcludeOwnSession: true}, 12},
		{"short stored sessions", Config{Neighbours: 8, Sample: 10000, QueryItems: 4, PositionDecay: 1, RecencySeconds: 7200, ItemDecay: 3, MaxSessionLength: 3}, 12},
		{"long sessions, narrow window", Config{Neighbours: 20, Sample: 10000, QueryItems: 5, PositionDecay: 1, RecencySeconds: 3600, ItemDecay: 3, ItemWindow: 2}, 2},
		{"long sessions, default window", Config{Neighbours: 20, Sample: 10000, QueryItems: 5, PositionDecay: 1, ItemDecay: 3}, 2},
		{"long sessions, whole sessions", Config{Neighbours: 20, Sample: 10000, QueryItems: 5, PositionDecay: 1, ItemDecay: 3, ItemWindow: -1}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.cfg)
			b := &brute{cfg: m.Config(), current: map[int32]int{}}
			d := newDriver(m)
			for i, e := range randomEvents(3, int(tc.users), 25, 600) {
				if i%7 == 0 {
					for u := int32(-1); u < tc.users; u += max(tc.users/3, 1) {
						q := d.query(u, 10)
						sameTop(t, m.Candidates(q, nil), b.scores(q, 10))
					}
				}
				b.apply(d, e)
				d.apply(e.user, e.item, e.t)
			}
		})
	}
}

// TestSkipHonoured: skipped items are never answered, and the rest of the
// answer is the unskipped answer without them.
func TestSkipHonoured(t *testing.T) {
	m := New(Config{Neighbours: 50})
	d := newDriver(m)
	for _, e := range randomEvents(5, 20, 40, 2000) {
		d.apply(e.user, e.item, e.t)
	}
	for u := int32(0); u < 20; u++ {
		all := candidates(t, m, d, u, 100)
		q := d.query(u, 100)
		skip := map[int32]bool{}
		for i, c := range all {
			if i%2 == 0 {
				q.Mark[c.Item] = q.Stamp
				skip[c.Item] = true
			}
		}
		got := m.Candidates(q, nil)
		var want []model.Candidate
		for _, c := range all {
			if !skip[c.Item] {
				want = append(want, c)
			}
		}
		clear(q.Mark)
		if !slices.Equal(got, want) {
			t.Fatalf("user %d: with skips got %v, want %v", u, got, want)
		}
	}
}

// TestMemoryBound: the sessions, events and index entries kept stay within
// the configured bounds however long the stream.
func TestMemoryBound(t *testing.T) {
	cfg := Config{Sample: 20, MaxSessions: 50, MaxEntries: 300, MaxSessionLength: 10}
	m := New(cfg)
	d := newDriver(m)
	var peak int64
	for i, e := range randomEvents(9, 200, 500, 20000) {
		d.apply(e.user, e.item, e.t)
		if m.Sessions() > cfg.MaxSessions || m.Entries() > cfg.MaxEntries {
			t.Fatalf("event %d: %d sessions, %d entries kept", i, m.Sessions(), m.Entries())
		}
		peak = max(peak, m.Bytes())
	}
	for it, l := range m.lists {
		if len(l) > 2*cfg.Sample {
			t.Fatalf("item %d indexes %d sessions", it, len(l))
		}
	}
	// Ring (64 slots at least, power of two), sessions of at most 10
	// entries, at most 2·Sample index entries for each of the 500 items.
	bound := int64(64*48+64*10*4) + 500*(24+4+2*20*4) + 200*4 + 4096
	if peak > bound {
		t.Fatalf("peak %d bytes, bound %d", peak, bound)
	}
	if st := m.Stats().(Stats); st.EvictedSessions == 0 {
		t.Fatal("nothing was evicted")
	}
}

// TestSnapshotRoundTrip: a decoded model answers exactly as the original,
// and goes on doing so as events keep coming.
func TestSnapshotRoundTrip(t *testing.T) {
	cfg := Config{Neighbours: 20, MaxSessions: 300, IDF: 0.3}
	m := New(cfg)
	d := newDriver(m)
	ev := randomEvents(11, 40, 60, 3000)
	for _, e := range ev[:2000] {
		d.apply(e.user, e.item, e.t)
	}
	var buf bytes.Buffer
	enc := snapshot.NewEncoder(&buf)
	m.Encode(enc)
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	m2 := New(cfg)
	dec := snapshot.NewDecoder(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	m2.Decode(dec)
	if err := dec.Err(); err != nil {
		t.Fatal(err)
	}
	if m2.Fingerprint() != m.Fingerprint() {
		t.Fatal("fingerprints differ")
	}
	if New(Config{Neighbours: 21, MaxSessions: 300, IDF: 0.3}).Fingerprint() == m.Fingerprint() {
		t.Fatal("the fingerprint ignores the configuration")
	}
	compare := func(when string) {
		for u := int32(-1); u < 40; u++ {
			a, b := candidates(t, m, d, u, 20), candidates(t, m2, d, u, 20)
			if !slices.Equal(a, b) {
				t.Fatalf("%s, user %d: %v, decoded %v", when, u, a, b)
			}
		}
	}
	compare("after decode")
	d.m = fan{m, m2}
	for _, e := range ev[2000:] {
		d.apply(e.user, e.item, e.t)
	}
	compare("after more events")
}

// TestCandidatesDoNotAllocate: a warm request allocates nothing.
func TestCandidatesDoNotAllocate(t *testing.T) {
	shared.SkipUnderRace(t)
	m := New(Config{})
	d := newDriver(m)
	for _, e := range randomEvents(5, 50, 200, 5000) {
		d.apply(e.user, e.item, e.t)
	}
	qs := []*model.Query{d.query(3, 20), d.query(7, 20), d.query(-1, 20)}
	dst := make([]model.Candidate, 0, 20)
	for _, q := range qs {
		dst = m.Candidates(q, dst[:0])
	}
	if n := testing.AllocsPerRun(200, func() {
		for _, q := range qs {
			dst = m.Candidates(q, dst[:0])
		}
	}); n != 0 {
		t.Fatalf("%v allocations per request", n/3)
	}
}
