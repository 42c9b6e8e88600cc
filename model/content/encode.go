package content

import (
	"math"
	"slices"
	"strings"

	"github.com/streamrec/streamrec/snapshot"
)

// Encode writes the dictionary and the items' term frequencies and vectors
// (document frequencies and postings are rebuilt on Decode; profiles are
// built from the engine's histories at query time).
func (m *Model) Encode(e *snapshot.Encoder) {
	lens := make([]uint32, len(m.terms))
	var all strings.Builder
	for t, s := range m.terms {
		lens[t] = uint32(len(s))
		all.WriteString(s)
	}
	e.Slice(lens, len(lens))
	e.String(all.String())

	live := make([]uint8, len(m.live))
	for i, l := range m.live {
		if l {
			live[i] = 1
		}
	}
	e.Slice(live, len(live))
	encodeVecs(e, m.raw)
	encodeVecs(e, m.vec)
	e.Uint(uint64(m.fresh))
	e.Uint(m.refreshes)
}

func encodeVecs(e *snapshot.Encoder, vs [][]tw) {
	lens := make([]uint32, len(vs))
	var ts []int32
	var ws []float32
	for i, v := range vs {
		lens[i] = uint32(len(v))
		for _, x := range v {
			ts, ws = append(ts, x.t), append(ws, x.w)
		}
	}
	e.Slice(lens, len(lens))
	e.Slice(ts, len(ts))
	e.Slice(ws, len(ws))
}

// decodeVecs reads what encodeVecs wrote; order is how each vector must be
// sorted (strictly).
func decodeVecs(d *snapshot.Decoder, terms int, order func(a, b tw) int) [][]tw {
	lens := snapshot.Uint32s(d)
	ts := snapshot.Int32s(d)
	ws := snapshot.Float32s(d)
	d.Check(len(ts) == len(ws), "content vector columns differ in length")
	var total uint64
	for _, l := range lens {
		total += uint64(l)
	}
	d.Check(total == uint64(len(ts)), "content vector lengths do not add up")
	if d.Err() != nil {
		return nil
	}
	vs := make([][]tw, len(lens))
	off := 0
	for i, l := range lens {
		if l == 0 {
			continue
		}
		v := make([]tw, l)
		for k := range v {
			t, w := ts[off+k], ws[off+k]
			if t < 0 || int(t) >= terms || math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
				d.Check(false, "content vector names an unknown term or holds no number")
				return nil
			}
			v[k] = tw{t, w}
			if k > 0 && order(v[k-1], v[k]) >= 0 {
				d.Check(false, "content vector out of order")
				return nil
			}
		}
		vs[i] = v
		off += int(l)
	}
	return vs
}

// Decode restores state written by Encode into a model made by New with the
// same configuration.
func (m *Model) Decode(d *snapshot.Decoder) {
	lens := snapshot.Uint32s(d)
	all := d.String()
	var total uint64
	for _, l := range lens {
		total += uint64(l)
	}
	d.Check(total == uint64(len(all)), "content dictionary lengths do not add up")
	live := snapshot.Uint8s(d)
	raw := decodeVecs(d, len(lens), byTerm)
	vec := decodeVecs(d, len(lens), byTerm)
	fresh := d.Uint()
	refreshes := d.Uint()
	d.Check(len(raw) == len(live) && len(vec) == len(live), "content item columns differ in length")
	d.Check(fresh <= uint64(len(live)), "content refresh count beyond the items")
	if d.Err() != nil {
		return
	}
	n := New(m.cfg)
	off := 0
	for _, l := range lens {
		s := all[off : off+int(l)]
		off += int(l)
		if _, dup := n.dict[s]; dup {
			d.Check(false, "content dictionary holds a term twice")
			return
		}
		n.term(s)
	}
	n.raw, n.vec, n.live = raw, vec, make([]bool, len(live))
	for i, l := range live {
		if l > 1 || (l == 0 && (len(raw[i]) > 0 || len(vec[i]) > 0)) {
			d.Check(false, "content item without text holds terms")
			return
		}
		if l == 1 {
			n.live[i] = true
			n.nLive++
			for _, e := range raw[i] {
				n.df[e.t]++
			}
			for _, e := range vec[i] {
				n.post[e.t] = append(n.post[e.t], posting{int32(i), e.w})
			}
		}
	}
	for _, l := range n.post {
		slices.SortFunc(l, postingOrder)
	}
	n.fresh, n.refreshes = int(fresh), refreshes
	n.floor, n.pool = m.floor, m.pool
	*m = *n
}
