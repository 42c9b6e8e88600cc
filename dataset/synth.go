package dataset

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/streamrec/streamrec/event"
)

// SynthConfig shapes a synthetic data set.
type SynthConfig struct {
	Users, Items, Events int
	Seed                 uint64
	Start                time.Time     // time of the first event
	Step                 time.Duration // time between events
}

// Synthetic generates events with the shape of real interaction data:
// Zipf-distributed item popularity (s = 1.1) and heavy-tailed user activity
// (Zipf, s = 1.2), in time order, with view, click, cart and purchase types
// in decreasing proportions. Used for scale tests beyond the shared data
// sets; deterministic for a seed.
func Synthetic(cfg SynthConfig) []event.Input {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	items := rand.NewZipf(rng, 1.1, 4, uint64(cfg.Items-1))
	users := rand.NewZipf(rng, 1.2, 8, uint64(cfg.Users-1))
	// Spread identities so that popular ids are not all small numbers.
	itemPerm := rng.Perm(cfg.Items)
	userPerm := rng.Perm(cfg.Users)
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Step == 0 {
		cfg.Step = time.Second
	}
	types := []string{"view", "view", "view", "view", "view", "click", "click", "cart", "purchase"}
	out := make([]event.Input, cfg.Events)
	for i := range out {
		ts := &event.Timestamp{Time: cfg.Start.Add(time.Duration(i) * cfg.Step)}
		out[i] = event.Input{
			UserID:    "u" + strconv.Itoa(userPerm[users.Uint64()]),
			ItemID:    "i" + strconv.Itoa(itemPerm[items.Uint64()]),
			Type:      types[rng.IntN(len(types))],
			Timestamp: ts,
		}
	}
	return out
}
