package eval

import (
	"slices"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/als"
)

// ModelMF is matrix factorisation (implicit ALS), trained offline on the
// training part; scored under chrono and leave-last.
const ModelMF = "mf"

// mfRanker trains ALS on train and ranks all training items for a user by
// dot product, leaving out the user's own.
type mfRanker struct {
	model   *als.Model
	users   map[string]int32
	items   []string
	itemIdx map[string]int32
	own     map[int32][]int32
}

func trainMF(train []event.Record, cfg als.Config) (*mfRanker, error) {
	r := &mfRanker{users: map[string]int32{}, itemIdx: map[string]int32{}, own: map[int32][]int32{}}
	var entries []als.Entry
	for _, rec := range train {
		u, ok := r.users[rec.Event.User]
		if !ok {
			u = int32(len(r.users))
			r.users[rec.Event.User] = u
		}
		i, ok := r.itemIdx[rec.Event.Item]
		if !ok {
			i = int32(len(r.items))
			r.itemIdx[rec.Event.Item] = i
			r.items = append(r.items, rec.Event.Item)
		}
		entries = append(entries, als.Entry{User: u, Item: i, Weight: rec.Event.Weight})
		r.own[u] = append(r.own[u], i)
	}
	m, err := als.Train(len(r.users), len(r.items), entries, cfg, nil)
	if err != nil {
		return nil, err
	}
	r.model = m
	return r, nil
}

func (r *mfRanker) recommend(user string, n int) []string {
	u, ok := r.users[user]
	if !ok {
		return nil
	}
	x := r.model.UserVec(int(u))
	type scored struct {
		i int32
		s float32
	}
	own := map[int32]bool{}
	for _, i := range r.own[u] {
		own[i] = true
	}
	all := make([]scored, 0, len(r.items))
	for i := range r.items {
		if !own[int32(i)] {
			all = append(all, scored{int32(i), r.model.Score(x, i)})
		}
	}
	slices.SortFunc(all, func(a, b scored) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return int(a.i - b.i)
	})
	out := make([]string, 0, n)
	for _, s := range all[:min(n, len(all))] {
		out = append(out, r.items[s.i])
	}
	return out
}
