package eval

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteSVG draws one metric against K for every model of the report, as a
// self-contained SVG line chart.
func WriteSVG(w io.Writer, rep Report, metric string) error {
	get, ok := metricGetters[metric]
	if !ok {
		return fmt.Errorf("eval: unknown metric %q to plot", metric)
	}
	const width, height, left, right, top, bottom = 640.0, 400.0, 70.0, 150.0, 40.0, 50.0
	var ks []int
	maxV := 0.0
	for _, r := range rep.Results {
		for _, m := range r.Metrics {
			maxV = math.Max(maxV, get(m))
		}
	}
	if len(rep.Results) > 0 {
		for _, m := range rep.Results[0].Metrics {
			ks = append(ks, m.K)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	maxV *= 1.1
	x := func(i int) float64 {
		if len(ks) == 1 {
			return left + (width-left-right)/2
		}
		return left + float64(i)*(width-left-right)/float64(len(ks)-1)
	}
	y := func(v float64) float64 { return height - bottom - v/maxV*(height-top-bottom) }
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15">%s@K — %s protocol</text>`+"\n", left, metric, rep.Protocol)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, height-bottom, width-right, height-bottom)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, top, left, height-bottom)
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%.3f</text>`+"\n", left-6, y(v)+4, v)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), width-right, y(v))
	}
	for i, k := range ks {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">K=%d</text>`+"\n", x(i), height-bottom+18, k)
	}
	for ri, r := range rep.Results {
		c := colors[ri%len(colors)]
		var pts []string
		for i, m := range r.Metrics {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(get(m))))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(i), y(get(m)), c)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), c)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", width-right+12, top+16+float64(ri)*18, c, r.Model)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

var metricGetters = map[string]func(Metrics) float64{
	"precision": func(m Metrics) float64 { return m.Precision },
	"recall":    func(m Metrics) float64 { return m.Recall },
	"ndcg":      func(m Metrics) float64 { return m.NDCG },
	"map":       func(m Metrics) float64 { return m.MAP },
	"hit_rate":  func(m Metrics) float64 { return m.HitRate },
	"mrr":       func(m Metrics) float64 { return m.MRR },
	"coverage":  func(m Metrics) float64 { return m.Coverage },
	"novelty":   func(m Metrics) float64 { return m.Novelty },
}

// Table formats the report for people.
func (rep Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "protocol %s: %d users, %d items, %d interactions, %.1fs\n", rep.Protocol, rep.Users, rep.Items, rep.Events, rep.Seconds)
	fmt.Fprintf(&b, "%-11s %4s %7s %9s %9s %8s %8s %9s %8s %9s %8s\n", "model", "K", "scored", "precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage", "novelty")
	for _, r := range rep.Results {
		for _, m := range r.Metrics {
			fmt.Fprintf(&b, "%-11s %4d %7d %9.4f %9.4f %8.4f %8.4f %9.4f %8.4f %9.4f %8.3f\n",
				r.Model, m.K, r.Scored, m.Precision, m.Recall, m.NDCG, m.MAP, m.HitRate, m.MRR, m.Coverage, m.Novelty)
		}
	}
	if len(rep.Results) > 0 && rep.Results[0].NewScored > 0 {
		what := "users have some to find"
		if rep.Protocol == Prequential {
			what = "events are the first on their item"
		}
		fmt.Fprintf(&b, "\nitems no one used before (cold start): %d %s\n", rep.Results[0].NewScored, what)
		fmt.Fprintf(&b, "%-11s %4s %9s %9s %8s\n", "model", "K", "hit_rate", "recall", "ndcg")
		for _, r := range rep.Results {
			for _, m := range r.NewItems {
				fmt.Fprintf(&b, "%-11s %4d %9.4f %9.4f %8.4f\n", r.Model, m.K, m.HitRate, m.Recall, m.NDCG)
			}
		}
	}
	return b.String()
}
