package recommend

import (
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// answers keeps whole answers of Recommend for the engine's current state
// only, so it can never serve a stale one: every change of state (a step
// of Apply, a model, ranker or blend installed, a snapshot read) moves the
// engine's epoch under the write lock, and an entry of another epoch is
// never returned. An answer is a function of the state and the request
// alone (the engine's clock is the events', not the wall's), so while
// nothing is written, a user asked again gets the same list without the
// sources being asked. Under constant writes nearly every request misses,
// which costs one key built and one map lookup.
//
// Bounded: at most max items across the answers kept (an answer counts
// one even when empty); once full, answers are not kept until the next
// epoch empties it.
type answers struct {
	max int

	mu    sync.Mutex
	epoch uint64
	m     map[string][]Scored
	items int // across m

	hits, misses atomic.Uint64
}

func newAnswers(max int) *answers {
	if max <= 0 {
		return nil
	}
	return &answers{max: max, m: make(map[string][]Scored)}
}

// get is the answer kept for key at epoch: a copy of the list, whose
// items' explanations (Because, Parts, Features) are shared and must not be
// changed.
func (a *answers) get(epoch uint64, key []byte) ([]Scored, bool) {
	a.mu.Lock()
	items, ok := a.m[string(key)]
	ok = ok && a.epoch == epoch
	a.mu.Unlock()
	if !ok {
		a.misses.Add(1)
		return nil, false
	}
	a.hits.Add(1)
	return slices.Clone(items), true
}

// put keeps a copy of items for key at epoch; an older epoch's entries go.
func (a *answers) put(epoch uint64, key []byte, items []Scored) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if epoch != a.epoch {
		if epoch < a.epoch {
			return // a reader of an older state, finishing late
		}
		clear(a.m)
		a.epoch, a.items = epoch, 0
	}
	n := max(len(items), 1)
	if _, ok := a.m[string(key)]; ok || a.items+n > a.max {
		return
	}
	a.items += n
	a.m[string(key)] = slices.Clone(items)
}

// answerKey appends to b everything in req that an answer depends on.
func answerKey(b []byte, req *Request) []byte {
	b = appendStr(b, req.User)
	b = binary.AppendVarint(b, int64(req.N))
	b = appendStr(b, req.Category)
	b = appendStr(b, req.Source)
	b = binary.AppendUvarint(b, uint64(len(req.Exclude)))
	for _, id := range req.Exclude {
		b = appendStr(b, id)
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(req.Diversity))
	b = binary.AppendVarint(b, int64(req.MaxPerCategory))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(req.At))
	flags := byte(0)
	if req.Explain {
		flags |= 1
	}
	if req.NoRanker {
		flags |= 2
	}
	if req.Blend != nil {
		flags |= 4
	}
	b = append(b, flags)
	if req.Blend != nil {
		b = binary.AppendUvarint(b, uint64(len(req.Blend)))
		for _, k := range slices.Sorted(maps.Keys(req.Blend)) {
			b = appendStr(b, k)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(req.Blend[k]))
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AnswerStats is how many Recommend calls the answer cache served (hits)
// and how many it did not (misses); both 0 without a cache.
func (e *Engine) AnswerStats() (hits, misses uint64) {
	if e.answers == nil {
		return 0, 0
	}
	return e.answers.hits.Load(), e.answers.misses.Load()
}
