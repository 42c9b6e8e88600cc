package pipeline

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/cespare/xxhash/v2"

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
	seed   uint64 // random per window, kept with it when it is saved
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
		seed:   rand.Uint64(),
		ids:    make(map[uint64]struct{}),
		recent: make(map[uint64]int64),
	}
}

// Duplicate reports whether ev repeats an event already seen, and
// remembers ev when it does not.
func (d *Dedup) Duplicate(ev *event.Event) bool {
	var idh uint64
	var h xxhash.Digest
	if ev.ID != "" {
		h.ResetWithSeed(d.seed)
		h.WriteString(ev.ID)
		idh = h.Sum64() | 1 // never 0, which means "no id"
		if _, ok := d.ids[idh]; ok {
			return true
		}
	}
	var kh uint64
	t := ev.Time.UnixNano()
	if d.cfg.Window > 0 && ev.Item != "" {
		h.ResetWithSeed(d.seed)
		h.WriteString(ev.User)
		h.Write([]byte{0})
		h.WriteString(ev.Item)
		h.Write([]byte{byte(ev.Type)})
		kh = h.Sum64() | 1
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

// dedupMagic starts a saved window; the version is its last byte.
const dedupMagic = "SRDEDUP1"

// Encode writes the window (its seed, the remembered ids oldest first, and
// the recent user/item/type keys) so that DecodeDedup restores exactly the
// same decisions: a restart from a snapshot need not replay the log before
// it to rebuild the window.
func (d *Dedup) Encode(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		bw.Write(b[:])
	}
	bw.WriteString(dedupMagic)
	put(d.seed)
	put(uint64(d.cfg.IDs))
	put(uint64(d.cfg.Window))
	put(uint64(len(d.ring)))
	for i := range d.ring { // oldest first
		put(d.ring[(d.pos+i)%len(d.ring)])
	}
	q := d.queue[d.head:]
	put(uint64(len(q)))
	for _, s := range q {
		put(s.h)
		put(uint64(s.t))
	}
	return bw.Flush()
}

// ErrDedupMismatch is returned by DecodeDedup for a window saved under
// another configuration (it is then rebuilt from the log instead).
var ErrDedupMismatch = errors.New("dedup: saved window has another configuration")

// DecodeDedup reads a window written by Encode, for cfg.
func DecodeDedup(r io.Reader, cfg DedupConfig) (*Dedup, error) {
	d := NewDedup(cfg)
	br := bufio.NewReader(r)
	magic := make([]byte, len(dedupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != dedupMagic {
		return nil, fmt.Errorf("dedup: not a saved window")
	}
	var b [8]byte
	var err error
	get := func() uint64 {
		if err == nil {
			_, err = io.ReadFull(br, b[:])
		}
		return binary.LittleEndian.Uint64(b[:])
	}
	d.seed = get()
	ids, window := get(), time.Duration(get())
	if err == nil && (ids != uint64(d.cfg.IDs) || window != d.cfg.Window) {
		return nil, fmt.Errorf("%w: %d ids and %s saved, %d and %s configured", ErrDedupMismatch, ids, window, d.cfg.IDs, d.cfg.Window)
	}
	n := get()
	if err == nil && n > uint64(d.cfg.IDs) {
		return nil, fmt.Errorf("dedup: saved window holds %d ids, more than its %d", n, d.cfg.IDs)
	}
	for range n {
		if err != nil {
			break
		}
		h := get()
		d.ring = append(d.ring, h)
		d.ids[h] = struct{}{}
	}
	if len(d.ring) == d.cfg.IDs {
		d.pos = 0 // the oldest is first
	}
	nq := get()
	for range nq {
		if err != nil {
			break
		}
		s := stamped{get(), int64(get())}
		d.queue = append(d.queue, s)
		if last, ok := d.recent[s.h]; !ok || s.t > last {
			d.recent[s.h] = s.t
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dedup: saved window is truncated: %w", err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("dedup: data after the saved window")
	}
	return d, nil
}

// Config is the window's configuration.
func (d *Dedup) Config() DedupConfig { return d.cfg }
