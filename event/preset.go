package event

import (
	"fmt"
	"sort"
	"strings"
)

// TypeRule says how one event type turns into an implicit-feedback weight.
type TypeRule struct {
	// Weight is the base weight. Negative weights are negative feedback
	// (a dislike); zero means the event is context only (a search).
	Weight float32 `json:"weight" yaml:"weight"`
	// ScaleByValue multiplies Weight by the event's value (a watched fraction).
	ScaleByValue bool `json:"scale_by_value,omitempty" yaml:"scale_by_value,omitempty"`
	// DefaultValue fills a missing value.
	DefaultValue float64 `json:"default_value" yaml:"default_value"`
	// MinValue and MaxValue bound the value; values outside are clamped.
	MinValue float64 `json:"min_value" yaml:"min_value"`
	MaxValue float64 `json:"max_value" yaml:"max_value"`
	// Consumed marks the item as seen by the user: it is no longer recommended to them.
	Consumed bool `json:"consumed" yaml:"consumed"`
	// NoItem marks a type that carries no item (search): item_id is optional.
	NoItem bool `json:"no_item,omitempty" yaml:"no_item,omitempty"`
}

// Table maps every accepted event type to its rule. Types absent from the
// table are rejected as unknown.
type Table struct {
	Name  string
	rules [numTypes]TypeRule
	known [numTypes]bool
}

// Rule returns the rule for t and whether t is accepted.
func (tb *Table) Rule(t Type) (TypeRule, bool) {
	if int(t) >= len(tb.rules) {
		return TypeRule{}, false
	}
	return tb.rules[t], tb.known[t]
}

// Set accepts t with rule r.
func (tb *Table) Set(t Type, r TypeRule) {
	tb.rules[t] = r
	tb.known[t] = true
}

// Types lists the accepted types by name, sorted.
func (tb *Table) Types() []string {
	var out []string
	for i := range tb.known {
		if tb.known[i] {
			out = append(out, Type(i).String())
		}
	}
	sort.Strings(out)
	return out
}

// Weight turns (type, value) into the event's weight. The value must already
// be filled and clamped.
func (tb *Table) Weight(t Type, value float64) float32 {
	r := tb.rules[t]
	if r.ScaleByValue {
		return r.Weight * float32(value)
	}
	return r.Weight
}

// Preset names.
const (
	PresetEcommerce = "ecommerce"
	PresetVideo     = "video"
)

// Presets lists the scenario presets that ship with streamrec.
func Presets() []string { return []string{PresetEcommerce, PresetVideo} }

// Preset returns the weight table of a named scenario.
//
// e-commerce: view < click < favorite < cart < purchase; a search carries a
// query and is context, not an item interaction.
// video: watch weighted by the watched fraction, like, dislike as a negative
// signal, comment, share.
// Both accept rating (MovieLens-style imports; every rating is an
// interaction of weight 1, the value is kept for the record).
func Preset(name string) (*Table, error) {
	tb := &Table{Name: name}
	rating := TypeRule{Weight: 1, DefaultValue: 0, MinValue: 0, MaxValue: 10, Consumed: true}
	switch strings.ToLower(name) {
	case PresetEcommerce, "":
		tb.Name = PresetEcommerce
		tb.Set(View, TypeRule{Weight: 1, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(Click, TypeRule{Weight: 2, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(Favorite, TypeRule{Weight: 4, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(Cart, TypeRule{Weight: 6, DefaultValue: 1, MinValue: 0, MaxValue: 1e9, Consumed: true})
		tb.Set(Purchase, TypeRule{Weight: 10, DefaultValue: 1, MinValue: 0, MaxValue: 1e9, Consumed: true})
		tb.Set(Search, TypeRule{Weight: 0, NoItem: true, MinValue: 0, MaxValue: 0})
		tb.Set(Rating, rating)
	case PresetVideo:
		tb.Set(Watch, TypeRule{Weight: 3, ScaleByValue: true, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(View, TypeRule{Weight: 0.5, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: false})
		tb.Set(Like, TypeRule{Weight: 4, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(Dislike, TypeRule{Weight: -4, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(Comment, TypeRule{Weight: 3, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(Share, TypeRule{Weight: 5, DefaultValue: 1, MinValue: 0, MaxValue: 1, Consumed: true})
		tb.Set(Search, TypeRule{Weight: 0, NoItem: true, MinValue: 0, MaxValue: 0})
		tb.Set(Rating, rating)
	default:
		return nil, fmt.Errorf("event: unknown preset %q (known: %s)", name, strings.Join(Presets(), ", "))
	}
	return tb, nil
}
