package recommend

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/streamrec/streamrec/ids"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/snapshot"
)

// snapshotMagic names the layout; version 2 added retention (history
// starts and milliseconds, the engine's clock, trending counts and bound,
// fixed-point item-kNN counts); version 3 sessions and one named section
// per model; version 4 each item's first event time. Older snapshots are
// refused and the log replayed.
const snapshotMagic = "streamrec-engine-4"

// ErrSnapshotConfig is returned when a snapshot was taken under another
// model configuration: the log must be replayed instead.
var ErrSnapshotConfig = errors.New("snapshot taken with another model configuration")

// fingerprint names everything a snapshot's state depends on besides the log.
func (e *Engine) fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v|%+v|gap %d", e.consumed, e.keep, e.gap)
	for _, m := range e.snaps {
		fmt.Fprintf(&b, "|%s %s", m.name, m.s.Fingerprint())
	}
	return b.String()
}

// Applied is the number of records applied: the log sequence number the
// state reflects.
func (e *Engine) Applied() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.applied
}

// WriteSnapshot writes the whole model state to w, under the read lock (so
// writes wait while it runs), and returns the sequence number it reflects.
func (e *Engine) WriteSnapshot(w io.Writer) (uint64, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	enc := snapshot.NewEncoder(w)
	enc.String(snapshotMagic)
	enc.String(e.fingerprint())
	enc.Uint(e.applied)
	enc.Uint(uint64(e.clock))
	e.users.Encode(enc)
	e.items.Encode(enc)
	e.cats.Encode(enc)
	lens := make([]uint32, len(e.blocked))
	flags := make([]uint8, len(e.blocked))
	var cats []int32
	for i := range e.blocked {
		lens[i] = uint32(len(e.itemCats[i]))
		cats = append(cats, e.itemCats[i]...)
		if e.blocked[i] && !e.deleted[i] {
			flags[i] |= 1
		}
		if e.deleted[i] {
			flags[i] |= 2
		}
	}
	enc.Slice(lens, len(lens))
	enc.Slice(flags, len(flags))
	enc.Slice(cats, len(cats))
	enc.Slice(e.first, len(e.first))
	e.hist.Encode(enc)
	enc.Slice(e.sessKey, len(e.sessKey))
	for _, m := range e.snaps {
		enc.String(m.name)
		m.s.Encode(enc)
	}
	return e.applied, enc.Flush()
}

// ReadSnapshot replaces the state of a new, empty engine with the snapshot
// of size bytes in r. It fails with ErrSnapshotConfig when the snapshot was
// taken under another configuration, and with snapshot.ErrCorrupt when it is
// damaged; the engine is then unusable and a fresh one must replay the log.
func (e *Engine) ReadSnapshot(r io.Reader, size int64) error {
	e.lockWrite()
	defer e.mu.Unlock()
	d := snapshot.NewDecoder(r, size)
	if m := d.String(); d.Err() == nil && m != snapshotMagic {
		return fmt.Errorf("%w: not an engine snapshot", snapshot.ErrCorrupt)
	}
	if fp := d.String(); d.Err() == nil && fp != e.fingerprint() {
		return ErrSnapshotConfig
	}
	e.applied = d.Uint()
	clock := d.Uint()
	d.Check(clock <= math.MaxUint32, "engine clock")
	e.clock = uint32(clock)
	e.users = ids.Decode(d)
	e.items = ids.Decode(d)
	e.cats = ids.Decode(d)
	lens := snapshot.Uint32s(d)
	flags := snapshot.Uint8s(d)
	cats := snapshot.Int32s(d)
	e.first = snapshot.Uint32s(d)
	d.Check(len(lens) == e.items.Len() && len(flags) == len(lens) && len(e.first) == len(lens), "catalogue size")
	if err := d.Err(); err != nil {
		return err
	}
	e.blocked = make([]bool, len(lens))
	e.deleted = make([]bool, len(lens))
	e.itemCats = make([][]int32, len(lens))
	e.members = make([][]int32, e.cats.Len())
	off := 0
	for i, l := range lens {
		if off+int(l) > len(cats) {
			return fmt.Errorf("%w: categories do not add up", snapshot.ErrCorrupt)
		}
		e.itemCats[i] = cats[off : off+int(l) : off+int(l)]
		off += int(l)
		e.blocked[i], e.deleted[i] = flags[i]&3 != 0, flags[i]&2 != 0
		for _, c := range e.itemCats[i] {
			if c < 0 || int(c) >= len(e.members) {
				return fmt.Errorf("%w: unknown category", snapshot.ErrCorrupt)
			}
			e.members[c] = append(e.members[c], int32(i))
		}
	}
	e.hist = *history.Decode(d)
	if e.keep.maxAgeSeconds() > 0 {
		e.hist.TrackAge()
	}
	e.sessKey = snapshot.Uint64s(d)
	d.Check(len(e.sessKey) == e.users.Len(), "session keys")
	e.sessAt = make([]uint32, len(e.sessKey))
	for u := range min(e.hist.Users(), len(e.sessAt)) {
		h := e.hist.User(int32(u))
		e.sessAt[u] = e.hist.Start(int32(u)) + uint32(history.SessionStart(h))
	}
	for _, m := range e.snaps {
		if name := d.String(); d.Err() == nil && name != m.name {
			return fmt.Errorf("%w: section %q where %q belongs", snapshot.ErrCorrupt, name, m.name)
		}
		m.s.Decode(d)
	}
	if err := d.Err(); err != nil {
		return err
	}
	if e.hist.Users() > e.users.Len() {
		return fmt.Errorf("%w: histories name unknown users", snapshot.ErrCorrupt)
	}
	for _, m := range e.snaps {
		if x, ok := m.s.(interface{ Items() int }); ok && x.Items() > e.items.Len() {
			return fmt.Errorf("%w: %s names unknown items", snapshot.ErrCorrupt, m.name)
		}
	}
	for u := range e.hist.Users() {
		for _, h := range e.hist.User(int32(u)) {
			if h.Item < 0 || int(h.Item) >= e.items.Len() || int(h.Type) >= len(e.consumed) {
				return fmt.Errorf("%w: a history names an unknown item or type", snapshot.ErrCorrupt)
			}
		}
	}
	return nil
}
