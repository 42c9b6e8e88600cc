package lambdamart

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Train fits a forest to d; it checks ctx between trees and returns ctx.Err() when
// cancelled. Stats says what happened.
//
// Training stops early, besides early stopping on cfg.Valid, when a round
// finds no split worth making: the scores, hence the gradients, would not
// change any more. A forest may so have fewer trees than cfg.Trees, none
// included.
func Train(ctx context.Context, d *Data, cfg Config) (*Forest, Stats, error) {
	f, st, _, err := train(ctx, d, cfg)
	return f, st, err
}

// train is Train, also returning the trainer (nil on early errors) for tests.
func train(ctx context.Context, d *Data, cfg Config) (*Forest, Stats, *trainer, error) {
	if err := ctx.Err(); err != nil {
		return nil, Stats{}, nil, err
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, Stats{}, nil, err
	}
	if err := d.check("training", true); err != nil {
		return nil, Stats{}, nil, err
	}
	if len(d.Label) == 0 {
		return nil, Stats{}, nil, fmt.Errorf("lambdamart: training data has no rows")
	}
	v := cfg.Valid
	if v != nil {
		if err := v.check("validation", true); err != nil {
			return nil, Stats{}, nil, err
		}
		if v.F != d.F {
			return nil, Stats{}, nil, fmt.Errorf("lambdamart: validation data has F = %d, training data %d", v.F, d.F)
		}
	}

	t := newTrainer(d, cfg)
	forest := &Forest{F: d.F}
	st := Stats{ValidScore: math.NaN(), InitValid: math.NaN()}

	var (
		vpred  []float32 // per validation row: the output of the trees so far
		vscore []float64
		vperm  []int32
		best   float64
		bestAt int       // trees kept at the best round
		kept   []float32 // t.pred at the best round
	)
	validScore := func() float64 {
		for r := range vscore {
			vscore[r] = v.init(r) + float64(vpred[r])
		}
		return metricScores(v, vscore, cfg.K, &vperm)
	}
	if v != nil {
		vpred = make([]float32, len(v.Label))
		vscore = make([]float64, len(v.Label))
		kept = make([]float32, t.n)
		best = validScore()
		st.InitValid = best
	}

	for round := 0; round < cfg.Trees; round++ {
		if err := ctx.Err(); err != nil {
			return nil, Stats{}, t, err
		}
		st.Rounds++
		t.gradients()
		tree, ok := t.grow()
		if !ok {
			break
		}
		forest.Trees = append(forest.Trees, tree)
		if v == nil {
			continue
		}
		for r := range vpred {
			vpred[r] += tree.predict(v.X[r*v.F : (r+1)*v.F])
		}
		if s := validScore(); s > best {
			best, bestAt = s, len(forest.Trees)
			copy(kept, t.pred)
		} else if len(forest.Trees)-bestAt >= cfg.EarlyStop {
			break
		}
	}
	trainPred := t.pred
	if v != nil {
		forest.Trees = slices.Clip(forest.Trees[:bestAt])
		trainPred = kept
	}
	if forest.Trees == nil {
		forest.Trees = []Tree{}
	}
	st.Trees = len(forest.Trees)
	// The training outputs are those Predict gives (the trees route the
	// training rows by the same comparisons and the sums run in the same
	// order), so no forest walk is needed.
	sc := make([]float64, t.n)
	for r := range sc {
		sc[r] = d.init(r) + float64(trainPred[r])
	}
	st.TrainScore = metricScores(d, sc, cfg.K, &vperm)
	if v != nil {
		st.ValidScore = best
	}
	return forest, st, t, nil
}

// ghPair is a row's gradient and hessian.
type ghPair struct{ g, h float64 }

// hbin is one histogram bin: the sums of a node's rows in the bin. A
// histogram holds 256 bins a feature (feature f's from f*256), of which
// the first len(cuts[f])+1 are used.
type hbin struct {
	g, h float64
	n    int
}

// nodeInfo is what growing a tree keeps about a node besides its Node.
type nodeInfo struct {
	start, end int     // its rows: idx[start:end]
	g, h       float64 // their gradient and hessian sums
	hist       []hbin  // its histogram while it may still be split
}

type split struct {
	f, bin int
	gain   float64
	gl, hl float64
	nl     int
}

// trainer holds the binned training set and the buffers reused every round.
type trainer struct {
	d   *Data
	cfg Config
	n   int // rows
	nf  int // features

	cuts   [][]float32 // per feature: bin edges (see cutsFor)
	bins   []uint8     // nf × n, column-major: bins[f*n+r]
	active []int       // features with at least one cut (the others are never split)
	pairQ  []int32     // queries with at least two distinct labels and weight > 0
	disc   []float64   // per rank up to the longest query: 1/log2(r+2) for r < K, 0 after

	gh    []ghPair  // per row
	pred  []float32 // per row: the output of the trees so far (as Predict sums it)
	score []float64 // per row of a query: its current score
	order []int32   // per row: its query's rows (local indices) by score, kept between rounds
	qLab  []float64 // per rank of a query: label
	qExp  []float64 // per rank of a query: exp(σ(score - max score))
	qGH   []ghPair  // per rank of a query: gradient and hessian
	idx   []int32   // rows, partitioned by node
	tmp   []int32   // partition scratch
	ordGH []ghPair  // a node's gradients in idx order
	info  []nodeInfo
	level []int
	next  []int
	free  [][]hbin
}

func newTrainer(d *Data, cfg Config) *trainer {
	n, nf := len(d.Label), d.F
	t := &trainer{
		d: d, cfg: cfg, n: n, nf: nf,
		cuts: make([][]float32, nf),
		bins: make([]uint8, nf*n),
		gh:   make([]ghPair, n),
		pred: make([]float32, n),
		idx:  make([]int32, n),
		tmp:  make([]int32, 0, n),
	}
	var scratch []uint32
	for f, vals := range sample(d) {
		t.cuts[f] = cutsFor(vals, cfg.Bins, &scratch)
		if len(t.cuts[f]) > 0 {
			t.active = append(t.active, f)
		}
	}
	// Rows outer, so that X is read in order.
	for r := range n {
		x := d.X[r*nf : (r+1)*nf]
		for _, f := range t.active {
			t.bins[f*n+r] = binOf(t.cuts[f], x[f])
		}
	}
	maxRows := 0
	for q := 0; q+1 < len(d.Group); q++ {
		s, e := d.Group[q], d.Group[q+1]
		maxRows = max(maxRows, e-s)
		if d.weight(q) == 0 {
			continue
		}
		lab := d.Label[s:e]
		for _, l := range lab {
			if l != lab[0] {
				t.pairQ = append(t.pairQ, int32(q))
				break
			}
		}
	}
	t.score = make([]float64, maxRows)
	t.qLab = make([]float64, maxRows)
	t.qExp = make([]float64, maxRows)
	t.qGH = make([]ghPair, maxRows)
	t.disc = make([]float64, maxRows)
	for r := range min(cfg.K, maxRows) {
		t.disc[r] = 1 / math.Log2(float64(r)+2)
	}
	t.order = make([]int32, n)
	for q := 0; q+1 < len(d.Group); q++ {
		s, e := d.Group[q], d.Group[q+1]
		for i := s; i < e; i++ {
			t.order[i] = int32(i - s)
		}
	}
	return t
}

// gradients sets t.gh to the LambdaRank gradients and hessians of the
// current scores (Init + pred). The gradient is that of a loss: the
// leaf values −G/(H+L2) ascend the DCG.
func (t *trainer) gradients() {
	clear(t.gh)
	d := t.d
	sigma := t.cfg.Sigma
	disc := t.disc
	for _, q := range t.pairQ {
		s, e := d.Group[q], d.Group[q+1]
		n := e - s
		sc := t.score[:n]
		for i := range sc {
			sc[i] = d.init(s+i) + float64(t.pred[s+i])
		}
		perm := t.order[s:e]
		t.sortQuery(perm, sc)
		// The query's rows in rank order: label, exp(σ(s - max s)) and the
		// gradient and hessian sums.
		lab, ex, acc := t.qLab[:n], t.qExp[:n], t.qGH[:n]
		smax := sc[perm[0]]
		for i, r := range perm {
			lab[i] = float64(d.Label[s+int(r)])
			ex[i] = math.Exp(sigma * (sc[r] - smax))
			acc[i] = ghPair{}
		}
		w := d.weight(int(q))
		top := min(t.cfg.K, n)
		for i := range top {
			li, ei := lab[i], ex[i]
			sdi := sigma * w * disc[i]
			var gi, hi float64
			for j := i + 1; j < n; j++ {
				dl := li - lab[j]
				if dl == 0 {
					continue
				}
				// For the pair of the higher-labelled row hi and the lower lo,
				// ρ = 1/(1+exp(σ(s_hi - s_lo))) = e_lo/(e_hi+e_lo), so
				// ρ(1-ρ) = e_i·e_j/(e_i+e_j)². c·|dl| is σ·w·|ΔDCG|.
				ej := ex[j]
				c := sdi - sigma*w*disc[j]
				var lam, hs float64
				if sum := ei + ej; sum > 0 {
					inv := 1 / sum
					pi, pj := ei*inv, ej*inv
					rho := pj // the lower row's share
					if dl < 0 {
						rho = pi
					}
					lam = c * dl * rho // signed: > 0 when i is the higher row
					hs = sigma * c * math.Abs(dl) * pi * pj
				} else { // both underflowed: go the long way
					x := sigma * (sc[perm[i]] - sc[perm[j]])
					if dl < 0 {
						x = -x
					}
					rho := 1 / (1 + math.Exp(x))
					lam = c * dl * rho
					hs = sigma * c * math.Abs(dl) * rho * (1 - rho)
				}
				gi -= lam
				acc[j].g += lam
				hi += hs
				acc[j].h += hs
			}
			acc[i].g += gi
			acc[i].h += hi
		}
		gh := t.gh[s:e]
		for i, r := range perm {
			gh[r] = acc[i]
		}
	}
}

// sortQuery orders perm (the query's rows, local indices) by sc descending,
// ties by the lower index. perm holds the order of the previous round, which
// the new one is usually close to: insertion sort finishes it in about linear
// time, and a full sort takes over when it does not. The result is the same
// either way, as the order is total.
func (t *trainer) sortQuery(perm []int32, sc []float64) {
	less := func(a, b int32) bool { // a ranks before b
		return sc[a] > sc[b] || (sc[a] == sc[b] && a < b)
	}
	budget := 8 * len(perm)
	for i := 1; i < len(perm); i++ {
		v := perm[i]
		j := i
		for j > 0 && less(v, perm[j-1]) {
			perm[j] = perm[j-1]
			j--
		}
		perm[j] = v
		if budget -= i - j; budget < 0 {
			slices.SortFunc(perm, func(a, b int32) int {
				if less(a, b) {
					return -1
				}
				if less(b, a) {
					return 1
				}
				return 0
			})
			return
		}
	}
}

func (t *trainer) value(g, h float64) float32 {
	return float32(-g / (h + t.cfg.L2) * t.cfg.LearningRate)
}

// splittable reports whether a node of count rows at depth may be split.
func (t *trainer) splittable(count, depth int) bool {
	return depth < t.cfg.Depth && count >= 2*t.cfg.MinLeaf
}

func (t *trainer) getHist() []hbin {
	if k := len(t.free); k > 0 {
		h := t.free[k-1]
		t.free = t.free[:k-1]
		return h
	}
	return make([]hbin, 256*t.nf)
}

func (t *trainer) putHist(h []hbin) {
	if h != nil {
		t.free = append(t.free, h)
	}
}

// grow fits one tree to t.gh, depth-wise, adds its output to t.pred and
// returns it; ok is false when no node could be split (the tree is not
// used and t.pred is unchanged).
func (t *trainer) grow() (tree Tree, ok bool) {
	n := t.n
	for i := range t.idx {
		t.idx[i] = int32(i)
	}
	var G, H float64
	for _, p := range t.gh {
		G += p.g
		H += p.h
	}
	nodes := []Node{{Feature: -1, Value: t.value(G, H)}}
	info := append(t.info[:0], nodeInfo{start: 0, end: n, g: G, h: H})
	level := t.level[:0]
	if t.splittable(n, 0) {
		info[0].hist = t.getHist()
		t.buildHist(info[0].hist, t.idx)
		level = append(level, 0)
	}
	for depth := 0; len(level) > 0; depth++ {
		next := t.next[:0]
		for _, id := range level {
			ni := info[id]
			info[id].hist = nil
			sp, found := t.bestSplit(&ni)
			if !found {
				t.putHist(ni.hist)
				continue
			}
			mid := t.partition(ni.start, ni.end, sp.f, sp.bin)
			l, r := len(nodes), len(nodes)+1
			nodes[id].Feature = int32(sp.f)
			nodes[id].Threshold = t.cuts[sp.f][sp.bin]
			nodes[id].Left, nodes[id].Right = int32(l), int32(r)
			gr, hr := ni.g-sp.gl, ni.h-sp.hl
			nodes = append(nodes,
				Node{Feature: -1, Value: t.value(sp.gl, sp.hl)},
				Node{Feature: -1, Value: t.value(gr, hr)})
			info = append(info,
				nodeInfo{start: ni.start, end: mid, g: sp.gl, h: sp.hl},
				nodeInfo{start: mid, end: ni.end, g: gr, h: hr})
			splitL := t.splittable(mid-ni.start, depth+1)
			splitR := t.splittable(ni.end-mid, depth+1)
			if !splitL && !splitR {
				t.putHist(ni.hist)
				continue
			}
			// Build the smaller child's histogram; the larger one's is the
			// parent's minus it, computed in the parent's buffer.
			small, large, needSmall, needLarge := l, r, splitL, splitR
			if mid-ni.start > ni.end-mid {
				small, large, needSmall, needLarge = r, l, splitR, splitL
			}
			sh := t.getHist()
			t.buildHist(sh, t.idx[info[small].start:info[small].end])
			if needLarge {
				t.subtractHist(ni.hist, sh)
				info[large].hist = ni.hist
			} else {
				t.putHist(ni.hist)
			}
			if needSmall {
				info[small].hist = sh
			} else {
				t.putHist(sh)
			}
			if splitL {
				next = append(next, l)
			}
			if splitR {
				next = append(next, r)
			}
		}
		t.level, t.next = next, level
		level = next
	}
	t.info = info
	if len(nodes) == 1 {
		return Tree{}, false
	}
	for id := range nodes {
		if nodes[id].Feature >= 0 {
			continue
		}
		v := nodes[id].Value
		for _, r := range t.idx[info[id].start:info[id].end] {
			t.pred[r] += v
		}
	}
	return Tree{Nodes: nodes}, true
}

// buildHist sets hs to the histogram of rows, which are ascending (all
// rows, for the root).
func (t *trainer) buildHist(hs []hbin, rows []int32) {
	n := t.n
	var ord []ghPair
	if len(rows) == n { // the root: rows are 0..n-1
		ord = t.gh
	} else {
		ord = slices.Grow(t.ordGH[:0], len(rows))[:len(rows)]
		for i, r := range rows {
			ord[i] = t.gh[r]
		}
		t.ordGH = ord
	}
	for _, f := range t.active {
		clear(hs[f*256 : f*256+len(t.cuts[f])+1])
	}
	// Features four at a time: each row's index and gradient are loaded
	// once for four columns.
	act := t.active
	for ; len(act) >= 4; act = act[4:] {
		f0, f1, f2, f3 := act[0], act[1], act[2], act[3]
		h0 := (*[256]hbin)(hs[f0*256 : (f0+1)*256])
		h1 := (*[256]hbin)(hs[f1*256 : (f1+1)*256])
		h2 := (*[256]hbin)(hs[f2*256 : (f2+1)*256])
		h3 := (*[256]hbin)(hs[f3*256 : (f3+1)*256])
		c0 := t.bins[f0*n : (f0+1)*n]
		c1 := t.bins[f1*n : (f1+1)*n]
		c2 := t.bins[f2*n : (f2+1)*n]
		c3 := t.bins[f3*n : (f3+1)*n]
		for i, r := range rows {
			p := ord[i]
			e := &h0[c0[r]]
			e.g += p.g
			e.h += p.h
			e.n++
			e = &h1[c1[r]]
			e.g += p.g
			e.h += p.h
			e.n++
			e = &h2[c2[r]]
			e.g += p.g
			e.h += p.h
			e.n++
			e = &h3[c3[r]]
			e.g += p.g
			e.h += p.h
			e.n++
		}
	}
	for _, f := range act {
		h := (*[256]hbin)(hs[f*256 : (f+1)*256])
		col := t.bins[f*n : (f+1)*n]
		for i, r := range rows {
			p := ord[i]
			e := &h[col[r]]
			e.g += p.g
			e.h += p.h
			e.n++
		}
	}
}

// subtractHist sets ph to ph - sh, over the bins in use.
func (t *trainer) subtractHist(ph, sh []hbin) {
	for f := range t.nf {
		nb := len(t.cuts[f]) + 1
		if nb < 2 {
			continue
		}
		p, s := ph[f*256:f*256+nb], sh[f*256:f*256+nb]
		for i := range p {
			p[i].g -= s[i].g
			p[i].h -= s[i].h
			p[i].n -= s[i].n
		}
	}
}

// bestSplit is the split of node ni of highest positive gain with MinLeaf
// rows on each side; ties go to the lower feature, then the lower bin.
func (t *trainer) bestSplit(ni *nodeInfo) (split, bool) {
	const minGain = 1e-14
	l2 := t.cfg.L2
	minLeaf := t.cfg.MinLeaf
	count := ni.end - ni.start
	G, H := ni.g, ni.h
	base := G * G / (H + l2)
	best := split{gain: minGain}
	found := false
	for f := range t.nf {
		nb := len(t.cuts[f]) + 1
		if nb < 2 {
			continue
		}
		h := ni.hist[f*256 : f*256+nb]
		var gl, hl float64
		nl := 0
		for b := 0; b < nb-1; b++ {
			e := &h[b]
			gl += e.g
			hl += e.h
			nl += e.n
			if nl < minLeaf {
				continue
			}
			if count-nl < minLeaf {
				break
			}
			gr, hr := G-gl, H-hl
			gain := gl*gl/(hl+l2) + gr*gr/(hr+l2) - base
			if gain > best.gain {
				best = split{f: f, bin: b, gain: gain, gl: gl, hl: hl, nl: nl}
				found = true
			}
		}
	}
	return best, found
}

// partition reorders idx[start:end] stably into the rows with bin ≤ b of
// feature f, then the others, and returns where the others start. Each row
// is written to both sides and the side's end advanced by the test, without
// a branch.
func (t *trainer) partition(start, end, f, b int) int {
	col := t.bins[f*t.n : (f+1)*t.n]
	rows := t.idx[start:end]
	tmp := t.tmp[:len(rows)]
	bb := uint8(b)
	k, m := 0, 0
	for _, r := range rows {
		left := int(b2i(col[r] <= bb))
		rows[k] = r // k ≤ the index read, so nothing unread is overwritten
		tmp[m] = r
		k += left
		m += 1 - left
	}
	copy(rows[k:], tmp[:m])
	return start + k
}
