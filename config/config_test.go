package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

// TestDocumentedFileIsTheDefaults keeps docs/CONFIGURATION.md true: its
// example file loads without error and holds exactly the defaults.
func TestDocumentedFileIsTheDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/CONFIGURATION.md")
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(block), 0o644)
	var cfg Config // from zero: every field must be in the document
	if err := cfg.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.EventTypes) != 1 {
		t.Fatalf("event_types: %v", cfg.EventTypes)
	}
	tb, _ := cfg.Table()
	cfg.EventTypes = nil
	d := Default()
	def, _ := d.Table()
	if !reflect.DeepEqual(tb, def) {
		t.Fatal("the documented event_types entry is not the preset's own rule")
	}
	cfg.APIKeys = nil
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("documented file differs from the defaults:\n%+v\n%+v", cfg, Default())
	}
}

func TestEnvAPIKeys(t *testing.T) {
	cfg := Default()
	cfg.LoadEnv(func(k string) string {
		return map[string]string{"STREAMREC_API_KEYS": "aaaaaaaaaaaaaaaa1:read+ingest, bbbbbbbbbbbbbbbb2:admin"}[k]
	})
	want := []APIKey{{Key: "aaaaaaaaaaaaaaaa1", Scopes: []string{"read", "ingest"}}, {Key: "bbbbbbbbbbbbbbbb2", Scopes: []string{"admin"}}}
	if !reflect.DeepEqual(cfg.APIKeys, want) {
		t.Fatalf("%+v", cfg.APIKeys)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		mutate  func(*Config)
		mention string
	}{
		{func(c *Config) { c.ItemKNN.Decay = 2 }, "item_knn.decay"},
		{func(c *Config) { c.ItemKNN.Refresh = -0.5 }, "item_knn.refresh"},
		{func(c *Config) { c.Limits.Burst = 0 }, "limits.burst"},
		{func(c *Config) { c.TLS.CertFile = "x" }, "tls"},
		{func(c *Config) { c.AdminAddr = "nope" }, "admin_addr"},
		{func(c *Config) { c.Preset = "casino" }, "preset"},
		{func(c *Config) { c.EventTypes = map[string]event.TypeRule{"teleport": {}} }, "teleport"},
		{func(c *Config) { c.Kafka.Retention = Duration(24 * time.Hour) }, "kafka.retention needs kafka.models_dir"},
		{func(c *Config) {
			c.Kafka.ModelsDir, c.Kafka.Retention = "/shared", Duration(20*time.Minute) // < 3 × 10m
		}, "kafka.retention"},
		{func(c *Config) { c.Kafka.CheckpointEvery = -1 }, "kafka.checkpoint_every"},
		{func(c *Config) { c.AnswerCache = -1 }, "answer_cache"},
		{func(c *Config) { c.ProcsPerCore = 9 }, "procs_per_core"},
		{func(c *Config) { c.ProcsPerCore = -1 }, "procs_per_core"},
	} {
		c := Default()
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("want an error naming %s, got %v", tc.mention, err)
		}
	}
	c := Default()
	c.Kafka.ModelsDir, c.Kafka.Retention = "/shared", Duration(30*time.Minute)
	if err := c.Validate(); err != nil {
		t.Errorf("retention 3 × checkpoint_every refused: %v", err)
	}
}
