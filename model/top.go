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
