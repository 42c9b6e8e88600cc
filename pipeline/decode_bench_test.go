package pipeline

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkDecode500 decodes one POST /v1/events body of 500 events, the
// shape bench ingest sends (ids, type, value, timestamp, a small context).
func BenchmarkDecode500(b *testing.B) {
	var body bytes.Buffer
	body.WriteByte('[')
	for i := range 500 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"event_id":"e-%d","user_id":"u%d","item_id":"i%d","type":"view","value":1,"timestamp":"2026-12-01T10:%02d:%02dZ","context":{"device":"mobile","session_id":"s%d"}}`,
			i, i%97, i%331, i/60%60, i%60, i%13)
	}
	body.WriteByte(']')
	raw := body.Bytes()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		out, rej, err := Decode(bytes.NewReader(raw), false, 10000)
		if err != nil || len(rej) != 0 || len(out) != 500 {
			b.Fatalf("decode: %d events, %v rejected, %v", len(out), rej, err)
		}
	}
}
