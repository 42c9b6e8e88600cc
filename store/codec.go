package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/streamrec/streamrec/event"
)

// ErrCorrupt is returned for a stored record that cannot be decoded.
var ErrCorrupt = errors.New("store: corrupt record")

// codecVersion is the first byte of every encoded record.
const codecVersion = 1

// EncodeRecord appends the binary form of r to dst.
//
// Layout: version, kind, then for an event: id, user, item (each a uvarint
// length and the bytes), type, value (float64 bits), time (varint Unix
// nanoseconds), weight (float32 bits), context (uvarint length, bytes). Items
// and users, impressions and experiment definitions are stored as JSON
// after the kind byte.
func EncodeRecord(dst []byte, r *event.Record) ([]byte, error) {
	dst = append(dst, codecVersion, byte(r.Kind))
	switch r.Kind {
	case event.KindEvent:
		e := &r.Event
		dst = appendString(dst, e.ID)
		dst = appendString(dst, e.User)
		dst = appendString(dst, e.Item)
		dst = append(dst, byte(e.Type))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Value))
		dst = binary.AppendVarint(dst, e.Time.UnixNano())
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(e.Weight))
		dst = appendString(dst, string(e.Context))
		return dst, nil
	case event.KindItemPut, event.KindItemDelete:
		b, err := json.Marshal(&r.Item)
		if err != nil {
			return nil, fmt.Errorf("store: encode item: %w", err)
		}
		return append(dst, b...), nil
	case event.KindUserPut, event.KindUserDelete:
		b, err := json.Marshal(&r.User)
		if err != nil {
			return nil, fmt.Errorf("store: encode user: %w", err)
		}
		return append(dst, b...), nil
	case event.KindImpression:
		b, err := json.Marshal(&r.Impression)
		if err != nil {
			return nil, fmt.Errorf("store: encode impression: %w", err)
		}
		return append(dst, b...), nil
	case event.KindExperiment:
		if !json.Valid(r.Doc) {
			return nil, fmt.Errorf("store: encode experiment: not JSON")
		}
		return append(dst, r.Doc...), nil
	case event.KindSkip:
		return dst, nil
	}
	return nil, fmt.Errorf("store: encode: unknown record kind %d", r.Kind)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = ErrCorrupt
	}
	r.b = nil
}

func (r *reader) string() string {
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > uint64(len(r.b)-k) {
		r.fail()
		return ""
	}
	s := string(r.b[k : k+int(n)])
	r.b = r.b[k+int(n):]
	return s
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) fixed(n int) []byte {
	if len(r.b) < n {
		r.fail()
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) varint() int64 {
	v, k := binary.Varint(r.b)
	if k <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[k:]
	return v
}

// DecodeRecord reads a record written by EncodeRecord. It never panics on
// malformed input; it returns an error wrapping ErrCorrupt.
func DecodeRecord(b []byte) (event.Record, error) {
	var rec event.Record
	rd := reader{b: b}
	if v := rd.byte(); rd.err == nil && v != codecVersion {
		return rec, fmt.Errorf("%w: unknown version %d", ErrCorrupt, v)
	}
	rec.Kind = event.RecordKind(rd.byte())
	if rd.err != nil {
		return rec, rd.err
	}
	switch rec.Kind {
	case event.KindEvent:
		e := &rec.Event
		e.ID = rd.string()
		e.User = rd.string()
		e.Item = rd.string()
		e.Type = event.Type(rd.byte())
		e.Value = math.Float64frombits(binary.LittleEndian.Uint64(rd.fixed(8)))
		e.Time = time.Unix(0, rd.varint()).UTC()
		e.Weight = math.Float32frombits(binary.LittleEndian.Uint32(rd.fixed(4)))
		if c := rd.string(); c != "" {
			e.Context = json.RawMessage(c)
		}
		if rd.err == nil && len(rd.b) != 0 {
			return rec, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(rd.b))
		}
		return rec, rd.err
	case event.KindItemPut, event.KindItemDelete:
		if err := json.Unmarshal(rd.b, &rec.Item); err != nil {
			return rec, fmt.Errorf("%w: item: %v", ErrCorrupt, err)
		}
		return rec, nil
	case event.KindUserPut, event.KindUserDelete:
		if err := json.Unmarshal(rd.b, &rec.User); err != nil {
			return rec, fmt.Errorf("%w: user: %v", ErrCorrupt, err)
		}
		return rec, nil
	case event.KindImpression:
		if err := json.Unmarshal(rd.b, &rec.Impression); err != nil {
			return rec, fmt.Errorf("%w: impression: %v", ErrCorrupt, err)
		}
		return rec, nil
	case event.KindExperiment:
		if !json.Valid(rd.b) {
			return rec, fmt.Errorf("%w: experiment: not JSON", ErrCorrupt)
		}
		rec.Doc = json.RawMessage(append([]byte(nil), rd.b...))
		return rec, nil
	case event.KindSkip:
		if len(rd.b) != 0 {
			return rec, fmt.Errorf("%w: %d bytes after a skipped record", ErrCorrupt, len(rd.b))
		}
		return rec, nil
	}
	return rec, fmt.Errorf("%w: unknown record kind %d", ErrCorrupt, rec.Kind)
}
