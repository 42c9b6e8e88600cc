package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"testing"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/experiment"
	"github.com/streamrec/streamrec/internal/shared"
)

// TestExperimentHTTP runs two experiments at once through the live HTTP
// API on ml-100k, with simulated users: each user's older 60% of events are
// loaded first; then, in rounds, every user asks for 10 items (shown=true
// records them as an impression), clicks each shown item that is among
// their next 20 real events (naming the recommendation id), and then sends
// their next real events. One experiment serves half the users trending
// alone against the server's default blend: trending alone must come out
// worse, with the sequential interval of its CTR lift below zero. The
// other is an A/A experiment (two identical variants): it must find
// nothing, and neither may show a sample-ratio mismatch.
func TestExperimentHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("replays ml-100k with simulated users over HTTP")
	}
	shared.SkipUnderRace(t)
	d, err := dataset.Load(shared.Dataset(t, "ml-100k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, quietConfig(t))
	byUser := map[string][]event.Input{}
	for _, e := range d.Events {
		byUser[e.UserID] = append(byUser[e.UserID], e)
	}
	var warm []event.Input
	future := map[string][]event.Input{}
	for u, evs := range byUser {
		k := len(evs) * 6 / 10
		warm = append(warm, evs[:k]...)
		future[u] = evs[k:]
	}
	sort.SliceStable(warm, func(i, j int) bool { return warm[i].Timestamp.Before(warm[j].Timestamp.Time) })
	for i := 0; i < len(warm); i += 1000 {
		if code := call(t, "POST", n.URL+"/v1/events", warm[i:min(i+1000, len(warm))], nil); code != http.StatusOK {
			t.Fatalf("POST warm batch %d: %d", i, code)
		}
	}
	for _, def := range []string{
		`{"name":"trend","planned_users":500,"variants":[{"name":"control","share":0.5},{"name":"trending","share":0.5,"config":{"blend":{"trending":1}}}]}`,
		`{"name":"aa","planned_users":500,"variants":[{"name":"a","share":0.5},{"name":"b","share":0.5}]}`,
	} {
		if code := call(t, "POST", n.URL+"/v1/experiments", def, nil); code != http.StatusCreated {
			t.Fatalf("POST /v1/experiments: %d", code)
		}
	}

	users := make([]string, 0, len(future))
	for u := range future {
		users = append(users, u)
	}
	sort.Strings(users)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
	const rounds, horizon = 6, 20
	work := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failure string
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				if msg := simulateUser(n, u, future[u], rounds, horizon); msg != "" {
					mu.Lock()
					failure = msg
					mu.Unlock()
				}
			}
		}()
	}
	for _, u := range users {
		work <- u
	}
	close(work)
	wg.Wait()
	if failure != "" {
		t.Fatal(failure)
	}

	trend, aa := rawResults(t, n, "trend"), rawResults(t, n, "aa")
	for _, r := range []experiment.Results{trend, aa} {
		for _, v := range r.Variants {
			t.Logf("%s/%s: users %d impressions %d clicks %d CTR %.4f", r.Experiment.Name, v.Variant, v.Users, v.Impressions, v.Clicks, float64(v.CTR))
		}
		for _, c := range r.Comparisons {
			if c.Metric == experiment.MetricCTR {
				t.Logf("%s %s vs control: lift %+.3f sequential [%.3f, %.3f] p %.2g; CUPED [%.3f, %.3f]; fixed horizon [%.3f, %.3f]",
					r.Experiment.Name, c.Variant, float64(c.Lift), float64(c.Sequential.Low), float64(c.Sequential.High), float64(c.Sequential.P),
					float64(c.CUPED.Low), float64(c.CUPED.High), float64(c.FixedHorizon.Low), float64(c.FixedHorizon.High))
			}
		}
		t.Logf("%s SRM chi2 %.2f p %.3g", r.Experiment.Name, float64(r.SRM.ChiSquared), float64(r.SRM.P))
		if r.SRM.Mismatch {
			t.Errorf("%s: sample-ratio mismatch flagged on a fair split", r.Experiment.Name)
		}
	}
	mem := n.Engine.Memory().Models["experiments"]
	t.Logf("experiments' memory: %d bytes, %.0f per user (%d users, two experiments, up to %d shown items each)",
		mem, float64(mem)/float64(len(users)), len(users), experiment.DefaultConfig().MaxShown)
	ctr := trend.Comparisons[0]
	if ctr.Metric != experiment.MetricCTR || !(ctr.Lift < 0) || !(ctr.Sequential.High < 0) || !ctr.Sequential.Significant {
		t.Errorf("trending alone against the default: CTR lift %v, sequential interval [%v, %v]: want worse, the interval below 0",
			ctr.Lift, ctr.Sequential.Low, ctr.Sequential.High)
	}
	for _, c := range aa.Comparisons {
		if c.Sequential.Significant {
			t.Errorf("the A/A experiment found a difference in %s: %+v", c.Metric, c.Sequential)
		}
	}
}

// simulateUser plays one user's rounds; it returns what went wrong, or "".
func simulateUser(n *testNode, user string, future []event.Input, rounds, horizon int) string {
	step := max(len(future)/rounds, 1)
	for r := range rounds {
		at := r * step
		if at >= len(future) {
			return ""
		}
		var rec expReply
		if code := callNoT("GET", n.URL+"/v1/users/"+user+"/recommendations?n=10&shown=true", nil, &rec); code != http.StatusOK {
			return fmt.Sprintf("recommendations for %s: %d", user, code)
		}
		next := map[string]bool{}
		for _, e := range future[at:min(at+horizon, len(future))] {
			next[e.ItemID] = true
		}
		var batch []any
		ts := future[at].Timestamp
		for _, it := range rec.Items {
			if next[it.Item] {
				batch = append(batch, map[string]any{"user_id": user, "item_id": it.Item, "type": "click",
					"timestamp": ts, "context": map[string]string{"recommendation_id": rec.RecommendationID}})
			}
		}
		for _, e := range future[at:min(at+step, len(future))] {
			batch = append(batch, e)
		}
		if code := callNoT("POST", n.URL+"/v1/events", batch, nil); code != http.StatusOK {
			return fmt.Sprintf("events for %s: %d", user, code)
		}
	}
	return ""
}

func rawResults(t *testing.T, n *testNode, name string) experiment.Results {
	t.Helper()
	var res experiment.Results
	if code := call(t, "GET", n.URL+"/v1/experiments/"+name+"/results", nil, &res); code != http.StatusOK {
		t.Fatalf("GET results: %d", code)
	}
	return res
}

// callNoT is call for goroutines other than the test's: it reports a
// failure as status 0.
func callNoT(method, url string, body any, out any) int {
	b, err := json.Marshal(body)
	if err != nil {
		return 0
	}
	if body == nil {
		b = nil
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if json.NewDecoder(resp.Body).Decode(out) != nil {
			return 0
		}
	}
	return resp.StatusCode
}
