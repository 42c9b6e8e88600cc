package recommend

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
)

// sessionSpy records, for every event applied, where the model was told the
// user's current session starts.
type sessionSpy struct {
	starts []bool // per event: it starts a session
	lens   []int  // per event: events of the session before it
}

func (s *sessionSpy) Name() string { return "spy" }
func (s *sessionSpy) Apply(x *model.Interaction) {
	s.starts = append(s.starts, x.Entry.StartsSession())
	s.lens = append(s.lens, len(x.History)-x.Session)
}

func withSession(r event.Record, id string) event.Record {
	if id != "" {
		r.Event.Context = json.RawMessage(`{"page":"home","session_id":` + id + `}`)
	}
	return r
}

// TestSessions: a new session starts after the inactivity gap, or when the
// context's session_id changes; the same session_id keeps one session over
// any gap; models and queries see where the current session starts, and a
// snapshot keeps the session a user is in.
func TestSessions(t *testing.T) {
	const gap = 30 * 60
	type step struct {
		user, session string
		sec           int
		starts        bool
		before        int // events of the current session before this one
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"gap", []step{
			{"u", "", 0, true, 0}, {"u", "", 60, false, 1}, {"u", "", 60 + gap, false, 2},
			{"u", "", 61 + 2*gap, true, 0}, {"u", "", 62 + 2*gap, false, 1},
		}},
		{"session ids", []step{
			{"u", `"a"`, 0, true, 0}, {"u", `"a"`, 5 * gap, false, 1}, {"u", `"b"`, 5*gap + 1, true, 0},
			{"u", `7`, 5*gap + 2, true, 0}, {"u", `7`, 5*gap + 3, false, 1}, {"u", "", 5*gap + 4, false, 2},
		}},
		{"users apart", []step{
			{"u", "", 0, true, 0}, {"v", "", 10, true, 0}, {"u", "", 20, false, 1}, {"v", `"s"`, 30, true, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spy := &sessionSpy{}
			tb, _ := event.Preset(event.PresetEcommerce)
			e := New(Config{Table: tb, Models: []model.Model{spy}})
			for i, s := range tc.steps {
				e.Apply([]event.Record{withSession(ev(s.user, "i", event.View, 1, s.sec), s.session)})
				if spy.starts[i] != s.starts || spy.lens[i] != s.before {
					t.Fatalf("event %d %+v: starts %v with %d before, want %v with %d", i, s, spy.starts[i], spy.lens[i], s.starts, s.before)
				}
			}
			last := tc.steps[len(tc.steps)-1]
			e.mu.RLock()
			sc := e.getScratch()
			e.query(sc, last.user, "", 10, 10)
			got := len(sc.q.SessionItems())
			e.scratch.Put(sc)
			e.mu.RUnlock()
			if got != last.before+1 {
				t.Fatalf("query session: %d events, want %d", got, last.before+1)
			}
		})
	}

	// A snapshot keeps the session a user is in: the same session_id
	// after a restore continues it.
	spy := &sessionSpy{}
	tb, _ := event.Preset(event.PresetEcommerce)
	e := New(Config{Table: tb, Models: []model.Model{spy}, SessionGap: time.Minute})
	e.Apply([]event.Record{withSession(ev("u", "i", event.View, 1, 0), `"s1"`)})
	var buf bytes.Buffer
	if _, err := e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	spy2 := &sessionSpy{}
	r := New(Config{Table: tb, Models: []model.Model{spy2}, SessionGap: time.Minute})
	if err := r.ReadSnapshot(&buf, int64(buf.Len())); err != nil {
		t.Fatal(err)
	}
	r.Apply([]event.Record{withSession(ev("u", "j", event.View, 1, 3600), `"s1"`), withSession(ev("u", "k", event.View, 1, 3601), `"s2"`)})
	if spy2.starts[0] || spy2.lens[0] != 1 || !spy2.starts[1] {
		t.Fatalf("after restore: starts %v, before %v; want the session to continue, then a new one", spy2.starts, spy2.lens)
	}
	// Another gap configuration is another state: the snapshot is refused.
	other := New(Config{Table: tb, Models: []model.Model{&sessionSpy{}}})
	var buf2 bytes.Buffer
	e.WriteSnapshot(&buf2)
	if err := other.ReadSnapshot(&buf2, int64(buf2.Len())); err != ErrSnapshotConfig {
		t.Fatalf("snapshot under another session gap: %v, want ErrSnapshotConfig", err)
	}
}
