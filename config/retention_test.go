package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/recommend"
)

func TestRetentionFromFile(t *testing.T) {
	if d := Default().Retention; d.MaxEventsPerUser != DefaultMaxEventsPerUser || d.MaxAge != 0 {
		t.Fatalf("default retention %+v", d)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("retention: {max_events_per_user: 250, max_age: 2160h}\n"), 0o644)
	cfg := Default()
	if err := cfg.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tb, _ := event.Preset(event.PresetEcommerce)
	want := recommend.Retention{MaxEventsPerUser: 250, MaxAge: 90 * 24 * time.Hour}
	if got := cfg.EngineConfig(tb).Retention; got != want {
		t.Fatalf("engine retention %+v, want %+v", got, want)
	}
	for _, bad := range []Retention{{MaxEventsPerUser: -1}, {MaxAge: Duration(-time.Hour)}, {MaxAge: Duration(time.Millisecond)}} {
		c := Default()
		c.Retention = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "retention.") {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}
