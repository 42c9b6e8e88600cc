package lambdamart

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// FuzzForest: whatever a file holds, a forest that passes Validate predicts
// finite values without panicking.
func FuzzForest(f *testing.F) {
	small, err := json.Marshal(randomForest(1, 3, 2, 4))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small, uint64(1))
	for _, s := range []string{
		`{"features":2,"trees":[{"nodes":[{"f":0,"t":0.5,"l":1,"r":2,"v":0.1},{"f":-1,"v":-1},{"f":1,"l":3,"r":4,"v":0},{"f":-1,"v":0.5},{"f":-1,"v":2}]}]}`,
		`{"features":1,"trees":[{"nodes":[{"f":-1,"v":3e38}]},{"nodes":[{"f":-1,"v":3e38}]}]}`,
		`{"features":1,"trees":[{"nodes":[{"f":0,"l":0,"r":0,"v":0}]}]}`,
		`{"features":1,"trees":[{"nodes":[{"f":0,"l":2,"r":1,"v":0},{"f":0,"l":1,"r":1,"v":0}]}]}`,
		`{"features":2,"trees":[{"nodes":[{"f":5,"l":1,"r":2,"v":0},{"f":-1,"v":0},{"f":-1,"v":0}]}]}`,
		`{"features":0,"trees":[]}`,
		`{"features":3,"trees":[{"nodes":[]}]}`,
		`{"features":3,"trees":[{}]}`,
		`{"features":1,"trees":[{"nodes":[{"f":-7,"v":1}]}]}`,
		`{"features":1,"trees":[{"nodes":[{"f":0,"t":1e39,"l":1,"r":2,"v":0}]}]}`,
		`{"features":1048576,"trees":[{"nodes":[{"f":1048575,"l":1,"r":2},{"f":-1,"v":1},{"f":-1,"v":-1}]}]}`,
		`null`,
		`[]`,
	} {
		f.Add([]byte(s), uint64(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		var fo Forest
		if json.Unmarshal(data, &fo) != nil || fo.Validate() != nil {
			return
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		x := make([]float32, fo.F)
		dst := make([]float32, fo.F)
		for range 3 {
			for i := range x {
				switch rng.IntN(8) {
				case 0:
					x[i] = float32(math.NaN())
				case 1:
					x[i] = float32(math.Inf(2*rng.IntN(2) - 1))
				case 2:
					x[i] = 0
				default:
					x[i] = float32(rng.NormFloat64() * 10)
				}
			}
			p := fo.Predict(x)
			if !finite32(p) {
				t.Fatalf("Predict = %v", p)
			}
			clear(dst)
			fo.Contributions(x, dst)
			for i, c := range dst {
				if !finite32(c) {
					t.Fatalf("contribution %d = %v", i, c)
				}
			}
			if b := fo.Bias(); !finite32(b) {
				t.Fatalf("Bias = %v", b)
			}
		}
	})
}
