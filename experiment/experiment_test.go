package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/streamrec/streamrec/event"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func def(name string, shares ...float64) Definition {
	d := Definition{Name: name}
	for i, s := range shares {
		d.Variants = append(d.Variants, Variant{Name: fmt.Sprintf("v%d", i), Share: s})
	}
	d.Normalize(t0)
	return d
}

func ptr[T any](v T) *T { return &v }

func counts(a allocation, groups int) []int {
	c := make([]int, groups)
	for _, g := range a {
		if g >= 0 {
			c[g]++
		}
	}
	return c
}

func TestValidate(t *testing.T) {
	sources := []string{"item_knn", "trending"}
	cases := []struct {
		name  string
		edit  func(*Definition)
		field string // "" for valid
	}{
		{"valid", func(*Definition) {}, ""},
		{"bad name", func(d *Definition) { d.Name = "a b" }, "name"},
		{"one variant", func(d *Definition) { d.Variants = d.Variants[:1]; d.Variants[0].Share = 1 }, "variants"},
		{"shares not summing to 1", func(d *Definition) { d.Variants[0].Share = 0.6 }, "variants"},
		{"negative share", func(d *Definition) { d.Variants[0].Share, d.Variants[1].Share = -0.5, 1.5 }, "variants[0].share"},
		{"repeated variant", func(d *Definition) { d.Variants[1].Name = "v0" }, "variants[1].name"},
		{"variant named holdout", func(d *Definition) { d.Variants[1].Name = HoldoutName }, "variants[1].name"},
		{"unknown source", func(d *Definition) { d.Variants[1].Config.Blend = map[string]float32{"nope": 1} }, "variants[1].config.blend"},
		{"all-zero blend", func(d *Definition) { d.Variants[1].Config.Blend = map[string]float32{"trending": 0} }, "variants[1].config.blend"},
		{"negative weight", func(d *Definition) { d.Variants[1].Config.Blend = map[string]float32{"trending": -1} }, "variants[1].config.blend"},
		{"NaN weight", func(d *Definition) { d.Variants[1].Config.Blend = map[string]float32{"trending": float32(math.NaN())} }, "variants[1].config.blend"},
		{"diversity out of range", func(d *Definition) { d.Variants[0].Config.Diversity = ptr(1.5) }, "variants[0].config.diversity"},
		{"n too large", func(d *Definition) { d.Variants[0].Config.N = ptr(1000) }, "variants[0].config.n"},
		{"traffic 0", func(d *Definition) { d.Traffic = ptr(0.0) }, "traffic"},
		{"holdout 1", func(d *Definition) { d.Holdout = 1 }, "holdout"},
		{"end before start", func(d *Definition) { d.End = ptr(t0.Add(-time.Hour)) }, "end"},
		{"bad state", func(d *Definition) { d.State = "paused" }, "state"},
		{"tiny plan", func(d *Definition) { d.PlannedUsers = 5 }, "planned_users"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := def("e", 0.5, 0.5)
			c.edit(&d)
			err := d.Validate(sources, 100)
			if c.field == "" {
				if err != nil {
					t.Fatalf("valid definition refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field {
				t.Fatalf("got %v, want a ValidationError on %q", err, c.field)
			}
		})
	}
}

func TestAllocationMatchesShares(t *testing.T) {
	d := def("split", 0.5, 0.3, 0.2)
	d.Holdout = 0.1
	d.Traffic = ptr(0.8)
	a := allocate(&d)
	c := counts(a, 4)
	in := 8000
	want := []int{3600, 2160, 1440, 800}
	for g := range want {
		if c[g] != want[g] {
			t.Fatalf("group %d holds %d buckets, want %d (of %d in the experiment)", g, c[g], want[g], in)
		}
	}
	// Users spread over the buckets as the shares say.
	users := make([]int, 5)
	for i := range 200000 {
		g := a[bucket(d.Salt, fmt.Sprintf("user-%d", i))]
		if g < 0 {
			users[4]++
		} else {
			users[g]++
		}
	}
	for g, share := range []float64{0.36, 0.216, 0.144, 0.08, 0.2} {
		if got := float64(users[g]) / 200000; math.Abs(got-share) > 0.01 {
			t.Fatalf("group %d got %.3f of the users, want %.3f", g, got, share)
		}
	}
}

func TestAssignmentIsStableAcrossSalts(t *testing.T) {
	a, b := bucket("s1", "u"), bucket("s1", "u")
	if a != b {
		t.Fatal("the same user and salt fell in two buckets")
	}
	differ := 0
	for i := range 1000 {
		if bucket("s1", fmt.Sprint(i)) != bucket("s2", fmt.Sprint(i)) {
			differ++
		}
	}
	if differ < 990 {
		t.Fatalf("another salt moved only %d of 1000 users: experiments would not be independent", differ)
	}
}

func TestReallocateKeepsUsers(t *testing.T) {
	d := def("ramp", 0.5, 0.5)
	d.Traffic = ptr(0.2)
	a := allocate(&d)
	// Ramping traffic up from 20% to 100% keeps every user where they were.
	up := d
	up.Traffic = ptr(1.0)
	b, err := reallocate(a, &up, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] >= 0 && b[i] != a[i] {
			t.Fatalf("bucket %d moved from group %d to %d on a ramp-up", i, a[i], b[i])
		}
	}
	if c := counts(b, 3); c[0] != 5000 || c[1] != 5000 {
		t.Fatalf("after the ramp-up the groups hold %v buckets, want 5000 each", c)
	}
	// Changing the shares of a full experiment would move users: refused.
	skew := up
	skew.Variants = []Variant{{Name: "v0", Share: 0.4}, {Name: "v1", Share: 0.6}}
	if _, err := reallocate(b, &skew, false); !errors.Is(err, ErrWouldMove) || !strings.Contains(err.Error(), "v1") {
		t.Fatalf("got %v, want ErrWouldMove naming v1", err)
	}
	// Asked to, it moves the fewest users: 10% of them, from v0 to v1.
	c, err := reallocate(b, &skew, true)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i := range b {
		if b[i] != c[i] {
			moved++
			if b[i] != 0 || c[i] != 1 {
				t.Fatalf("bucket %d moved from %d to %d", i, b[i], c[i])
			}
		}
	}
	if moved != 1000 {
		t.Fatalf("%d buckets moved, want 1000", moved)
	}
	// Ramping down retires buckets; their users leave, nobody switches.
	down := skew
	down.Traffic = ptr(0.5)
	e, err := reallocate(c, &down, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c {
		if e[i] >= 0 && e[i] != c[i] {
			t.Fatalf("bucket %d switched group on a ramp-down", i)
		}
	}
	if got := counts(e, 3); got[0] != 2000 || got[1] != 3000 {
		t.Fatalf("after the ramp-down the groups hold %v, want 2000 and 3000", got)
	}
}

func TestApplyChange(t *testing.T) {
	d := def("c", 0.5, 0.5)
	got, err := d.Apply(Change{State: ptr(Stopped), Shares: map[string]float64{"v0": 0.7, "v1": 0.3}})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Stopped || got.Variants[0].Share != 0.7 || d.Variants[0].Share != 0.5 {
		t.Fatalf("change applied wrongly: %+v (original %+v)", got, d)
	}
	if _, err := d.Apply(Change{Shares: map[string]float64{"nope": 1}}); err == nil {
		t.Fatal("a share for an unknown variant was accepted")
	}
}

func TestIDs(t *testing.T) {
	k := NewIDs([]byte("0123456789abcdef0123456789abcdef"))
	at := time.UnixMilli(1764547200123).UTC()
	id := k.New("alice", at)
	if got, ok := k.Check(id, "alice"); !ok || !got.Equal(at) {
		t.Fatalf("Check(%q, alice) = %v, %v; want %v, true", id, got, ok, at)
	}
	if _, ok := k.Check(id, "bob"); ok {
		t.Fatal("an id issued to alice checked for bob")
	}
	other := NewIDs([]byte("another key, another server......"))
	if _, ok := other.Check(id, "alice"); ok {
		t.Fatal("an id checked under another key")
	}
	for _, bad := range []string{"", "x", id[:len(id)-1], id + "A", strings.Repeat("A", len(id))} {
		if _, ok := k.Check(bad, "alice"); ok {
			t.Fatalf("made-up id %q checked", bad)
		}
	}
	if k.New("alice", at) == id {
		t.Fatal("two answers got the same id")
	}
}

// FuzzDefinition: any JSON definition is refused with a ValidationError
// or, when valid, allocates exactly its targets.
func FuzzDefinition(f *testing.F) {
	f.Add(`{"name":"e","variants":[{"name":"a","share":0.5},{"name":"b","share":0.5,"config":{"blend":{"trending":1}}}]}`)
	f.Add(`{"name":"e","traffic":0.3,"holdout":0.1,"variants":[{"name":"a","share":0.2},{"name":"b","share":0.8}]}`)
	f.Add(`{"name":"e","variants":[{"name":"a","share":1e308},{"name":"b","share":-1e308}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var d Definition
		if json.Unmarshal([]byte(doc), &d) != nil {
			return
		}
		d.Normalize(t0)
		if err := d.Validate([]string{"trending"}, 100); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			return
		}
		a := allocate(&d)
		want := targets(&d)
		got := counts(a, len(want))
		total := 0
		for g := range want {
			if got[g] != want[g] {
				t.Fatalf("group %d holds %d buckets, want %d", g, got[g], want[g])
			}
			total += want[g]
		}
		if total != int(math.Round(*d.Traffic*Buckets)) {
			t.Fatalf("the groups hold %d buckets, the traffic asks %v", total, *d.Traffic)
		}
	})
}

// BenchmarkNewID is the cost every answer pays for its recommendation id.
func BenchmarkNewID(b *testing.B) {
	k := NewIDs([]byte("0123456789abcdef0123456789abcdef"))
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = k.New("user-12345", at)
	}
}

// BenchmarkAssign is the cost of finding a user's variants in two running
// experiments.
func BenchmarkAssign(b *testing.B) {
	tr := New(DefaultConfig())
	for _, name := range []string{"one", "two"} {
		r := event.Record{Kind: event.KindExperiment, Doc: Record(def(name, 0.5, 0.5), false)}
		tr.Record(&r)
	}
	at := t0.Add(time.Hour)
	var dst []Assignment
	b.ReportAllocs()
	for b.Loop() {
		dst = tr.Assign("user-12345", at, dst[:0])
	}
}
