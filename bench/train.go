package bench

import (
	"math/rand/v2"

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
	weights := [...]float32{1, 1, 1, 1, 1, 2, 2, 3, 4}
	out := make([]als.Entry, n)
	for i := range out {
		out[i] = als.Entry{User: int32(up[uz.Uint64()]), Item: int32(ip[iz.Uint64()]), Weight: weights[rng.IntN(len(weights))]}
	}
	return out
}
