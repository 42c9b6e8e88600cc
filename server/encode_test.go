package server

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"reflect"
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
		if !reflect.DeepEqual(got.Items, items) {
			t.Fatalf("got %+v", got.Items)
		}
		if key != "" && got.UserID != "u\"1" {
			t.Fatalf("user id %q", got.UserID)
		}
	}
}
