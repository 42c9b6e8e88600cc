package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

func dedupStream(seed uint64, n int) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	base := time.Unix(1_700_000_000, 0)
	out := make([]event.Event, n)
	for i := range out {
		ev := event.Event{User: fmt.Sprint("u", rng.IntN(20)), Item: fmt.Sprint("i", rng.IntN(20)), Type: event.View,
			Time: base.Add(time.Duration(i) * 300 * time.Millisecond)}
		if rng.IntN(3) > 0 {
			ev.ID = fmt.Sprint("e", rng.IntN(n)) // repeats some ids
		}
		out[i] = ev
	}
	return out
}

// TestDedupEncodeRoundTrip: a window saved and restored decides every later
// event exactly as the original does, full ring or not.
func TestDedupEncodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  int
		pre  int
	}{{"ring not full", 500, 200}, {"ring wrapped", 50, 400}, {"empty", 50, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DedupConfig{IDs: tc.ids, Window: 2 * time.Second}
			orig := NewDedup(cfg)
			evs := dedupStream(7, tc.pre+400)
			for i := range evs[:tc.pre] {
				orig.Duplicate(&evs[i])
			}
			var buf bytes.Buffer
			if err := orig.Encode(&buf); err != nil {
				t.Fatal(err)
			}
			restored, err := DecodeDedup(bytes.NewReader(buf.Bytes()), cfg)
			if err != nil {
				t.Fatal(err)
			}
			dups := 0
			for i := tc.pre; i < len(evs); i++ {
				a, b := orig.Duplicate(&evs[i]), restored.Duplicate(&evs[i])
				if a != b {
					t.Fatalf("event %d: original says duplicate=%v, restored %v", i, a, b)
				}
				if a {
					dups++
				}
			}
			if dups == 0 {
				t.Fatal("the stream has no duplicates: the check proves nothing")
			}
		})
	}
}

func TestDedupDecodeRefuses(t *testing.T) {
	d := NewDedup(DedupConfig{IDs: 10, Window: time.Second})
	var buf bytes.Buffer
	d.Encode(&buf)
	if _, err := DecodeDedup(bytes.NewReader(buf.Bytes()), DedupConfig{IDs: 20, Window: time.Second}); !errors.Is(err, ErrDedupMismatch) {
		t.Fatalf("other configuration: %v", err)
	}
	full := buf.Bytes()
	for _, b := range [][]byte{nil, []byte("SRDEDUP0"), full[:len(full)-3], append(append([]byte{}, full...), 0)} {
		if _, err := DecodeDedup(bytes.NewReader(b), d.Config()); err == nil {
			t.Fatalf("accepted %q", b)
		}
	}
}

// FuzzDecodeDedup: no input crashes the decoder or makes it hold more ids
// than configured.
func FuzzDecodeDedup(f *testing.F) {
	d := NewDedup(DedupConfig{IDs: 4, Window: time.Second})
	for _, ev := range dedupStream(1, 10) {
		d.Duplicate(&ev)
	}
	var buf bytes.Buffer
	d.Encode(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("SRDEDUP1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeDedup(bytes.NewReader(b), d.Config())
		if err == nil && len(got.ring) > 4 {
			t.Fatalf("%d ids restored into a window of 4", len(got.ring))
		}
	})
}
