// Package experiment runs online A/B experiments on the engine's own
// configuration: which variant each user is in (deterministic: a hash of the
// user id and the experiment's salt), which lists were shown (impressions),
// which later events those lists earned (attribution), and what the
// variants' figures say (package stats: intervals valid under continuous
// monitoring, sample-ratio mismatch, Holm's correction, CUPED).
//
// Invariant: everything here is derived from the log in log order —
// definitions and their changes, impressions and events are log records and
// the Tracker is a deterministic consumer of them — so a restart, a replay
// or another replica of the same log reaches the same assignments and the
// same results.
package experiment

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Buckets is how finely traffic is split: a user falls in one of Buckets
// buckets by hash, and each bucket belongs to one variant (or to none).
const Buckets = 10000

// Override is what a variant changes in the engine's configuration for the
// users in it. A field left out keeps the server's setting.
type Override struct {
	// Blend replaces the blend's weights (by source name; a source it does
	// not name weighs 0) and turns the learned ranker off: the variant
	// serves exactly this blend. {"trending": 1} serves trending alone.
	Blend map[string]float32 `json:"blend,omitempty" yaml:"blend"`
	// Ranker false serves the configured blend instead of the learned
	// ranker.
	Ranker *bool `json:"ranker,omitempty" yaml:"ranker"`
	// Diversity sets the request's diversity when the request gives none.
	Diversity *float64 `json:"diversity,omitempty" yaml:"diversity"`
	// N sets how many items are answered when the request gives no n.
	N *int `json:"n,omitempty" yaml:"n"`
}

// Variant is one arm of an experiment.
type Variant struct {
	Name   string   `json:"name" yaml:"name"`
	Share  float64  `json:"share" yaml:"share"`
	Config Override `json:"config" yaml:"config"`
}

// States of an experiment.
const (
	Running = "running"
	Stopped = "stopped"
)

// Definition is an experiment as defined in the configuration file or
// through the API. The first variant is the control.
type Definition struct {
	Name     string    `json:"name" yaml:"name"`
	Salt     string    `json:"salt,omitempty" yaml:"salt"` // default: the name
	Variants []Variant `json:"variants" yaml:"variants"`
	// Traffic is the share of all users in the experiment (default 1).
	Traffic *float64 `json:"traffic,omitempty" yaml:"traffic"`
	// Holdout is the share of the experiment's users held back: served the
	// server's own configuration and counted apart from every variant.
	Holdout float64    `json:"holdout,omitempty" yaml:"holdout"`
	Start   time.Time  `json:"start,omitzero" yaml:"start"` // default: when defined
	End     *time.Time `json:"end,omitempty" yaml:"end"`
	State   string     `json:"state,omitempty" yaml:"state"` // running (default) or stopped
	// PlannedUsers is the users per variant the experiment is sized for:
	// it tunes the sequential intervals to be narrowest there (default
	// 10,000). Any number keeps them valid.
	PlannedUsers int `json:"planned_users,omitempty" yaml:"planned_users"`
}

// Change is a change to a running experiment (PATCH): any field set
// replaces the definition's. Shares that would move users between existing
// variants are refused unless Reassign is true.
type Change struct {
	State    *string            `json:"state,omitempty"`
	Shares   map[string]float64 `json:"shares,omitempty"`
	Traffic  *float64           `json:"traffic,omitempty"`
	Holdout  *float64           `json:"holdout,omitempty"`
	End      *time.Time         `json:"end,omitempty"`
	Reassign bool               `json:"reassign,omitempty"`
}

// record is a definition as the log holds it: the whole definition after
// the change, and whether users may move.
type record struct {
	Definition Definition `json:"definition"`
	Reassign   bool       `json:"reassign,omitempty"`
	// File marks a definition written from the configuration file.
	File bool `json:"file,omitempty"`
}

// Record is the log document of a definition (new or changed).
func Record(d Definition, reassign bool) json.RawMessage {
	return marshal(record{Definition: d, Reassign: reassign})
}

// FileRecord is the log document of a definition from the configuration
// file (the tracker remembers it, so that an unchanged file leaves later
// API changes alone).
func FileRecord(d Definition) json.RawMessage {
	return marshal(record{Definition: d, File: true})
}

func marshal(r record) json.RawMessage {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // a Definition always marshals
	}
	return b
}

// SameIdentity says whether a and b split users alike: the same salt and
// the same variants, in the same order. A definition may change anything
// else and keep its users.
func SameIdentity(a, b Definition) bool {
	if a.Salt != b.Salt || len(a.Variants) != len(b.Variants) {
		return false
	}
	for i := range a.Variants {
		if a.Variants[i].Name != b.Variants[i].Name {
			return false
		}
	}
	return true
}

// ValidationError names what is wrong with a definition or a change.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// ErrWouldMove is returned for a change of shares that cannot be made
// without moving users between existing variants.
var ErrWouldMove = errors.New("would move users between variants")

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Normalize fills a definition's defaults: the salt, the start (at now when
// none is given), the state, the traffic and the planned users.
func (d *Definition) Normalize(now time.Time) {
	if d.Salt == "" {
		d.Salt = d.Name
	}
	if d.Start.IsZero() {
		d.Start = now.UTC().Truncate(time.Second)
	}
	if d.State == "" {
		d.State = Running
	}
	if d.Traffic == nil {
		one := 1.0
		d.Traffic = &one
	}
	if d.PlannedUsers == 0 {
		d.PlannedUsers = 10000
	}
}

// Validate checks a normalized definition. sources names the engine's
// sources (a blend may weigh only those); maxN bounds a variant's n.
func (d *Definition) Validate(sources []string, maxN int) error {
	if !namePattern.MatchString(d.Name) {
		return invalid("name", "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit; got %q", d.Name)
	}
	if len(d.Variants) < 2 {
		return invalid("variants", "an experiment needs at least 2 variants (the first is the control); got %d", len(d.Variants))
	}
	if len(d.Variants) > 16 {
		return invalid("variants", "at most 16 variants; got %d", len(d.Variants))
	}
	sum := 0.0
	seen := map[string]int{}
	for i, v := range d.Variants {
		f := fmt.Sprintf("variants[%d]", i)
		if !namePattern.MatchString(v.Name) || v.Name == HoldoutName {
			return invalid(f+".name", "must be 1 to 64 letters, digits, '_', '.' or '-' and not %q; got %q", HoldoutName, v.Name)
		}
		if j, ok := seen[v.Name]; ok {
			return invalid(f+".name", "%q is also variants[%d]'s name; variant names must differ", v.Name, j)
		}
		seen[v.Name] = i
		if !(v.Share >= 0 && v.Share <= 1) {
			return invalid(f+".share", "must be from 0 to 1; got %v", v.Share)
		}
		sum += v.Share
		if err := v.Config.validate(f+".config", sources, maxN); err != nil {
			return err
		}
	}
	if math.Abs(sum-1) > 1e-6 {
		return invalid("variants", "the shares must sum to 1; they sum to %v", sum)
	}
	if t := *d.Traffic; !(t > 0 && t <= 1) {
		return invalid("traffic", "must be above 0 and at most 1; got %v", t)
	}
	if !(d.Holdout >= 0 && d.Holdout < 1) {
		return invalid("holdout", "must be at least 0 and below 1; got %v", d.Holdout)
	}
	if d.End != nil && !d.End.After(d.Start) {
		return invalid("end", "must be after the start (%s); got %s", d.Start.Format(time.RFC3339), d.End.Format(time.RFC3339))
	}
	if d.State != Running && d.State != Stopped {
		return invalid("state", "must be %q or %q; got %q", Running, Stopped, d.State)
	}
	if d.PlannedUsers < 100 {
		return invalid("planned_users", "must be at least 100; got %d", d.PlannedUsers)
	}
	return nil
}

func (o *Override) validate(field string, sources []string, maxN int) error {
	for name, w := range o.Blend {
		if !slices.Contains(sources, name) {
			return invalid(field+".blend", "names no source %q; the sources are %v", name, sources)
		}
		if !(w >= 0) || math.IsInf(float64(w), 0) {
			return invalid(field+".blend", "weight of %q must be a number ≥ 0; got %v", name, w)
		}
	}
	if o.Blend != nil {
		pos := false
		for _, w := range o.Blend {
			pos = pos || w > 0
		}
		if !pos {
			return invalid(field+".blend", "must weigh at least one source above 0")
		}
	}
	if o.Diversity != nil && !(*o.Diversity >= 0 && *o.Diversity <= 1) {
		return invalid(field+".diversity", "must be from 0 to 1; got %v", *o.Diversity)
	}
	if o.N != nil && (*o.N < 1 || *o.N > maxN) {
		return invalid(field+".n", "must be from 1 to %d (limits.max_n); got %d", maxN, *o.N)
	}
	return nil
}

// Apply returns the definition after change c (validated by the caller).
func (d Definition) Apply(c Change) (Definition, error) {
	out := d
	out.Variants = slices.Clone(d.Variants)
	if c.State != nil {
		out.State = *c.State
	}
	if c.Traffic != nil {
		out.Traffic = c.Traffic
	}
	if c.Holdout != nil {
		out.Holdout = *c.Holdout
	}
	if c.End != nil {
		out.End = c.End
	}
	for name, share := range c.Shares {
		i := slices.IndexFunc(out.Variants, func(v Variant) bool { return v.Name == name })
		if i < 0 {
			return d, invalid("shares", "names no variant %q of %s", name, d.Name)
		}
		out.Variants[i].Share = share
	}
	return out, nil
}

// HoldoutName is the group the held-back users are reported under.
const HoldoutName = "holdout"

// Group values of a bucket besides a variant's index.
const (
	free    int16 = -1 // never given to a group: a share that grows may take it
	retired int16 = -2 // given back by a group that shrank: taken again only on reassign
)

// allocation is which group each bucket belongs to: a variant's index,
// len(variants) for the holdout, free or retired.
type allocation []int16

// targets is how many buckets each group (variants, then the holdout)
// should hold: largest remainders, so they sum exactly.
func targets(d *Definition) []int {
	in := int(math.Round(*d.Traffic * Buckets))
	hold := int(math.Round(d.Holdout * float64(in)))
	out := make([]int, len(d.Variants)+1)
	out[len(d.Variants)] = hold
	rest := in - hold
	type rem struct {
		i int
		f float64
	}
	var rems []rem
	given := 0
	for i, v := range d.Variants {
		x := v.Share * float64(rest)
		out[i] = int(math.Floor(x))
		given += out[i]
		rems = append(rems, rem{i, x - math.Floor(x)})
	}
	slices.SortStableFunc(rems, func(a, b rem) int { return cmp.Compare(b.f, a.f) }) // largest first
	for k := 0; given < rest && k < len(rems); k++ {
		out[rems[k].i]++
		given++
	}
	return out
}

// allocate gives a new experiment's buckets: the holdout first, then each
// variant a contiguous range (the hash spreads users evenly over buckets).
func allocate(d *Definition) allocation {
	a := make(allocation, Buckets)
	for i := range a {
		a[i] = free
	}
	t := targets(d)
	b := 0
	order := append([]int{len(d.Variants)}, seq(len(d.Variants))...)
	for _, g := range order {
		for range t[g] {
			a[b] = int16(g)
			b++
		}
	}
	return a
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// reallocate moves buckets to the changed definition's targets with the
// fewest moves: a group above its target gives back its last buckets
// (retired: their users leave the experiment); a group below takes free
// buckets, then, only when reassign is set, retired ones and those just
// given back (their users move). Without reassign, a group that cannot grow
// from free buckets fails with ErrWouldMove and nothing changes.
func reallocate(a allocation, d *Definition, reassign bool) (allocation, error) {
	t := targets(d)
	out := slices.Clone(a)
	count := make([]int, len(t))
	for _, g := range out {
		if g >= 0 && int(g) < len(t) {
			count[g]++
		}
	}
	for g := range t {
		for b := len(out) - 1; b >= 0 && count[g] > t[g]; b-- {
			if out[b] == int16(g) {
				out[b] = retired
				count[g]--
			}
		}
	}
	pools := []int16{free}
	if reassign {
		pools = append(pools, retired)
	}
	for g := range t {
		for _, pool := range pools {
			for b := 0; b < len(out) && count[g] < t[g]; b++ {
				if out[b] == pool {
					out[b] = int16(g)
					count[g]++
				}
			}
		}
		if count[g] < t[g] {
			name := HoldoutName
			if g < len(d.Variants) {
				name = d.Variants[g].Name
			}
			return a, fmt.Errorf("%w: %s cannot grow to %d of %d buckets from the buckets no variant ever held (%d short); lower the traffic of the others first, or send \"reassign\": true to move users", ErrWouldMove, name, t[g], Buckets, t[g]-count[g])
		}
	}
	return out, nil
}

// bucket is the bucket of user under salt.
func bucket(salt, user string) int {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(salt)
	d.Write([]byte{0})
	d.WriteString(user)
	return int(d.Sum64() % Buckets)
}

// active says whether the experiment assigns users at t.
func (d *Definition) active(t time.Time) bool {
	return d.State == Running && !t.Before(d.Start) && (d.End == nil || t.Before(*d.End))
}
