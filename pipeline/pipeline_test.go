package pipeline

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func f64(v float64) *float64 { return &v }

func ts(t time.Time) *event.Timestamp { return &event.Timestamp{Time: t} }

func mustPipeline(t testing.TB, preset string) *Pipeline {
	t.Helper()
	tb, err := event.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	return New(DefaultConfig(tb))
}

func TestProcessValidation(t *testing.T) {
	p := mustPipeline(t, event.PresetEcommerce)
	long := strings.Repeat("x", 257)
	tests := []struct {
		name  string
		in    event.Input
		field string // "" means valid
	}{
		{"valid view", event.Input{UserID: "u", ItemID: "i", Type: "view"}, ""},
		{"type is case and space insensitive", event.Input{UserID: "u", ItemID: "i", Type: " Purchase "}, ""},
		{"alias favourite", event.Input{UserID: "u", ItemID: "i", Type: "favourite"}, ""},
		{"missing user", event.Input{ItemID: "i", Type: "view"}, "user_id"},
		{"blank user", event.Input{UserID: "   ", ItemID: "i", Type: "view"}, "user_id"},
		{"user too long", event.Input{UserID: long, ItemID: "i", Type: "view"}, "user_id"},
		{"user at the limit", event.Input{UserID: long[:256], ItemID: "i", Type: "view"}, ""},
		{"user not UTF-8", event.Input{UserID: "u\xff", ItemID: "i", Type: "view"}, "user_id"},
		{"user with control char", event.Input{UserID: "u\x00v", ItemID: "i", Type: "view"}, "user_id"},
		{"missing item", event.Input{UserID: "u", Type: "view"}, "item_id"},
		{"item too long", event.Input{UserID: "u", ItemID: long, Type: "view"}, "item_id"},
		{"event id too long", event.Input{EventID: long, UserID: "u", ItemID: "i", Type: "view"}, "event_id"},
		{"missing type", event.Input{UserID: "u", ItemID: "i"}, "type"},
		{"unknown type", event.Input{UserID: "u", ItemID: "i", Type: "teleport"}, "type"},
		{"type of another preset", event.Input{UserID: "u", ItemID: "i", Type: "watch"}, "type"},
		{"far future", event.Input{UserID: "u", ItemID: "i", Type: "view", Timestamp: ts(now.Add(2 * time.Hour))}, "timestamp"},
		{"slightly future is fine", event.Input{UserID: "u", ItemID: "i", Type: "view", Timestamp: ts(now.Add(time.Minute))}, ""},
		{"before 1970", event.Input{UserID: "u", ItemID: "i", Type: "view", Timestamp: ts(time.Unix(-5, 0))}, "timestamp"},
		{"context not an object", event.Input{UserID: "u", ItemID: "i", Type: "view", Context: json.RawMessage(`[1]`)}, "context"},
		{"context object", event.Input{UserID: "u", ItemID: "i", Type: "view", Context: json.RawMessage(`{"page":"home"}`)}, ""},
		{"search with query, no item", event.Input{UserID: "u", Type: "search", Context: json.RawMessage(`{"query":"red shoes"}`)}, ""},
		{"search without query", event.Input{UserID: "u", Type: "search"}, "context"},
		{"search with empty query", event.Input{UserID: "u", Type: "search", Context: json.RawMessage(`{"query":" "}`)}, "context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Process(&tt.in, now)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError on %s, got %v", tt.field, err)
			}
			if ve.Field != tt.field {
				t.Fatalf("want field %s, got %s (%s)", tt.field, ve.Field, ve.Reason)
			}
		})
	}
}

func TestProcessCleansFillsAndWeights(t *testing.T) {
	ecom := mustPipeline(t, event.PresetEcommerce)
	video := mustPipeline(t, event.PresetVideo)
	when := now.Add(-time.Hour)
	tests := []struct {
		name   string
		p      *Pipeline
		in     event.Input
		weight float32
		value  float64
		time   time.Time
	}{
		{"ids trimmed, time filled", ecom, event.Input{UserID: " u ", ItemID: " i ", Type: "view"}, 1, 1, now},
		{"given time kept", ecom, event.Input{UserID: "u", ItemID: "i", Type: "view", Timestamp: ts(when)}, 1, 1, when},
		{"click", ecom, event.Input{UserID: "u", ItemID: "i", Type: "click"}, 2, 1, now},
		{"favorite", ecom, event.Input{UserID: "u", ItemID: "i", Type: "favorite"}, 4, 1, now},
		{"cart", ecom, event.Input{UserID: "u", ItemID: "i", Type: "cart"}, 6, 1, now},
		{"purchase", ecom, event.Input{UserID: "u", ItemID: "i", Type: "purchase"}, 10, 1, now},
		{"search weighs nothing", ecom, event.Input{UserID: "u", Type: "search", Context: json.RawMessage(`{"query":"q"}`)}, 0, 0, now},
		{"watch scaled by fraction", video, event.Input{UserID: "u", ItemID: "i", Type: "watch", Value: f64(0.5)}, 1.5, 0.5, now},
		{"watch fraction clamped", video, event.Input{UserID: "u", ItemID: "i", Type: "watch", Value: f64(7)}, 3, 1, now},
		{"watch default is a full watch", video, event.Input{UserID: "u", ItemID: "i", Type: "watch"}, 3, 1, now},
		{"dislike is negative", video, event.Input{UserID: "u", ItemID: "i", Type: "dislike"}, -4, 1, now},
		{"share", video, event.Input{UserID: "u", ItemID: "i", Type: "share"}, 5, 1, now},
		{"rating keeps its value", ecom, event.Input{UserID: "u", ItemID: "i", Type: "rating", Value: f64(4)}, 1, 4, now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.p.Process(&tt.in, now)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Weight != tt.weight || ev.Value != tt.value || !ev.Time.Equal(tt.time) {
				t.Fatalf("got weight %v value %v time %v; want %v %v %v", ev.Weight, ev.Value, ev.Time, tt.weight, tt.value, tt.time)
			}
			if ev.User != strings.TrimSpace(tt.in.UserID) || ev.Item != strings.TrimSpace(tt.in.ItemID) {
				t.Fatalf("ids not cleaned: %q %q", ev.User, ev.Item)
			}
		})
	}
}

func TestDedup(t *testing.T) {
	ev := func(id, user, item string, typ event.Type, at time.Duration) event.Event {
		return event.Event{ID: id, User: user, Item: item, Type: typ, Time: now.Add(at)}
	}
	tests := []struct {
		name   string
		events []event.Event
		dups   []bool
	}{
		{"same event id", []event.Event{ev("e1", "u", "a", event.View, 0), ev("e1", "v", "b", event.Click, time.Hour)}, []bool{false, true}},
		{"identical within window", []event.Event{ev("", "u", "a", event.View, 0), ev("", "u", "a", event.View, time.Second)}, []bool{false, true}},
		{"identical after window", []event.Event{ev("", "u", "a", event.View, 0), ev("", "u", "a", event.View, 3*time.Second)}, []bool{false, false}},
		{"other type is not a duplicate", []event.Event{ev("", "u", "a", event.View, 0), ev("", "u", "a", event.Click, 0)}, []bool{false, false}},
		{"other user is not a duplicate", []event.Event{ev("", "u", "a", event.View, 0), ev("", "v", "a", event.View, 0)}, []bool{false, false}},
		{"distinct ids within window still identical", []event.Event{ev("e1", "u", "a", event.View, 0), ev("e2", "u", "a", event.View, 0)}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDedup(DefaultDedupConfig())
			for i := range tt.events {
				if got := d.Duplicate(&tt.events[i]); got != tt.dups[i] {
					t.Fatalf("event %d: duplicate = %v, want %v", i, got, tt.dups[i])
				}
			}
		})
	}
}

func TestDedupForgetsOldIDs(t *testing.T) {
	d := NewDedup(DedupConfig{IDs: 2})
	for i, id := range []string{"a", "b", "c"} {
		e := event.Event{ID: id, User: "u", Item: id, Type: event.View, Time: now.Add(time.Duration(i) * time.Minute)}
		if d.Duplicate(&e) {
			t.Fatalf("%s: unexpected duplicate", id)
		}
	}
	old := event.Event{ID: "a", User: "u", Item: "z", Type: event.View, Time: now.Add(time.Hour)}
	if d.Duplicate(&old) {
		t.Fatal("id a should have left a window of 2 ids")
	}
	recent := event.Event{ID: "c", User: "u", Item: "y", Type: event.View, Time: now.Add(time.Hour)}
	if !d.Duplicate(&recent) {
		t.Fatal("id c is still in the window")
	}
}
