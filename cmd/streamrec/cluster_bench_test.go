package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/bench"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/internal/shared"
)

// BenchmarkClusterReads: recommendation reads through nginx (the shipped
// deploy/nginx.conf) in front of three replica processes on one Kafka log
// (kfake in this process), against nginx in front of one replica and
// against that replica alone, on the same machine and the same data
// (ml-100k), in alternating closed-loop rounds of 16 connections (bench's
// ClosedLoop, as `streamrec bench saturate` runs it). Every process shares
// the machine's cores, so three replicas cannot add capacity here: this is
// the honest figure of what the proxy and the replicas cost, not of what
// more machines would add.
func BenchmarkClusterReads(b *testing.B) {
	d, err := dataset.Load(shared.Dataset(b, "ml-100k"), nil)
	if err != nil {
		b.Fatal(err)
	}
	brokers, bin, root := clusterSetup(b)
	var rs []*replica
	for i := range 3 {
		rs = append(rs, startReplica(b, bin, brokers, filepath.Join(root, fmt.Sprint("r", i+1)), freeAddr(b)))
	}
	three := startNginx(b, freeAddr(b), rs)
	one := startNginx(b, freeAddr(b), []*replica{rs[0], rs[0], rs[0]})
	for i := 0; i < len(d.Events); i += 5000 {
		if code := postJSON(b, three+"/v1/events", d.Events[i:min(i+5000, len(d.Events))]); code != http.StatusOK {
			b.Fatalf("load: %d", code)
		}
	}
	var users []string
	for u := range 943 {
		users = append(users, fmt.Sprint(u+1))
	}
	time.Sleep(2 * time.Second) // every replica has applied the load (tokens are not needed for reads of old data)
	targets := []struct{ name, url string }{{"nginx→3", three}, {"nginx→1", one}, {"direct 1", rs[0].url}}
	rates := map[string][]float64{}
	p99 := map[string][]float64{}
	b.ResetTimer()
	for range b.N {
		for round := range 3 {
			for _, tg := range targets {
				res, err := bench.ClosedLoop(context.Background(), bench.ClosedConfig{URL: tg.url, Duration: 4 * time.Second, Conns: 16, Users: users, N: 10})
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("round %d %-8s %7.0f req/s p50 %.2f ms p99 %.2f ms errors %d", round, tg.name, res.Rate, res.Latency.P50, res.Latency.P99, res.Errors)
				rates[tg.name] = append(rates[tg.name], res.Rate)
				p99[tg.name] = append(p99[tg.name], res.Latency.P99)
			}
		}
	}
	for _, tg := range targets {
		b.ReportMetric(medianOf(rates[tg.name]), strings.ReplaceAll(tg.name, " ", "-")+"-req/s")
		b.ReportMetric(medianOf(p99[tg.name]), strings.ReplaceAll(tg.name, " ", "-")+"-p99-ms")
	}
}

// postJSON posts v as JSON and returns the status.
func postJSON(b *testing.B, url string, v any) int {
	body, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
