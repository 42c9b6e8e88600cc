package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// FreshnessConfig configures a freshness run.
type FreshnessConfig struct {
	URL     string
	Items   []string // items to send events about (ones with neighbours show the effect best)
	Samples int
	Type    string // event type to send, e.g. "view" or "rating"
	N       int
	Key     string
	Timeout time.Duration // give up on a sample after this long
}

// FreshnessResult: for each sample, the time from sending an event to the
// first recommendation response that reflects it.
type FreshnessResult struct {
	Samples int `json:"samples"`
	// Reflected: samples whose event showed in a response before the timeout.
	Reflected int `json:"reflected"`
	// FirstRequest: samples reflected by the very first request after the ack.
	FirstRequest int     `json:"reflected_by_first_request"`
	Latency      Summary `json:"event_to_reflecting_response"`
}

// Table formats a result for people.
func (r FreshnessResult) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "freshness: %d samples, %d reflected, %d by the very first request after the ack\n", r.Samples, r.Reflected, r.FirstRequest)
	writeHeader(&b)
	writeRow(&b, "event sent → reflected", r.Latency)
	return b.String()
}

type recItem struct {
	Item   string `json:"item_id"`
	Source string `json:"source"`
}

// Freshness measures, for new users, how long after an event is sent the
// recommendations reflect it. A brand-new user gets trending items only; an
// event on an item is reflected when that item no longer appears (it is
// consumed) and the list now holds neighbours of it (source other than
// trending) — whichever the engine shows.
func Freshness(ctx context.Context, cfg FreshnessConfig) (FreshnessResult, error) {
	if len(cfg.Items) == 0 || cfg.Samples <= 0 || cfg.N <= 0 {
		return FreshnessResult{}, errors.New("bench: freshness needs items, samples and n")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	client := newClient(2)
	lat := NewLatency()
	res := FreshnessResult{Samples: cfg.Samples}
	run := fmt.Sprint(time.Now().UnixNano())
	for i := range cfg.Samples {
		if ctx.Err() != nil {
			break
		}
		user := fmt.Sprintf("fresh-%s-%d", run, i)
		item := cfg.Items[i%len(cfg.Items)]
		before, err := recommendations(ctx, client, cfg, user)
		if err != nil {
			return res, err
		}
		body, _ := json.Marshal([]map[string]string{{"user_id": user, "item_id": item, "type": cfg.Type}})
		req, _ := request(ctx, "POST", cfg.URL+"/v1/events", cfg.Key, body)
		sent := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return res, fmt.Errorf("bench: post event: %w", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return res, fmt.Errorf("bench: post event: status %d", resp.StatusCode)
		}
		for attempt := 0; time.Since(sent) < cfg.Timeout; attempt++ {
			after, err := recommendations(ctx, client, cfg, user)
			if err != nil {
				return res, err
			}
			if reflects(before, after, item) {
				lat.Record(time.Since(sent))
				res.Reflected++
				if attempt == 0 {
					res.FirstRequest++
				}
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	res.Latency = lat.Summary()
	return res, nil
}

func reflects(before, after []recItem, item string) bool {
	for _, it := range after {
		if it.Item == item {
			return false // still offered: the event is not applied
		}
	}
	for _, it := range before {
		if it.Item == item {
			return true // it was offered and is gone: consumed
		}
	}
	for _, it := range after {
		if it.Source != "trending" {
			return true // personalised from the event
		}
	}
	return false
}

func recommendations(ctx context.Context, client *http.Client, cfg FreshnessConfig, user string) ([]recItem, error) {
	req, _ := request(ctx, "GET", fmt.Sprintf("%s/v1/users/%s/recommendations?n=%d", cfg.URL, url.PathEscape(user), cfg.N), cfg.Key, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: recommendations: %w", err)
	}
	defer resp.Body.Close()
	var r struct {
		Items []recItem `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: recommendations: status %d: %v", resp.StatusCode, err)
	}
	return r.Items, nil
}
