package server

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/experiment"
)

func impressionServer() *Server {
	return &Server{limits: Limits{MaxBodyBytes: 1 << 20, MaxBatchEvents: 10, MaxN: 5, MaxIDBytes: 32},
		exp: experiment.New(experiment.DefaultConfig()), ids: experiment.NewIDs([]byte("fuzzing key, 32 bytes long......"))}
}

var issuedAt = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func TestParseImpressions(t *testing.T) {
	s := impressionServer()
	id := s.ids.New("u1", issuedAt)
	now := issuedAt.Add(time.Minute)
	one := fmt.Sprintf(`{"recommendation_id":%q,"user_id":"u1","items":["a","b"]}`, id)
	cases := []struct {
		name, body string
		status     int
		code       string
		records    int
	}{
		{"one", one, 0, "", 1},
		{"array", "[" + one + "," + one + "]", 0, "", 2},
		{"with a timestamp", strings.Replace(one, `"user_id"`, `"timestamp":"2026-11-30T12:00:30Z","user_id"`, 1), 0, "", 1},
		{"timestamp before the answer", strings.Replace(one, `"user_id"`, `"timestamp":"2026-11-29T12:00:00Z","user_id"`, 1), 400, "invalid_impression", 0},
		{"unknown id", `{"recommendation_id":"nope","user_id":"u1","items":["a"]}`, 422, "unknown_recommendation", 0},
		{"another user's id", strings.Replace(one, `"u1"`, `"u2"`, 1), 422, "unknown_recommendation", 0},
		{"too many items", strings.Replace(one, `["a","b"]`, `["a","b","c","d","e","f"]`, 1), 400, "invalid_impression", 0},
		{"bad item id", strings.Replace(one, `["a","b"]`, `["a"," "]`, 1), 400, "invalid_impression", 0},
		{"unknown field", strings.Replace(one, `"items"`, `"colour":1,"items"`, 1), 400, "invalid_json", 0},
		{"empty array", `[]`, 400, "invalid_impressions", 0},
		{"too many", "[" + strings.Repeat(one+",", 10) + one + "]", 413, "too_many_impressions", 0},
		{"not JSON", `{`, 400, "invalid_json", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, err := s.parseImpressions([]byte(c.body), now)
			if c.status == 0 {
				if err != nil || len(recs) != c.records {
					t.Fatalf("got %d records, %v; want %d", len(recs), err, c.records)
				}
				im := recs[0].Impression
				if recs[0].Kind != event.KindImpression || im.User != "u1" || im.RecommendationID != id || len(im.Items) != 2 {
					t.Fatalf("record %+v", recs[0])
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != c.status || ae.Code != c.code {
				t.Fatalf("got %v, want %d %s", err, c.status, c.code)
			}
		})
	}
	if _, err := s.parseImpressions([]byte(one), issuedAt.Add(8*24*time.Hour)); err == nil || !strings.Contains(err.Error(), "issued") {
		t.Fatalf("an id 8 days old was accepted: %v", err)
	}
}

// FuzzImpressions: any body is either refused with a 4xx naming the
// problem or gives records of valid, issued impressions.
func FuzzImpressions(f *testing.F) {
	s := impressionServer()
	id := s.ids.New("u1", issuedAt)
	f.Add(fmt.Sprintf(`{"recommendation_id":%q,"user_id":"u1","items":["a"]}`, id))
	f.Add(fmt.Sprintf(`[{"recommendation_id":%q,"user_id":"u1","items":["a","b"],"timestamp":"2026-11-30T12:00:01Z"}]`, id))
	f.Add(`[{"recommendation_id":"x","user_id":"","items":[]},null]`)
	f.Fuzz(func(t *testing.T, body string) {
		recs, err := s.parseImpressions([]byte(body), issuedAt.Add(time.Minute))
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status < 400 || ae.Status >= 500 || ae.Message == "" {
				t.Fatalf("error %v is not a 4xx naming the problem", err)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("accepted nothing without an error")
		}
		for _, r := range recs {
			im := r.Impression
			if _, ok := s.ids.Check(im.RecommendationID, im.User); !ok || len(im.Items) == 0 || len(im.Items) > s.limits.MaxN {
				t.Fatalf("accepted a bad impression %+v", im)
			}
		}
	})
}
