package sessionknn

import (
	"math"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
)

// sessionGap is the inactivity after which the engine starts a new session.
const sessionGap = 30 * 60

// driver builds Interactions and Queries from (user, item, time) triples the
// way the engine does: dense ids, the user's history before the event, a new
// session after a 30-minute gap.
type driver struct {
	m       interface{ Apply(*model.Interaction) }
	hist    [][]history.Entry
	session []int // by user: where the current session starts in hist
	items   int
	clock   float64
	acc     []float32
	mark    []uint32
	blocked []bool
}

func newDriver(m interface{ Apply(*model.Interaction) }) *driver { return &driver{m: m} }

// apply applies an event of weight 1 at time t (seconds).
func (d *driver) apply(user, item int32, t float64) {
	d.applyW(user, item, t, 1)
}

func (d *driver) applyW(user, item int32, t float64, w float32) {
	for int(user) >= len(d.hist) {
		d.hist = append(d.hist, nil)
		d.session = append(d.session, 0)
	}
	d.items = max(d.items, int(item)+1)
	h := d.hist[user]
	sec := math.Floor(t)
	e := history.Entry{Item: item, Time: uint32(sec), Milli: uint16(math.Round((t - sec) * 1000)), Weight: w, Type: event.Type(1)}
	if e.Milli > 999 {
		e.Milli = 999
	}
	start := d.session[user]
	if len(h) == 0 || t-h[len(h)-1].Seconds() > sessionGap {
		e.Flags |= history.NewSession
		start = len(h)
	}
	x := &model.Interaction{User: user, Item: item, Entry: e, History: h, Session: start, Users: len(d.hist), Items: d.items}
	d.m.Apply(x)
	d.session[user] = start
	d.hist[user] = append(h, e)
	d.clock = max(d.clock, t)
}

// query is a request of user for want candidates, excluding nothing.
func (d *driver) query(user int32, want int) *model.Query {
	for len(d.acc) < d.items {
		d.acc = append(d.acc, 0)
		d.mark = append(d.mark, 0)
		d.blocked = append(d.blocked, false)
	}
	q := &model.Query{User: -1, N: want, Want: want, Now: d.clock, Category: -1, Items: d.items,
		Acc: d.acc, Mark: d.mark, Stamp: 1, Blocked: d.blocked}
	if user >= 0 && int(user) < len(d.hist) {
		q.User, q.History, q.Session = user, d.hist[user], d.session[user]
	}
	return q
}

// inSession reports whether user has an event in a session an event at t
// would continue.
func (d *driver) inSession(user int32, t float64) bool {
	if int(user) >= len(d.hist) || len(d.hist[user]) == 0 {
		return false
	}
	h := d.hist[user]
	return t-h[len(h)-1].Seconds() <= sessionGap
}
