// Package pipeline turns what clients send into events the models can
// apply: decode, validate, clean, fill what is missing, weight, and
// de-duplicate.
//
// Process is a pure function of its input, the configuration and the clock
// it is given, so it is safe for concurrent use. Dedup holds the one piece of
// state (the recent window) and must be driven by a single goroutine in log
// order, so that a replay of the log rebuilds the same window.
package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/streamrec/streamrec/event"
)

// Config configures the pipeline.
type Config struct {
	// Table is the scenario's event-type table.
	Table *event.Table
	// MaxIDBytes bounds user, item and event ids.
	MaxIDBytes int
	// MaxFuture is how far past the server clock a timestamp may be.
	MaxFuture time.Duration
	// MaxContextBytes bounds the free context object.
	MaxContextBytes int
}

// DefaultConfig returns the defaults for table.
func DefaultConfig(table *event.Table) Config {
	return Config{Table: table, MaxIDBytes: 256, MaxFuture: time.Hour, MaxContextBytes: 8 << 10}
}

// Pipeline validates, cleans, fills and weights events.
type Pipeline struct {
	cfg Config
}

// New returns a pipeline; zero limits take their defaults.
func New(cfg Config) *Pipeline {
	d := DefaultConfig(cfg.Table)
	if cfg.MaxIDBytes <= 0 {
		cfg.MaxIDBytes = d.MaxIDBytes
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = d.MaxFuture
	}
	if cfg.MaxContextBytes <= 0 {
		cfg.MaxContextBytes = d.MaxContextBytes
	}
	return &Pipeline{cfg: cfg}
}

// Table returns the event-type table in use.
func (p *Pipeline) Table() *event.Table { return p.cfg.Table }

// ValidationError says which field of an event is wrong and why.
type ValidationError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// cleanID trims surrounding white space and checks an id.
func (p *Pipeline) cleanID(field, s string, required bool) (string, *ValidationError) {
	s = strings.TrimSpace(s)
	if s == "" {
		if required {
			return "", invalid(field, "is required and must not be empty")
		}
		return "", nil
	}
	if len(s) > p.cfg.MaxIDBytes {
		return "", invalid(field, "is %d bytes long; at most %d allowed", len(s), p.cfg.MaxIDBytes)
	}
	if !utf8.ValidString(s) {
		return "", invalid(field, "is not valid UTF-8")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", invalid(field, "contains control characters")
	}
	return s, nil
}

// Process validates and cleans in, fills what is missing (the timestamp with
// now, the value with the type's default) and weights it.
func (p *Pipeline) Process(in *event.Input, now time.Time) (event.Event, error) {
	var ev event.Event
	var verr *ValidationError
	if ev.User, verr = p.cleanID("user_id", in.UserID, true); verr != nil {
		return ev, verr
	}
	typ := strings.ToLower(strings.TrimSpace(in.Type))
	if typ == "" {
		return ev, invalid("type", "is required (one of %s)", strings.Join(p.cfg.Table.Types(), ", "))
	}
	t, ok := event.ParseType(typ)
	rule, known := p.cfg.Table.Rule(t)
	if !ok || !known {
		return ev, invalid("type", "unknown event type %q for the %s preset (one of %s)", in.Type, p.cfg.Table.Name, strings.Join(p.cfg.Table.Types(), ", "))
	}
	ev.Type = t
	if ev.Item, verr = p.cleanID("item_id", in.ItemID, !rule.NoItem); verr != nil {
		return ev, verr
	}
	if ev.ID, verr = p.cleanID("event_id", in.EventID, false); verr != nil {
		return ev, verr
	}
	ev.Value = rule.DefaultValue
	if in.Value != nil {
		if math.IsNaN(*in.Value) || math.IsInf(*in.Value, 0) {
			return ev, invalid("value", "must be a finite number")
		}
		ev.Value = min(max(*in.Value, rule.MinValue), rule.MaxValue)
	}
	ev.Time = now.UTC()
	if in.Timestamp != nil {
		ts := in.Timestamp.Time
		if ts.After(now.Add(p.cfg.MaxFuture)) {
			return ev, invalid("timestamp", "%s is more than %s in the future", ts.Format(time.RFC3339), p.cfg.MaxFuture)
		}
		if ts.Unix() <= 0 {
			return ev, invalid("timestamp", "must be after 1970-01-01")
		}
		ev.Time = ts.UTC()
	}
	if ctx := bytes.TrimSpace(in.Context); len(ctx) > 0 && !bytes.Equal(ctx, []byte("null")) {
		if len(ctx) > p.cfg.MaxContextBytes {
			return ev, invalid("context", "is %d bytes; at most %d allowed", len(ctx), p.cfg.MaxContextBytes)
		}
		var obj map[string]json.RawMessage
		if ctx[0] != '{' || json.Unmarshal(ctx, &obj) != nil {
			return ev, invalid("context", "must be a JSON object")
		}
		ev.Context = append(json.RawMessage(nil), ctx...)
		if t == event.Search {
			var q string
			if json.Unmarshal(obj["query"], &q) != nil || strings.TrimSpace(q) == "" {
				return ev, invalid("context", "a search event needs context.query, a non-empty string")
			}
		}
	} else if t == event.Search {
		return ev, invalid("context", "a search event needs context.query, a non-empty string")
	}
	ev.Weight = p.cfg.Table.Weight(t, ev.Value)
	return ev, nil
}
