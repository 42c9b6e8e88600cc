package experiment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/experiment/stats"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/snapshot"
)

// Name is the tracker's name among the engine's parts.
const Name = "experiments"

// Config says how events are attributed to the lists shown.
type Config struct {
	// Window is, per event type, how long after an impression an event on
	// one of its items is attributed to it when the event names no
	// recommendation id.
	Window [event.NumTypes]time.Duration
	// Conversion marks the event types that count as conversions (with
	// their value) besides counting as a click.
	Conversion [event.NumTypes]bool
	// MaxShown bounds the impressed items remembered per user for
	// attribution (the newest are kept).
	MaxShown int
}

// DefaultConfig attributes purchases and carts within 24 hours of the
// impression and every other type within 30 minutes; purchases are
// conversions.
func DefaultConfig() Config {
	var c Config
	for t := range c.Window {
		c.Window[t] = 30 * time.Minute
	}
	c.Window[event.Purchase] = 24 * time.Hour
	c.Window[event.Cart] = 24 * time.Hour
	c.Conversion[event.Purchase] = true
	c.MaxShown = 256
	return c
}

// skew is how far before an impression an event may be stamped and still
// be attributed to it: client clocks differ from the server's.
const skew = time.Minute

// Tracker is the experiments' state, kept from the log: definitions with
// their bucket allocations, the users exposed to each, what they were shown
// and what it earned. It is one of the engine's parts (a model.Recorder):
// records reach it in log order under the engine's write lock; its reads
// (assignment, results) take its own lock and never the engine's.
type Tracker struct {
	cfg Config

	mu     sync.RWMutex
	exps   []*exp
	byName map[string]*exp
	users  map[string]*user

	lookMu sync.Mutex
	looks  map[string]*stats.Running // results: the running always-valid p-values, by experiment/variant/metric
}

type exp struct {
	def   Definition
	alloc allocation
	arms  []Arm // variants, then the holdout
	// fromFile is the definition last written from the configuration
	// file, nil when none was.
	fromFile *Definition
}

// Arm is one group's figures. Three metrics, each as the moments of a
// per-user ratio: clicks per impression (CTR), conversions per user and
// value per user; the covariate of each is the user's events before the
// experiment's start (CUPED).
type Arm struct {
	Users       int64
	Impressions int64
	Clicks      int64
	Conversions int64
	Value       float64
	CTR         stats.Moments
	Conv        stats.Moments
	Val         stats.Moments
}

type user struct {
	Events uint32 `json:"e"` // events seen (while any experiment was defined)
	// Before is, per experiment (index in exps), the user's events before
	// its start: taken at their first event stamped at or after it (the
	// CUPED covariate: it cannot depend on the treatment).
	Before  []before `json:"b,omitempty"`
	Shown   []shown  `json:"s"` // impressed items, oldest first
	Members []member `json:"m"`
}

type before struct {
	Exp    int32  `json:"x"`
	Events uint32 `json:"n"`
}

type shown struct {
	Item    string `json:"i"`
	Rec     string `json:"r"`
	At      int64  `json:"t"` // unix milliseconds
	Clicked bool   `json:"c,omitempty"`
	// Counted has bit k set when Members[k] counted this impression: only
	// those members count what it earns.
	Counted uint32 `json:"k,omitempty"`
}

// maxMembers bounds the experiments one user is counted in (the bits of
// shown.Counted); past it, further experiments leave the user out.
const maxMembers = 32

// member is a user's part in one experiment.
type member struct {
	Exp   int32 `json:"x"` // index in exps
	Group int16 `json:"g"`
	// Left is set when the user's bucket left this group (a ramp-down, a
	// reassignment): they are counted no more.
	Left  bool    `json:"l,omitempty"`
	Pre   float64 `json:"p"` // events before the experiment's start (the CUPED covariate)
	Imp   float64 `json:"i"`
	Clk   float64 `json:"c"`
	Conv  float64 `json:"v"`
	Value float64 `json:"a"`
}

// New returns an empty tracker.
func New(cfg Config) *Tracker {
	if cfg.MaxShown <= 0 {
		cfg.MaxShown = DefaultConfig().MaxShown
	}
	return &Tracker{cfg: cfg, byName: map[string]*exp{}, users: map[string]*user{}, looks: map[string]*stats.Running{}}
}

// Name implements model.Model.
func (t *Tracker) Name() string { return Name }

// Apply implements model.Model: the tracker reads whole records (Record).
func (t *Tracker) Apply(*model.Interaction) {}

// Record applies one log record.
func (t *Tracker) Record(r *event.Record) {
	switch r.Kind {
	case event.KindExperiment:
		t.mu.Lock()
		t.define(r.Doc)
		t.mu.Unlock()
	case event.KindImpression:
		t.mu.Lock()
		t.impression(&r.Impression)
		t.mu.Unlock()
	case event.KindEvent:
		if len(t.exps) == 0 { // only the writer changes exps
			return
		}
		t.mu.Lock()
		t.event(&r.Event)
		t.mu.Unlock()
	}
}

// define applies a definition record. One the server did not check (or
// that a concurrent change made invalid) changes nothing, the same on every
// replay.
func (t *Tracker) define(doc json.RawMessage) {
	var rec record
	if err := json.Unmarshal(doc, &rec); err != nil {
		return
	}
	d := rec.Definition
	var file *Definition
	if rec.File {
		file = &rec.Definition
	}
	if x := t.byName[d.Name]; x != nil {
		if !SameIdentity(d, x.def) || d.Traffic == nil {
			return
		}
		a, err := reallocate(x.alloc, &d, rec.Reassign)
		if err != nil {
			return
		}
		x.def, x.alloc = d, a
		if file != nil {
			x.fromFile = file
		}
		return
	}
	if d.Traffic == nil || len(d.Variants) < 2 {
		return
	}
	x := &exp{def: d, alloc: allocate(&d), arms: make([]Arm, len(d.Variants)+1), fromFile: file}
	t.exps = append(t.exps, x)
	t.byName[d.Name] = x
}

func (t *Tracker) user(id string) *user {
	u := t.users[id]
	if u == nil {
		u = &user{}
		t.users[id] = u
	}
	return u
}

func (t *Tracker) impression(im *event.Impression) {
	if len(t.exps) == 0 {
		return
	}
	u := t.user(im.User)
	at := im.Time.UnixMilli()
	// An item shown again under the same recommendation id is a retried
	// POST, not a second impression.
	items := make([]string, 0, len(im.Items))
	for _, it := range im.Items {
		if !slices.ContainsFunc(u.Shown, func(s shown) bool { return s.Rec == im.RecommendationID && s.Item == it }) && !slices.Contains(items, it) {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return
	}
	imp := float64(len(items))
	var counted uint32
	for i, x := range t.exps {
		if !x.def.active(im.Time) {
			continue
		}
		g := x.alloc[bucket(x.def.Salt, im.User)]
		k := slices.IndexFunc(u.Members, func(m member) bool { return m.Exp == int32(i) })
		if k >= 0 && !u.Members[k].Left && u.Members[k].Group != g {
			u.Members[k].Left = true // out of the experiment, or moved by a reassignment
		}
		if g < 0 || k >= 0 && u.Members[k].Left {
			continue
		}
		if k < 0 {
			if len(u.Members) == maxMembers {
				continue
			}
			pre := float64(u.Events)
			if b := slices.IndexFunc(u.Before, func(b before) bool { return b.Exp == int32(i) }); b >= 0 {
				pre = float64(u.Before[b].Events)
			}
			u.Members = append(u.Members, member{Exp: int32(i), Group: g, Pre: pre})
			k = len(u.Members) - 1
			a := &x.arms[g]
			a.Users++
			a.CTR.Add(0, 0, pre)
			a.Conv.Add(1, 0, pre)
			a.Val.Add(1, 0, pre)
		}
		m := &u.Members[k]
		a := &x.arms[m.Group]
		a.Impressions += int64(len(items))
		a.CTR.Update(m.Imp, m.Clk, m.Pre, m.Imp+imp, m.Clk, m.Pre)
		m.Imp += imp
		counted |= 1 << k
	}
	for _, it := range items {
		u.Shown = append(u.Shown, shown{Item: it, Rec: im.RecommendationID, At: at, Counted: counted})
	}
	if over := len(u.Shown) - t.cfg.MaxShown; over > 0 {
		u.Shown = append(u.Shown[:0], u.Shown[over:]...)
	}
}

// maxValue bounds an event's value as experiments sum it (and its square):
// the sums stay finite.
const maxValue = 1e12

func (t *Tracker) event(ev *event.Event) {
	u := t.user(ev.User)
	defer func() { u.Events++ }()
	// The covariate: the events before each experiment's start.
	for i, x := range t.exps {
		if !ev.Time.Before(x.def.Start) && !slices.ContainsFunc(u.Before, func(b before) bool { return b.Exp == int32(i) }) {
			u.Before = append(u.Before, before{Exp: int32(i), Events: u.Events})
		}
	}
	if ev.Item == "" || ev.Weight <= 0 || len(u.Shown) == 0 {
		return
	}
	s := t.attribute(u, ev)
	if s == nil {
		return
	}
	conv := t.cfg.Conversion[ev.Type]
	value := ev.Value
	if !(value > -maxValue && value < maxValue) { // NaN too
		value = 0
	}
	for k := range u.Members {
		m := &u.Members[k]
		if s.Counted&(1<<k) == 0 {
			continue // this impression did not count for this experiment
		}
		a := &t.exps[m.Exp].arms[m.Group]
		if !s.Clicked {
			a.Clicks++
			a.CTR.Update(m.Imp, m.Clk, m.Pre, m.Imp, m.Clk+1, m.Pre)
			m.Clk++
		}
		if conv {
			a.Conversions++
			a.Value += value
			a.Conv.Update(1, m.Conv, m.Pre, 1, m.Conv+1, m.Pre)
			a.Val.Update(1, m.Value, m.Pre, 1, m.Value+value, m.Pre)
			m.Conv++
			m.Value += value
		}
	}
	s.Clicked = true
}

// attribute finds the impression an event is attributed to: the one its
// context's recommendation_id names, else the latest impression of the item
// within the event type's window.
func (t *Tracker) attribute(u *user, ev *event.Event) *shown {
	if id := recommendationID(ev.Context); id != "" {
		for i := len(u.Shown) - 1; i >= 0; i-- {
			if s := &u.Shown[i]; s.Rec == id && s.Item == ev.Item {
				return s
			}
		}
		return nil
	}
	at := ev.Time.UnixMilli()
	window := t.cfg.Window[ev.Type].Milliseconds()
	for i := len(u.Shown) - 1; i >= 0; i-- {
		s := &u.Shown[i]
		if s.Item == ev.Item && at >= s.At-skew.Milliseconds() && at <= s.At+window {
			return s
		}
	}
	return nil
}

var recKey = []byte(`"recommendation_id"`)

// recommendationID is the context's recommendation_id, "" for none.
func recommendationID(ctx json.RawMessage) string {
	if !bytes.Contains(ctx, recKey) {
		return ""
	}
	var c struct {
		ID string `json:"recommendation_id"`
	}
	if json.Unmarshal(ctx, &c) != nil {
		return ""
	}
	return c.ID
}

// Assignment is a user's group in one running experiment.
type Assignment struct {
	Experiment string `json:"experiment"`
	Variant    string `json:"variant"`
	// Config is the variant's override (nil for the holdout).
	Config *Override `json:"-"`
}

// Assign lists the running experiments that count user at now, with the
// user's group in each, in the order the experiments were defined.
func (t *Tracker) Assign(user string, now time.Time, dst []Assignment) []Assignment {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, x := range t.exps {
		if !x.def.active(now) {
			continue
		}
		g := x.alloc[bucket(x.def.Salt, user)]
		switch {
		case g < 0:
		case int(g) == len(x.def.Variants):
			dst = append(dst, Assignment{Experiment: x.def.Name, Variant: HoldoutName})
		default:
			v := &x.def.Variants[g]
			dst = append(dst, Assignment{Experiment: x.def.Name, Variant: v.Name, Config: &v.Config})
		}
	}
	return dst
}

// Definitions lists the experiments, in the order they were defined.
func (t *Tracker) Definitions() []Definition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Definition, len(t.exps))
	for i, x := range t.exps {
		out[i] = x.def
	}
	return out
}

// Definition is the experiment named name.
func (t *Tracker) Definition(name string) (Definition, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	x := t.byName[name]
	if x == nil {
		return Definition{}, false
	}
	return x.def, true
}

// FileDefinition is the definition of the experiment named name that the
// configuration file wrote last, and false when the file never did.
func (t *Tracker) FileDefinition(name string) (Definition, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	x := t.byName[name]
	if x == nil || x.fromFile == nil {
		return Definition{}, false
	}
	return *x.fromFile, true
}

// Check says whether a change of the experiment named name can be applied
// as the log will apply it: nil, or ErrWouldMove with the reason.
func (t *Tracker) Check(d Definition, reassign bool) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	x := t.byName[d.Name]
	if x == nil {
		return nil
	}
	_, err := reallocate(x.alloc, &d, reassign)
	return err
}

// Fingerprint implements model.Snapshotter.
func (t *Tracker) Fingerprint() string {
	return fmt.Sprintf("windows %v conversions %v shown %d", t.cfg.Window, t.cfg.Conversion, t.cfg.MaxShown)
}

// state is the tracker as a snapshot keeps it.
type state struct {
	Exps  []expState       `json:"exps"`
	Users map[string]*user `json:"users"`
}

type expState struct {
	Def      Definition  `json:"def"`
	Alloc    []int16     `json:"alloc"`
	Arms     []Arm       `json:"arms"`
	FromFile *Definition `json:"from_file,omitempty"`
}

// Encode implements model.Snapshotter.
func (t *Tracker) Encode(e *snapshot.Encoder) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := state{Users: t.users}
	for _, x := range t.exps {
		s.Exps = append(s.Exps, expState{Def: x.def, Alloc: x.alloc, Arms: x.arms, FromFile: x.fromFile})
	}
	b, err := json.Marshal(&s)
	if err != nil {
		panic(err) // plain data always marshals
	}
	e.Bytes(b)
}

// Decode implements model.Snapshotter.
func (t *Tracker) Decode(d *snapshot.Decoder) {
	b := d.Bytes()
	if d.Err() != nil {
		return
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		d.Check(false, "experiments: "+err.Error())
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exps, t.byName, t.users = nil, map[string]*exp{}, s.Users
	if t.users == nil {
		t.users = map[string]*user{}
	}
	for _, x := range s.Exps {
		ok := len(x.Alloc) == Buckets && len(x.Arms) == len(x.Def.Variants)+1 && x.Def.Traffic != nil
		d.Check(ok, "experiment "+x.Def.Name)
		if !ok {
			return
		}
		e := &exp{def: x.Def, alloc: x.Alloc, arms: x.Arms, fromFile: x.FromFile}
		t.exps = append(t.exps, e)
		t.byName[x.Def.Name] = e
	}
	for _, u := range t.users {
		for _, m := range u.Members {
			ok := int(m.Exp) < len(t.exps) && int(m.Group) < len(t.exps[m.Exp].arms) && m.Group >= 0
			d.Check(ok, "experiment member")
			if !ok {
				return
			}
		}
	}
}

// Bytes implements model.Sized: an estimate.
func (t *Tracker) Bytes() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := int64(len(t.exps)) * (Buckets*2 + 512)
	for id, u := range t.users {
		n += int64(len(id)) + 64 + int64(cap(u.Shown))*48 + int64(cap(u.Members))*56
		for _, s := range u.Shown {
			n += int64(len(s.Item) + len(s.Rec))
		}
	}
	return n
}
