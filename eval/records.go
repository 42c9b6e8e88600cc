// Package eval measures recommendation quality offline on real data, under
// three protocols: chrono (train on the first 80% of events by time, score
// each test user's new items), leave-last (each user's last interactions
// held out) and prequential (replay in time order, scoring each event before
// applying it — exactly the path the live server takes).
//
// Invariant: models are scored on the same split, through the same engine
// the server runs; test events never reach training.
package eval

import (
	"fmt"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/pipeline"
)

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
