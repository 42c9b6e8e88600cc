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

// Top sorts the best n candidates of c to its front, best first (see
// Compare), and returns them. It selects through a heap of the n best seen
// (the worst of them on top), so most candidates cost one comparison.
func Top(c []Candidate, n int) []Candidate {
	if n <= 0 {
		return c[:0]
	}
	if len(c) <= n {
		slices.SortFunc(c, Compare)
		return c
	}
	h := c[:n]
	for i := n/2 - 1; i >= 0; i-- {
		down(h, i)
	}
	for _, x := range c[n:] {
		if Compare(x, h[0]) < 0 {
			h[0] = x
			down(h, 0)
		}
	}
	slices.SortFunc(h, Compare)
	return h
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
		if r := l + 1; r < len(h) && Compare(h[r], h[l]) > 0 {
			w = r
		}
		if Compare(h[w], h[i]) <= 0 {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// TopTouched appends to dst the q.Want best of the touched items by their
// score in acc — positive scores only, those q.Skip lets through — best
// first (see Compare). heap is scratch kept between calls; acc is left as
// it was.
func TopTouched(q *Query, acc []float32, touched []int32, heap *[]Candidate, dst []Candidate) []Candidate {
	if q.Want <= 0 {
		return dst
	}
	h := (*heap)[:0]
	for _, it := range touched {
		c := Candidate{Item: it, Score: acc[it]}
		if c.Score <= 0 || (len(h) == q.Want && Compare(c, h[0]) >= 0) || q.Skip(it) {
			continue
		}
		if len(h) < q.Want {
			h = append(h, c)
			up(h, len(h)-1)
			continue
		}
		h[0] = c
		down(h, 0)
	}
	slices.SortFunc(h, Compare)
	dst = append(dst, h...)
	*heap = h
	return dst
}

// up restores the heap order of h above i (see down).
func up(h []Candidate, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if Compare(h[i], h[p]) <= 0 {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}
