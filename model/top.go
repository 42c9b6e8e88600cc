package model

import (
	"slices"
	"sort"
)

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
// Compare), and returns them.
func Top(c []Candidate, n int) []Candidate {
	if n <= 0 {
		return c[:0]
	}
	if len(c) <= n {
		slices.SortFunc(c, Compare)
		return c
	}
	// Partial selection in place: c[:n] is kept sorted and holds the best
	// seen so far.
	best := c[:n]
	slices.SortFunc(best, Compare)
	less := func(a, b Candidate) bool { return Compare(a, b) < 0 }
	for _, x := range c[n:] {
		if !less(x, best[n-1]) {
			continue
		}
		pos := sort.Search(n, func(i int) bool { return less(x, best[i]) })
		copy(best[pos+1:], best[pos:n-1])
		best[pos] = x
	}
	return best
}
