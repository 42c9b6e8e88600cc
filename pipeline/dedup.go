package pipeline

import (
	"hash/maphash"
	"time"

	"github.com/streamrec/streamrec/event"
)

// DedupConfig configures de-duplication.
type DedupConfig struct {
	// IDs is how many recent event ids are remembered; a repeated event_id
	// among them is a duplicate.
	IDs int
	// Window: an event identical in user, item and type to one less than
	// Window earlier (by event time) is a duplicate. Zero turns this off.
	Window time.Duration
}

// DefaultDedupConfig remembers 1,000,000 event ids and drops identical
// events within 2 seconds (double clicks, client retries without an id).
func DefaultDedupConfig() DedupConfig {
	return DedupConfig{IDs: 1_000_000, Window: 2 * time.Second}
}

// Dedup is the de-duplication window. It keeps 64-bit hashes, not the ids
// themselves, so its memory is bounded by configuration. Not safe for
// concurrent use: it is driven by the log's single writer, and by replay.
type Dedup struct {
	cfg    DedupConfig
	seed   maphash.Seed
	ids    map[uint64]struct{}
	ring   []uint64
	pos    int
	recent map[uint64]int64 // hash of user/item/type → latest event time (ns)
	queue  []stamped
	head   int
}

type stamped struct {
	h uint64
	t int64
}

// NewDedup returns an empty window.
func NewDedup(cfg DedupConfig) *Dedup {
	if cfg.IDs <= 0 {
		cfg.IDs = DefaultDedupConfig().IDs
	}
	return &Dedup{
		cfg:    cfg,
		seed:   maphash.MakeSeed(),
		ids:    make(map[uint64]struct{}),
		recent: make(map[uint64]int64),
	}
}

// Duplicate reports whether ev repeats an event already seen, and
// remembers ev when it does not.
func (d *Dedup) Duplicate(ev *event.Event) bool {
	var idh uint64
	if ev.ID != "" {
		idh = maphash.String(d.seed, ev.ID)
		if _, ok := d.ids[idh]; ok {
			return true
		}
	}
	var kh uint64
	t := ev.Time.UnixNano()
	if d.cfg.Window > 0 && ev.Item != "" {
		var h maphash.Hash
		h.SetSeed(d.seed)
		h.WriteString(ev.User)
		h.WriteByte(0)
		h.WriteString(ev.Item)
		h.WriteByte(byte(ev.Type))
		kh = h.Sum64()
		if last, ok := d.recent[kh]; ok && t-last < int64(d.cfg.Window) && last-t < int64(d.cfg.Window) {
			return true
		}
	}
	d.remember(idh, kh, t)
	return false
}

func (d *Dedup) remember(idh, kh uint64, t int64) {
	if idh != 0 {
		if len(d.ring) < d.cfg.IDs {
			d.ring = append(d.ring, idh)
		} else {
			delete(d.ids, d.ring[d.pos])
			d.ring[d.pos] = idh
			d.pos = (d.pos + 1) % len(d.ring)
		}
		d.ids[idh] = struct{}{}
	}
	if kh == 0 {
		return
	}
	if last, ok := d.recent[kh]; !ok || t > last {
		d.recent[kh] = t
	}
	d.queue = append(d.queue, stamped{kh, t})
	// Forget keys whose latest time left the window.
	horizon := t - 2*int64(d.cfg.Window)
	for d.head < len(d.queue) && d.queue[d.head].t < horizon {
		s := d.queue[d.head]
		if d.recent[s.h] == s.t {
			delete(d.recent, s.h)
		}
		d.head++
	}
	if d.head > 4096 && d.head*2 > len(d.queue) {
		d.queue = append(d.queue[:0], d.queue[d.head:]...)
		d.head = 0
	}
}
