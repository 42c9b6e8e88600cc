package server

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/recommend"
)

func TestWriteItemsIsJSON(t *testing.T) {
	items := []recommend.Scored{
		{Item: "plain", Score: 0.5, Source: "item_knn"},
		{Item: "quote\"back\\slash<tag>&", Score: 1e-9, Source: "trending"},
		{Item: "ünïcode ☃", Score: math.MaxFloat32, Source: "trending"},
	}
	for _, key := range []string{"", "user_id"} {
		rec := httptest.NewRecorder()
		writeItems(rec, key, "u\"1", items)
		var got struct {
			UserID string             `json:"user_id"`
			Items  []recommend.Scored `json:"items"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("not JSON: %v: %s", err, rec.Body)
		}
		if len(got.Items) != len(items) {
			t.Fatalf("got %+v", got.Items)
		}
		for i := range items {
			g, w := got.Items[i], items[i]
			if g.Item != w.Item || g.Source != w.Source || float32(g.Score) != float32(w.Score) {
				t.Fatalf("item %d: got %+v, want %+v", i, g, w)
			}
		}
		if key != "" && got.UserID != "u\"1" {
			t.Fatalf("user id %q", got.UserID)
		}
	}
}

// TestScoresAtFloat32Precision: scores are float32 inside, so the reply
// shows 0.05, not the float64 widening 0.05000000074505806.
func TestScoresAtFloat32Precision(t *testing.T) {
	rec := httptest.NewRecorder()
	writeItems(rec, "", "", []recommend.Scored{{Item: "a", Score: float64(float32(0.05)), Source: "trending"}})
	if body := rec.Body.String(); !strings.Contains(body, `"score":0.05,`) {
		t.Fatalf("score not at float32 precision: %s", body)
	}
}
