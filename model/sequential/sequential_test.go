package sequential

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/snapshot"
)

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
		it := int32(math.Floor(float64(nitems) * rng.Float64() * rng.Float64()))
		ev[i] = triple{int32(rng.IntN(users)), it, t}
	}
	return ev
}

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

func items(cs []model.Candidate) []int32 {
	out := make([]int32, len(cs))
	for i, c := range cs {
		out[i] = c.Item
	}
	return out
}

// TestFreshAfterEachEvent: the next request reflects the event just applied.
func TestFreshAfterEachEvent(t *testing.T) {
	type ev struct {
		user, item int32
		t          float64
	}
	tests := []struct {
		name   string
		events []ev
		user   int32
		want   []int32 // the answer, best first
	}{
		{"a rule from another user's session", []ev{{0, 1, 0}, {0, 2, 10}, {1, 1, 20}}, 1, []int32{2}},
		{"the latest event of the query counts at once", []ev{{0, 1, 0}, {0, 2, 10}, {0, 3, 11}, {1, 1, 20}, {1, 2, 21}}, 1, []int32{3, 2}},
		{"closer successors weigh more", []ev{{0, 1, 0}, {0, 2, 10}, {0, 3, 11}, {1, 1, 20}}, 1, []int32{2, 3}},
		{"no rule across a session gap", []ev{{0, 1, 0}, {0, 2, 10 + 2*sessionGap}, {1, 1, 20 + 2*sessionGap}}, 1, nil},
		{"a new session forgets the old one's items", []ev{{0, 1, 0}, {0, 2, 10}, {1, 1, 20}, {1, 7, 20 + 2*sessionGap}}, 1, nil},
		{"no self rules", []ev{{0, 1, 0}, {0, 1, 10}, {1, 1, 20}}, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			d := newDriver(m)
			for _, e := range tc.events {
				d.apply(e.user, e.item, e.t)
			}
			if got := items(candidates(t, m, d, tc.user, 10)); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("answer %v, want %v", got, tc.want)
			}
		})
	}
}

// bruteRules computes every rule from the kept histories: sessions split at
// the flagged entries, pairs within steps, 1/d each in fixed point.
func bruteRules(hist [][]history.Entry, steps int) map[[2]int32]uint64 {
	r := map[[2]int32]uint64{}
	for _, h := range hist {
		for j := range h {
			for d := 1; d <= steps && j-d >= 0; d++ {
				split := false
				for k := j - d + 1; k <= j; k++ {
					if h[k].StartsSession() {
						split = true
					}
				}
				if split || h[j-d].Item == h[j].Item {
					continue
				}
				r[[2]int32{h[j-d].Item, h[j].Item}] += uint64(units(1 / float64(d)))
			}
		}
	}
	return r
}

func bruteScores(q *model.Query, rules map[[2]int32]uint64, cfg Config, n int) []model.Candidate {
	sess := q.SessionItems()
	score := map[int32]float64{}
	w := 1.0
	for k := len(sess) - 1; k >= 0 && k >= len(sess)-cfg.QueryItems; k-- {
		total := 0.0
		for p, v := range rules {
			if p[0] == sess[k].Item {
				total += float64(v)
			}
		}
		for p, v := range rules {
			if p[0] == sess[k].Item {
				if cfg.Normalize {
					score[p[1]] += w * float64(v) / total
				} else {
					score[p[1]] += w * float64(v) / unit
				}
			}
		}
		w *= cfg.Decay
	}
	var out []model.Candidate
	for it, s := range score {
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
	return out[:min(n, len(out))]
}

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

// TestAgainstBruteForce compares every answer and, with evictions in
// between, every rule with brute force over the kept histories.
func TestAgainstBruteForce(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		evict bool
	}{
		{"defaults", Config{MaxSuccessors: 1000}, false},
		{"far steps, normalized", Config{Steps: 5, MaxSuccessors: 1000, QueryItems: 4, Decay: 0.5, Normalize: true}, false},
		{"with retention", Config{Steps: 4, MaxSuccessors: 1000, QueryItems: 2, Decay: 0.7}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.cfg)
			cfg := m.Config()
			d := newDriver(m)
			rng := rand.New(rand.NewPCG(4, 4))
			for i, e := range randomEvents(3, 12, 25, 1500) {
				if i%11 == 0 {
					rules := bruteRules(d.hist, cfg.Steps)
					for u := int32(-1); u < 12; u += 4 {
						q := d.query(u, 10)
						sameTop(t, m.Candidates(q, nil), bruteScores(q, rules, cfg, 10))
					}
					for p, v := range rules {
						if got := m.Rule(p[0], p[1]); got != float64(v)/unit {
							t.Fatalf("event %d: rule %v = %v, want %v", i, p, got, float64(v)/unit)
						}
					}
					n := 0
					for a := range m.rows {
						n += m.Successors(int32(a))
					}
					if n != len(rules) {
						t.Fatalf("event %d: %d rules, brute force has %d", i, n, len(rules))
					}
				}
				d.apply(e.user, e.item, e.t)
				if tc.evict && rng.IntN(3) == 0 {
					d.evict(m, int32(rng.IntN(12)))
				}
			}
		})
	}
}

// TestSkipHonoured: skipped items are never answered, and the rest of the
// answer is the unskipped answer without them.
func TestSkipHonoured(t *testing.T) {
	m := New(Config{QueryItems: 5, Decay: 0.9})
	d := newDriver(m)
	for _, e := range randomEvents(5, 20, 40, 2000) {
		d.apply(e.user, e.item, e.t)
	}
	for u := int32(0); u < 20; u++ {
		all := candidates(t, m, d, u, 100)
		q := d.query(u, 100)
		skip := map[int32]bool{}
		for i, c := range all {
			if i%2 == 1 {
				q.Mark[c.Item] = q.Stamp
				skip[c.Item] = true
			}
		}
		got := m.Candidates(q, nil)
		clear(q.Mark)
		var want []model.Candidate
		for _, c := range all {
			if !skip[c.Item] {
				want = append(want, c)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("user %d: with skips got %v, want %v", u, got, want)
		}
	}
}

// TestMemoryBound: no item keeps more than MaxSuccessors rules, and the
// strongest rules survive pruning.
func TestMemoryBound(t *testing.T) {
	const m0 = 8
	m := New(Config{MaxSuccessors: m0, Steps: 5})
	d := newDriver(m)
	// Item 0 is always followed by item 1, then by a random item.
	rng := rand.New(rand.NewPCG(2, 2))
	tm := 1e9
	for u := range int32(3000) {
		d.apply(u, 0, tm)
		d.apply(u, 1, tm+1)
		d.apply(u, 2+int32(rng.IntN(500)), tm+2)
		tm += 3
	}
	for a := range m.rows {
		if n := m.Successors(int32(a)); n > m0 {
			t.Fatalf("item %d keeps %d rules", a, n)
		}
	}
	if m.Rule(0, 1) != 3000 {
		t.Fatalf("the strongest rule 0→1 weighs %v, want 3000", m.Rule(0, 1))
	}
	st := m.Stats().(Stats)
	if st.Pruned == 0 {
		t.Fatal("nothing was pruned")
	}
	if bound := int64(502*56 + 502*m0*8); m.Bytes() > bound {
		t.Fatalf("%d bytes, bound %d", m.Bytes(), bound)
	}
}

// TestSnapshotRoundTrip: a decoded model answers exactly as the original.
func TestSnapshotRoundTrip(t *testing.T) {
	cfg := Config{MaxSuccessors: 10, Steps: 4}
	m := New(cfg)
	d := newDriver(m)
	for _, e := range randomEvents(11, 40, 60, 3000) {
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
	if New(Config{MaxSuccessors: 11, Steps: 4}).Fingerprint() == m.Fingerprint() {
		t.Fatal("the fingerprint ignores the configuration")
	}
	for u := int32(-1); u < 40; u++ {
		a, b := candidates(t, m, d, u, 20), candidates(t, m2, d, u, 20)
		if !slices.Equal(a, b) {
			t.Fatalf("user %d: %v, decoded %v", u, a, b)
		}
	}
	if a, b := m.Stats().(Stats), m2.Stats().(Stats); a.Rules != b.Rules || a.Pruned != b.Pruned || a.Items != b.Items {
		t.Fatalf("stats %+v, decoded %+v", m.Stats(), m2.Stats())
	}
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

// rulesOf is r's rules in increasing order of successor.
func rulesOf(r *row) []rule {
	var out []rule
	for _, x := range r.slots {
		if x.key != free {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b rule) int { return int(a.key - b.key) })
	return out
}

// TestPruneKeepsTheStrongest: pruning a full row keeps exactly the rules a
// full sort ranks first (heavier, then the lower item id).
func TestPruneKeepsTheStrongest(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, size := range []int{1, 2, 3, 4, 7, 100, 257} {
		for trial := range 50 {
			m := New(Config{MaxSuccessors: size})
			r := &row{}
			for int(r.n) < size {
				b := int32(rng.IntN(4 * size))
				v := uint32(1 + rng.IntN(1+trial%5)) // many ties
				if _, ok := r.find(b); !ok {
					r.room(int(r.n) + 1)
					r.put(rule{b, v})
					r.n++
					r.total += uint64(v)
				}
			}
			want := rulesOf(r)
			slices.SortFunc(want, func(a, b rule) int {
				if a.val != b.val {
					return int(b.val) - int(a.val)
				}
				return int(a.key - b.key)
			})
			want = want[:size-max(size/4, 1)]
			slices.SortFunc(want, func(a, b rule) int { return int(a.key - b.key) })
			m.prune(r)
			got := rulesOf(r)
			if !slices.Equal(got, want) {
				t.Fatalf("size %d: kept %v, want %v", size, got, want)
			}
			var total uint64
			for _, x := range got {
				total += uint64(x.val)
				if h, ok := r.find(x.key); !ok || r.slots[h] != x {
					t.Fatalf("size %d: kept rule %v not found", size, x)
				}
			}
			if total != r.total || int(r.n) != len(got) {
				t.Fatalf("size %d: total %d over %d rules, rules sum to %d over %d", size, r.total, r.n, total, len(got))
			}
		}
	}
}

// TestRowTable: random additions and removals (the backward-shifting
// delete included) keep every rule findable, as a map says.
func TestRowTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 200 {
		m := New(Config{MaxSuccessors: 1000})
		m.grow(1)
		want := map[int32]uint32{}
		span := 1 + rng.IntN(300)
		for range 2000 {
			b := int32(rng.IntN(span))
			c := uint32(1 + rng.IntN(3))
			if rng.IntN(2) == 0 {
				m.add(0, b, c)
				want[b] += c
			} else {
				m.sub(0, b, c)
				if want[b] <= c {
					delete(want, b)
				} else {
					want[b] -= c
				}
			}
		}
		r := &m.rows[0]
		if int(r.n) != len(want) || m.rules != len(want) {
			t.Fatalf("trial %d: %d rules (%d counted), want %d", trial, r.n, m.rules, len(want))
		}
		for b := int32(0); b <= int32(span); b++ { // ids are not negative
			h, ok := r.find(b)
			v, wok := want[b]
			if ok != wok || (ok && r.slots[h].val != v) {
				t.Fatalf("trial %d: find(%d) = %d, %t; want %t, %d", trial, b, h, ok, wok, v)
			}
		}
	}
}

// TestDecodeAnyOrder: a snapshot that lists a row's rules in another order
// (as one written before rows were hashed) decodes into the same rules.
func TestDecodeAnyOrder(t *testing.T) {
	cfg := Config{MaxSuccessors: 10, Steps: 4}
	m := New(cfg)
	d := newDriver(m)
	for _, e := range randomEvents(12, 40, 60, 3000) {
		d.apply(e.user, e.item, e.t)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	shuffled := New(cfg)
	shuffled.rows, shuffled.rules, shuffled.pruned = make([]row, len(m.rows)), m.rules, m.pruned
	for i := range m.rows {
		rs := rulesOf(&m.rows[i])
		rng.Shuffle(len(rs), func(a, b int) { rs[a], rs[b] = rs[b], rs[a] })
		s := &shuffled.rows[i]
		s.room(64) // another table size: another order
		for _, x := range rs {
			s.put(x)
			s.n++
			s.total += uint64(x.val)
		}
	}
	var buf bytes.Buffer
	enc := snapshot.NewEncoder(&buf)
	shuffled.Encode(enc)
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	m2 := New(cfg)
	dec := snapshot.NewDecoder(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	m2.Decode(dec)
	if err := dec.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range m.rows {
		if a, b := rulesOf(&m.rows[i]), rulesOf(&m2.rows[i]); !slices.Equal(a, b) || m.rows[i].total != m2.rows[i].total {
			t.Fatalf("row %d: %v, decoded %v", i, a, b)
		}
	}
	for u := int32(-1); u < 40; u++ {
		a, b := candidates(t, m, d, u, 20), candidates(t, m2, d, u, 20)
		if !slices.Equal(a, b) {
			t.Fatalf("user %d: %v, decoded %v", u, a, b)
		}
	}
}
