package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/streamrec/streamrec/config"
)

// TestSetProcs: serve runs with procs_per_core times the cores Go found,
// Go's default with 0 or 1, and leaves a GOMAXPROCS from the environment
// alone.
func TestSetProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		perCore int
		env     func(string) string
		want    int
	}{
		{2, noEnv, 2 * config.Cores},
		{0, noEnv, config.Cores},
		{1, noEnv, config.Cores},
		{3, noEnv, 3 * config.Cores},
		{2, func(k string) string { return map[string]string{"GOMAXPROCS": "5"}[k] }, 7}, // left as it was
	} {
		runtime.GOMAXPROCS(7)
		c := config.Default()
		c.ProcsPerCore = tc.perCore
		setProcs(&c, tc.env, log)
		if got := runtime.GOMAXPROCS(0); got != tc.want {
			t.Errorf("procs_per_core %d: GOMAXPROCS %d, want %d", tc.perCore, got, tc.want)
		}
	}
}
