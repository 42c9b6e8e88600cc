// Package store is streamrec's durable state on disk, in Pebble: the event
// log (every record in sequence order), the catalogue documents (items and
// users, as last written), and a per-user index of events.
//
// Invariant: Append returns only after the batch is synced to disk, and
// sequence numbers are dense and increasing. Append must be called by one
// goroutine at a time (the log's single writer); reads are safe at any time.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/streamrec/streamrec/event"
)

// ErrNotFound is returned for an item or user that is not stored.
var ErrNotFound = errors.New("not found")

// Key prefixes. Stored on disk: never change them.
const (
	prefixLog  = 'l' // l + seq(8, big endian) → record
	prefixItem = 'i' // i + item id → item JSON
	prefixUser = 'u' // u + user id → user JSON
	prefixHist = 'h' // h + user id + 0x00 + seq(8) → empty (user's events)
)

// Store is an open data directory.
type Store struct {
	dir  string
	db   *pebble.DB
	last atomic.Uint64 // last sequence number written; 0 when empty
	buf  []byte

	snapMu sync.Mutex // held while old snapshots are removed, and by Checkpoint

	mu      sync.Mutex // guards the health Pebble reports through its events
	stall   string     // why Pebble stalls writes, while it does
	bgErr   error      // the latest background error (a failed flush)
	bgErrAt time.Time
}

// ErrInUse is returned by Open when another process holds the directory.
var ErrInUse = errors.New("in use by another streamrec process")

// Open opens (or creates) the store in dir.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir}
	// The per-user index keys arrive in no order, so every compaction out
	// of level 0 rewrites what it overlaps below. Letting 16 files gather
	// in level 0 before one (Pebble's default is 4; writes stall at 48, not
	// 12) and a 256 MB base level (64 MB) mean fewer, larger rewrites:
	// durable ingest +13–30% and reads under ingest p99 16 → 11 ms
	// (docs/BENCHMARKS.md). The memtable stays Pebble's 4 MB on purpose: a
	// 64 MB one was faster still, but its write-ahead log then grew to 64 MB
	// before it was recycled, and on a nearly full disk that write fails
	// mid-log, which Pebble treats as fatal (TestFullDisk).
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, EventListener: s.events(),
		L0CompactionThreshold: 16, L0StopWritesThreshold: 48, LBaseMaxBytes: 256 << 20})
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock held by current process") {
			return nil, fmt.Errorf("store: data directory %s is %w (stop it, or give this one another --data)", dir, ErrInUse)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.db = db
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if it.Last() {
		s.last.Store(binary.BigEndian.Uint64(it.Key()[1:]))
	}
	if err := it.Close(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return s, nil
}

// events records what Pebble reports about its health: write stalls (a
// memtable that cannot be flushed, as on a full disk) and background errors.
func (s *Store) events() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			s.mu.Lock()
			s.bgErr, s.bgErrAt = err, time.Now()
			s.mu.Unlock()
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			s.mu.Lock()
			s.stall = info.Reason
			s.mu.Unlock()
		},
		WriteStallEnd: func() {
			s.mu.Lock()
			s.stall = ""
			s.mu.Unlock()
		},
	}
}

// Trouble describes what is known to keep writes from becoming durable
// ("the disk is full (no space left on device)", a write stall's reason),
// or is "" when nothing is.
func (s *Store) Trouble() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	if err := s.bgErr; err != nil && time.Since(s.bgErrAt) < time.Minute {
		if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device") {
			parts = append(parts, "the disk is full (no space left on device)")
		} else {
			parts = append(parts, "the store reports: "+err.Error())
		}
	}
	if s.stall != "" {
		parts = append(parts, "the store stalls writes ("+s.stall+")")
	}
	return strings.Join(parts, "; ")
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// LastSeq is the sequence number of the last record appended (0: none).
func (s *Store) LastSeq() uint64 { return s.last.Load() }

func logKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func histKey(user string, seq uint64) []byte {
	k := make([]byte, 0, len(user)+10)
	k = append(k, prefixHist)
	k = append(k, user...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// Append writes recs to the log, with the catalogue documents and indexes
// they change, in one batch, and syncs it. It returns the sequence number of
// the first record.
func (s *Store) Append(recs []event.Record) (uint64, error) {
	first := s.last.Load() + 1
	b := s.db.NewBatch()
	defer b.Close()
	seq := first
	for i := range recs {
		r := &recs[i]
		var err error
		s.buf, err = EncodeRecord(s.buf[:0], r)
		if err != nil {
			return 0, err
		}
		if err := b.Set(logKey(seq), s.buf, nil); err != nil {
			return 0, fmt.Errorf("store: append: %w", err)
		}
		if err := s.index(b, r, seq); err != nil {
			return 0, fmt.Errorf("store: append: %w", err)
		}
		seq++
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("store: append: commit: %w", err)
	}
	s.last.Store(seq - 1)
	return first, nil
}

func (s *Store) index(b *pebble.Batch, r *event.Record, seq uint64) error {
	switch r.Kind {
	case event.KindEvent:
		return b.Set(histKey(r.Event.User, seq), nil, nil)
	case event.KindItemPut:
		doc, err := json.Marshal(&r.Item)
		if err != nil {
			return err
		}
		return b.Set(append([]byte{prefixItem}, r.Item.ID...), doc, nil)
	case event.KindItemDelete:
		return b.Delete(append([]byte{prefixItem}, r.Item.ID...), nil)
	case event.KindUserPut:
		doc, err := json.Marshal(&r.User)
		if err != nil {
			return err
		}
		return b.Set(append([]byte{prefixUser}, r.User.ID...), doc, nil)
	case event.KindUserDelete:
		return b.Delete(append([]byte{prefixUser}, r.User.ID...), nil)
	}
	return nil
}

// Replay calls fn for every record with a sequence number >= from, in order.
func (s *Store) Replay(from uint64, fn func(seq uint64, r event.Record) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(from), UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		return fmt.Errorf("store: replay: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[1:])
		rec, err := DecodeRecord(it.Value())
		if err != nil {
			return fmt.Errorf("store: replay record %d: %w", seq, err)
		}
		if err := fn(seq, rec); err != nil {
			return err
		}
	}
	return it.Error()
}

// Record returns the record with sequence number seq.
func (s *Store) Record(seq uint64) (event.Record, error) {
	v, closer, err := s.db.Get(logKey(seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return event.Record{}, ErrNotFound
	}
	if err != nil {
		return event.Record{}, fmt.Errorf("store: record %d: %w", seq, err)
	}
	defer closer.Close()
	return DecodeRecord(v)
}

func (s *Store) getJSON(key []byte, v any) error {
	b, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: get: %w", err)
	}
	defer closer.Close()
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// Item returns the stored item.
func (s *Store) Item(id string) (event.Item, error) {
	var it event.Item
	err := s.getJSON(append([]byte{prefixItem}, id...), &it)
	return it, err
}

// User returns the stored user profile.
func (s *Store) User(id string) (event.User, error) {
	var u event.User
	err := s.getJSON(append([]byte{prefixUser}, id...), &u)
	return u, err
}

// UserEvents returns the user's latest n events, newest first.
func (s *Store) UserEvents(user string, n int) ([]event.Event, error) {
	var out []event.Event
	err := s.EachUserEvent(user, n, func(e *event.Event) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// EachUserEvent calls fn with the user's latest n events, newest first, one
// at a time (so that a reply can be streamed without holding them all); an
// error from fn stops the walk and is returned.
func (s *Store) EachUserEvent(user string, n int, fn func(*event.Event) error) error {
	lower := append(append([]byte{prefixHist}, user...), 0)
	upper := append(append([]byte{prefixHist}, user...), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("store: user events: %w", err)
	}
	defer it.Close()
	seen := 0
	for ok := it.Last(); ok && seen < n; ok = it.Prev() {
		k := it.Key()
		if len(k) != len(lower)+8 || !bytes.HasPrefix(k, lower) {
			continue
		}
		rec, err := s.Record(binary.BigEndian.Uint64(k[len(lower):]))
		if err != nil {
			return err
		}
		seen++
		if err := fn(&rec.Event); err != nil {
			return err
		}
	}
	return it.Error()
}

// quietLogger keeps Pebble's informational chatter out of the server log;
// errors still surface through returned errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
