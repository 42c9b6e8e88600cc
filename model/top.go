package model

import "slices"

// Compare orders candidates best first: higher score, then lower item id,
// so answers are deterministic.
func Compare(a, b Candidate) int {
	switch {
	case a.Score > b.Score:
		return -1
	case a.Score < b.Score:
		return 1
	}
	return int(a.Item - b.Item)
}

// Better reports whether a ranks before b in Compare's order. Small enough
// to inline: selection calls it for every candidate.
func Better(a, b Candidate) bool {
	return a.Score > b.Score || a.Score == b.Score && a.Item < b.Item
}

// Heap holds the best candidates offered so far, at most n of them, the
// worst at its root (h[0]), so most offers cost one comparison. A Heap may
// be a view of the tail of a candidate list: Offer appends in place.
type Heap []Candidate

// Admits reports whether c would enter a heap of at most n.
func (h Heap) Admits(c Candidate, n int) bool { return len(h) < n || Better(c, h[0]) }

// Offer adds c to a heap of at most n if it is better than the worst held
// (the caller has checked Admits, or does not mind the comparison).
func (h *Heap) Offer(c Candidate, n int) {
	s := *h
	if len(s) < n {
		s = append(s, c)
		up(s, len(s)-1)
		*h = s
		return
	}
	if n > 0 && Better(c, s[0]) {
		s[0] = c
		down(s, 0)
	}
}

// Sort orders the heap's candidates best first, in place (heapsort: the
// worst goes last, then the next worst...), and returns them.
func (h Heap) Sort() []Candidate {
	for last := len(h) - 1; last > 0; last-- {
		h[0], h[last] = h[last], h[0]
		down(h[:last], 0)
	}
	return h
}

// Top sorts the best n candidates of c to its front, best first (see
// Compare), and returns them.
func Top(c []Candidate, n int) []Candidate {
	if n <= 0 {
		return c[:0]
	}
	k := min(n, len(c))
	h := Heap(c[:k])
	for i := k/2 - 1; i >= 0; i-- {
		down(h, i)
	}
	for _, x := range c[k:] {
		if Better(x, h[0]) {
			h[0] = x
			down(h, 0)
		}
	}
	return h.Sort()
}

// down restores the heap order of h below i: every parent ranks after
// (is worse than) its children.
func down(h []Candidate, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && Better(h[l], h[r]) {
			w = r
		}
		if !Better(h[i], h[w]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// up restores the heap order of h above i (see down).
func up(h []Candidate, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !Better(h[p], h[i]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// TopTouched appends to dst the q.Want best of the touched items by their
// score in acc — positive scores only, those q.Skip lets through — best
// first (see Compare). acc is left as it was.
func TopTouched(q *Query, acc []float32, touched []int32, dst []Candidate) []Candidate {
	if q.Want <= 0 {
		return dst
	}
	dst = slices.Grow(dst, min(q.Want, len(touched))) // the heap appends in place
	base := len(dst)
	h := Heap(dst[base:])
	var floor float32 // the worst score held once full: most items fail one comparison
	for _, it := range touched {
		sc := acc[it]
		if sc < floor || sc <= 0 {
			continue
		}
		c := Candidate{Item: it, Score: sc}
		if !h.Admits(c, q.Want) || q.Skip(it) {
			continue
		}
		h.Offer(c, q.Want)
		if len(h) == q.Want {
			floor = h[0].Score
		}
	}
	h.Sort()
	return dst[:base+len(h)]
}
