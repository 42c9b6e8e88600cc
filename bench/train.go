package bench

import (
	"math/rand/v2"
	"slices"

	"github.com/streamrec/streamrec/model/als"
)

// Interactions synthesises n (user, item, weight) interactions with the
// shape of real implicit data, for training benchmarks beyond the shared
// data sets: Zipf item popularity (s = 1.1), heavy-tailed user activity
// (s = 1.2), weights 1 to 4 in decreasing proportions, ids spread so that
// popular ones are not all small numbers. Deterministic for a seed.
func Interactions(users, items, n int, seed uint64) []als.Entry {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	iz := rand.NewZipf(rng, 1.1, 4, uint64(items-1))
	uz := rand.NewZipf(rng, 1.2, 8, uint64(users-1))
	ip, up := rng.Perm(items), rng.Perm(users)
	out := make([]als.Entry, n)
	for i := range out {
		out[i] = als.Entry{User: int32(up[uz.Uint64()]), Item: int32(ip[iz.Uint64()]), Weight: weights[rng.IntN(len(weights))]}
	}
	return out
}

var weights = [...]float32{1, 1, 1, 1, 1, 2, 2, 3, 4}

// UniformInteractions draws users and items uniformly: almost every pair is
// distinct, the hardest case for training time at a given count.
func UniformInteractions(users, items, n int, seed uint64) []als.Entry {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]als.Entry, n)
	for i := range out {
		out[i] = als.Entry{User: int32(rng.IntN(users)), Item: int32(rng.IntN(items)), Weight: weights[rng.IntN(len(weights))]}
	}
	return out
}

// DistinctPairs counts the distinct (user, item) pairs: the non-zeros
// training works on.
func DistinctPairs(entries []als.Entry) int {
	keys := make([]uint64, len(entries))
	for i, e := range entries {
		keys[i] = uint64(e.User)<<32 | uint64(uint32(e.Item))
	}
	slices.Sort(keys)
	n := 0
	for i, k := range keys {
		if i == 0 || k != keys[i-1] {
			n++
		}
	}
	return n
}
