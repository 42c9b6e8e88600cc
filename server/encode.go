package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/streamrec/streamrec/recommend"
)

// The recommendation replies are the hot path: they are written by hand
// into pooled buffers instead of through reflection.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// writeItems writes {"<key>":"<id>","items":[{"item_id","score","source"}...]}
// (the key part is left out when key is empty); cold_start, because and
// contributions only for the items that have them, so a plain answer costs
// what it did before they existed.
func writeItems(w http.ResponseWriter, key, id string, items []recommend.Scored) {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, '{')
	if key != "" {
		b = appendString(b, key)
		b = append(b, ':')
		b = appendString(b, id)
		b = append(b, ',')
	}
	b = append(b, `"items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"item_id":`...)
		b = appendString(b, it.Item)
		b = append(b, `,"score":`...)
		b = strconv.AppendFloat(b, it.Score, 'g', -1, 32) // scores are float32 inside: no false digits
		b = append(b, `,"source":`...)
		b = appendString(b, it.Source)
		if it.ColdStart {
			b = append(b, `,"cold_start":true`...)
		}
		if len(it.Because) > 0 {
			b = append(b, `,"because":[`...)
			for j, x := range it.Because {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, x)
			}
			b = append(b, ']')
		}
		if len(it.Parts) > 0 {
			b = append(b, `,"contributions":[`...)
			for j, p := range it.Parts {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"source":`...)
				b = appendString(b, p.Source)
				b = append(b, `,"score":`...)
				b = strconv.AppendFloat(b, p.Score, 'g', -1, 32)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	*bp = b
	bufPool.Put(bp)
}

// appendString appends s as a JSON string. Ids are validated UTF-8; the
// slow path covers everything that needs escaping.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
