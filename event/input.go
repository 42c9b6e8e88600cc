package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Input is an event as a client sends it, before the pipeline validated,
// cleaned and weighted it. Its JSON form is the API's event object.
type Input struct {
	EventID   string          `json:"event_id,omitempty"`
	UserID    string          `json:"user_id"`
	ItemID    string          `json:"item_id,omitempty"`
	Type      string          `json:"type"`
	Value     *float64        `json:"value,omitempty"`
	Timestamp *Timestamp      `json:"timestamp,omitempty"`
	Context   json.RawMessage `json:"context,omitempty"`
}

// Timestamp is a point in time given either as RFC 3339 text or as a number
// of Unix seconds (fractions allowed).
type Timestamp struct{ time.Time }

// UnmarshalJSON accepts "2024-05-01T10:00:00Z" or 1714557600 (or 1714557600.25).
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 && bytes.IndexByte(b[1:len(b)-1], '"') < 0 {
			s = string(b[1 : len(b)-1]) // no escapes: the text itself
		} else if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		tm, err := ParseTime(s)
		if err != nil {
			return err
		}
		t.Time = tm
		return nil
	}
	tm, err := ParseTime(string(b))
	if err != nil {
		return err
	}
	t.Time = tm
	return nil
}

// MarshalJSON writes RFC 3339 text.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.Time.UTC().Format(time.RFC3339Nano))
}

// ParseTime reads a timestamp given as RFC 3339 text or as Unix seconds
// (fractional allowed).
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f > 1e11 || f < -1e11 {
		return time.Time{}, fmt.Errorf("timestamp %q: want RFC 3339 text or Unix seconds", s)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}
