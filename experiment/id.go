package experiment

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"io"
	"sync"
	"time"
)

// IDs issues recommendation ids and recognises them: an id names the moment
// it was issued and carries a keyed hash (HMAC-SHA256) of that moment and
// the user, so any process with the same key can tell an id it issued to
// that user from a made-up or mistyped one without remembering every
// answer.
type IDs struct {
	key  []byte
	macs sync.Pool // of hash.Hash: HMAC-SHA256 under key, reused (a new one costs 9 allocations)
}

// idLen is the bytes of an id before base64: 6 of milliseconds, 6 random,
// 8 of hash.
const idLen = 20

// NewIDs returns ids keyed by key (at least 16 bytes).
func NewIDs(key []byte) *IDs {
	if len(key) < 16 {
		panic("experiment: recommendation id key shorter than 16 bytes")
	}
	k := &IDs{key: key}
	k.macs.New = func() any { return hmac.New(sha256.New, k.key) }
	return k
}

// New returns a fresh id of an answer to user at t.
func (k *IDs) New(user string, t time.Time) string {
	var b [idLen]byte
	ms := uint64(max(t.UnixMilli(), 0))
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:12])
	k.sign(b[:12], user, b[12:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Check reports when id was issued to user, and false when this key did
// not issue id to user.
func (k *IDs) Check(id, user string) (time.Time, bool) {
	if base64.RawURLEncoding.DecodedLen(len(id)) != idLen {
		return time.Time{}, false
	}
	var b [idLen]byte
	if _, err := base64.RawURLEncoding.Decode(b[:], []byte(id)); err != nil {
		return time.Time{}, false
	}
	var want [8]byte
	k.sign(b[:12], user, want[:])
	if !hmac.Equal(want[:], b[12:]) {
		return time.Time{}, false
	}
	ms := uint64(binary.BigEndian.Uint16(b[0:2]))<<32 | uint64(binary.BigEndian.Uint32(b[2:6]))
	return time.UnixMilli(int64(ms)).UTC(), true
}

func (k *IDs) sign(head []byte, user string, dst []byte) {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(head)
	io.WriteString(m, user)
	var sum [sha256.Size]byte
	copy(dst, m.Sum(sum[:0]))
	k.macs.Put(m)
}
