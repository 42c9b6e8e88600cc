package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/streamrec/streamrec/experiment"
	"github.com/streamrec/streamrec/recommend"
)

// The recommendation replies are the hot path: they are written by hand
// into pooled buffers instead of through reflection.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// header is what a list answer says besides its items: the user (or item)
// it answers, its recommendation id, and the user's experiment variants.
type header struct {
	key, id          string // the key part is left out when key is empty
	recommendationID string
	assigned         []experiment.Assignment
}

// writeItems writes {"<key>":"<id>","items":[{"item_id","score","source"}...]}
// (the key part is left out when key is empty); cold_start, because and
// contributions only for the items that have them, so a plain answer costs
// what it did before they existed.
func writeItems(w http.ResponseWriter, key, id string, items []recommend.Scored) {
	writeList(w, header{key: key, id: id}, items)
}

// writeList writes a list answer with its header.
func writeList(w http.ResponseWriter, h header, items []recommend.Scored) {
	bp := bufPool.Get().(*[]byte)
	b := appendList((*bp)[:0], h, items)
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	*bp = b
	bufPool.Put(bp)
}

// appendList appends the JSON object of a list answer (one line, no
// newline): {"user_id", "recommendation_id", "experiments": {name:
// variant}, "items": [...]}, each header part only when set.
func appendList(b []byte, h header, items []recommend.Scored) []byte {
	b = appendHeader(b, h)
	b = appendItems(b, items)
	return append(b, '}')
}

// appendHeader appends the opening of a list answer up to its items.
func appendHeader(b []byte, h header) []byte {
	b = append(b, '{')
	if h.key != "" {
		b = appendString(b, h.key)
		b = append(b, ':')
		b = appendString(b, h.id)
		b = append(b, ',')
	}
	if h.recommendationID != "" {
		b = append(b, `"recommendation_id":`...)
		b = appendString(b, h.recommendationID)
		b = append(b, ',')
	}
	if len(h.assigned) > 0 {
		b = append(b, `"experiments":{`...)
		for i, a := range h.assigned {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, a.Experiment)
			b = append(b, ':')
			b = appendString(b, a.Variant)
		}
		b = append(b, "},"...)
	}
	return append(b, `"items":`...)
}

// appendItems appends the JSON array of a list's items.
func appendItems(b []byte, items []recommend.Scored) []byte {
	b = append(b, '[')
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
	return append(b, ']')
}

// writeRaw writes a list answer whose items are already encoded (a cached
// answer: appendItems's array).
func writeRaw(w http.ResponseWriter, h header, items []byte) {
	bp := bufPool.Get().(*[]byte)
	b := appendHeader((*bp)[:0], h)
	b = append(b, items...)
	b = append(b, "}\n"...)
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
