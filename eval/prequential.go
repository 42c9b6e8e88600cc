// Package eval measures recommendation quality offline on real data.
//
// Prequential replay follows exactly the path the live server takes: events
// are applied in time order; before each event after a warm-up prefix the
// user's top-K is asked for, a hit is counted if the event's item is in it,
// and then the event is applied. Repeat consumptions are not scored.
package eval

import (
	"fmt"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
)

// PrequentialConfig configures a replay.
type PrequentialConfig struct {
	WarmUp float64 // fraction of events applied before scoring starts
	K      int
	// Progress, when set, is told how many events were replayed so far.
	Progress func(done, total int)
}

// Result is what a replay measured.
type Result struct {
	Scored  int     `json:"scored"`
	Hits    int     `json:"hits"`
	HitRate float64 `json:"hit_rate"`
	MRR     float64 `json:"mrr"`
	Seconds float64 `json:"seconds"`
}

// Records turns data-set events into weighted log records with the
// pipeline, in order. Events the pipeline rejects or drops as duplicates are
// skipped and counted.
func Records(items []event.Item, inputs []event.Input, p *pipeline.Pipeline, d *pipeline.Dedup) ([]event.Record, int, error) {
	recs := make([]event.Record, 0, len(items)+len(inputs))
	for _, it := range items {
		recs = append(recs, event.Record{Kind: event.KindItemPut, Item: it})
	}
	now := time.Now()
	skipped := 0
	for i := range inputs {
		ev, err := p.Process(&inputs[i], now)
		if err != nil {
			skipped++
			continue
		}
		if d != nil && d.Duplicate(&ev) {
			skipped++
			continue
		}
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
	}
	if len(recs) == len(items) {
		return nil, skipped, fmt.Errorf("eval: no usable events (%d skipped)", skipped)
	}
	return recs, skipped, nil
}

// Prequential replays recs (items first, then events in time order) through
// a fresh engine.
func Prequential(eng *recommend.Engine, recs []event.Record, table *event.Table, cfg PrequentialConfig) Result {
	start := time.Now()
	var events []int
	for i := range recs {
		if recs[i].Kind == event.KindEvent && recs[i].Event.Item != "" {
			events = append(events, i)
		}
	}
	warm := int(float64(len(events)) * cfg.WarmUp)
	// Everything before the first scored event is applied as one batch.
	first := len(recs)
	if warm < len(events) {
		first = events[warm]
	}
	eng.Apply(recs[:first])
	consumed := map[[2]string]bool{}
	for i := range recs[:first] {
		if ev := &recs[i].Event; recs[i].Kind == event.KindEvent {
			if r, _ := table.Rule(ev.Type); r.Consumed {
				consumed[[2]string{ev.User, ev.Item}] = true
			}
		}
	}
	var res Result
	var rr float64
	for i := first; i < len(recs); i++ {
		r := &recs[i]
		if r.Kind == event.KindEvent && r.Event.Item != "" {
			key := [2]string{r.Event.User, r.Event.Item}
			if !consumed[key] {
				res.Scored++
				for rank, s := range eng.Recommend(recommend.Request{User: r.Event.User, N: cfg.K}) {
					if s.Item == r.Event.Item {
						res.Hits++
						rr += 1 / float64(rank+1)
						break
					}
				}
			}
			if rule, _ := table.Rule(r.Event.Type); rule.Consumed {
				consumed[key] = true
			}
		}
		eng.Apply(recs[i : i+1])
		if cfg.Progress != nil && i%1000 == 0 {
			cfg.Progress(i, len(recs))
		}
	}
	if res.Scored > 0 {
		res.HitRate = float64(res.Hits) / float64(res.Scored)
		res.MRR = rr / float64(res.Scored)
	}
	res.Seconds = time.Since(start).Seconds()
	return res
}
