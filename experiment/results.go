package experiment

import (
	"math"
	"strconv"
	"time"

	"github.com/streamrec/streamrec/experiment/stats"
)

// Alpha is the level of every interval and test in Results.
const Alpha = 0.05

// Number is a float that encodes NaN and infinities as JSON null (an
// interval a comparison cannot bound yet).
type Number float64

// MarshalJSON implements json.Marshaler.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// Results is what an experiment's figures say so far.
type Results struct {
	Experiment Definition `json:"experiment"`
	At         time.Time  `json:"at"`
	Alpha      float64    `json:"alpha"`
	// Variants are the groups' figures, control first; Holdout the held
	// back users', when there is a holdout.
	Variants []Figures `json:"variants"`
	Holdout  *Figures  `json:"holdout,omitempty"`
	// Comparisons are each treatment against the control on each metric.
	Comparisons []Comparison `json:"comparisons"`
	// SRM is the sample-ratio check of the variants' users against their
	// shares.
	SRM SRM `json:"srm"`
	// Methods names the statistics, for the reader.
	Methods map[string]string `json:"methods"`
}

// Figures are one group's counts and rates.
type Figures struct {
	Variant            string  `json:"variant"`
	Share              float64 `json:"share"`
	Users              int64   `json:"users"`
	Impressions        int64   `json:"impressions"`
	Clicks             int64   `json:"clicks"`
	CTR                Number  `json:"ctr"`
	Conversions        int64   `json:"conversions"`
	ConversionsPerUser Number  `json:"conversions_per_user"`
	Value              float64 `json:"value"`
	ValuePerUser       Number  `json:"value_per_user"`
}

// The metrics compared.
const (
	MetricCTR         = "ctr"
	MetricConversions = "conversions_per_user"
	MetricValue       = "value_per_user"
)

// Comparison is one treatment against the control on one metric.
type Comparison struct {
	Variant   string `json:"variant"`
	Metric    string `json:"metric"`
	Control   Number `json:"control"`
	Treatment Number `json:"treatment"`
	Lift      Number `json:"lift"` // relative: treatment/control − 1
	// Sequential is the decision to watch: valid however often it is
	// looked at. Its interval is this look's confidence sequence; its P the
	// running always-valid p-value, Holm-adjusted across the treatments in
	// PAdjusted; Significant says PAdjusted < Alpha (a look was significant
	// after the correction: stopping there is valid).
	Sequential Interval `json:"sequential"`
	// CUPED is Sequential with each user's events before the experiment's
	// start as the covariate (narrower when activity predicts the metric).
	CUPED Interval `json:"cuped"`
	// FixedHorizon is the classical interval: valid only when looked at
	// once, at a sample size fixed in advance.
	FixedHorizon Interval `json:"fixed_horizon"`
}

// Interval bounds a relative lift.
type Interval struct {
	Low         Number `json:"low"`
	High        Number `json:"high"`
	P           Number `json:"p"`
	PAdjusted   Number `json:"p_adjusted,omitempty"`
	Significant bool   `json:"significant"`
}

// SRM is a sample-ratio mismatch check.
type SRM struct {
	ChiSquared Number `json:"chi_squared"`
	P          Number `json:"p"`
	// Mismatch is true when P < stats.SRMThreshold: the split is not the
	// one configured, and the comparisons should not be trusted.
	Mismatch bool `json:"mismatch"`
}

// Figures is f of every group of every experiment, keyed by experiment and
// group name: for metrics.
func (t *Tracker) Figures(f func(Arm) float64) map[[2]string]float64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := map[[2]string]float64{}
	for _, x := range t.exps {
		for g, a := range x.arms {
			if g == len(x.def.Variants) && x.def.Holdout == 0 && a.Users == 0 {
				continue // no holdout
			}
			out[[2]string{x.def.Name, x.group(g)}] = f(a)
		}
	}
	return out
}

func (x *exp) group(g int) string {
	if g < len(x.def.Variants) {
		return x.def.Variants[g].Name
	}
	return HoldoutName
}

// Results computes the experiment's results at now; false when there is no
// such experiment. Each call is a look: the always-valid p-values it
// reports are the minimum over this process's looks (a restart starts the
// minimum afresh, which can only make them larger: conservative).
func (t *Tracker) Results(name string, now time.Time) (Results, bool) {
	t.mu.RLock()
	x := t.byName[name]
	if x == nil {
		t.mu.RUnlock()
		return Results{}, false
	}
	def := x.def
	arms := append([]Arm(nil), x.arms...)
	t.mu.RUnlock()

	res := Results{Experiment: def, At: now.UTC(), Alpha: Alpha, Methods: methods}
	nv := len(def.Variants)
	snap := exp{def: def} // names from the copy: define may change x meanwhile
	for g, a := range arms {
		f := Figures{Variant: snap.group(g), Users: a.Users, Impressions: a.Impressions, Clicks: a.Clicks,
			CTR: Number(a.CTR.Ratio()), Conversions: a.Conversions, ConversionsPerUser: Number(a.Conv.Ratio()),
			Value: a.Value, ValuePerUser: Number(a.Val.Ratio())}
		if g < nv {
			f.Share = def.Variants[g].Share
			res.Variants = append(res.Variants, f)
		} else if a.Users > 0 || def.Holdout > 0 {
			f.Share = def.Holdout
			res.Holdout = &f
		}
	}
	observed := make([]float64, nv)
	shares := make([]float64, nv)
	for g := range nv {
		observed[g], shares[g] = float64(arms[g].Users), def.Variants[g].Share
	}
	chi2, p := stats.SRM(observed, shares)
	res.SRM = SRM{ChiSquared: Number(chi2), P: Number(p), Mismatch: p < stats.SRMThreshold}

	planned := float64(def.PlannedUsers)
	metrics := []struct {
		name string
		of   func(Arm) stats.Moments
	}{
		{MetricCTR, func(a Arm) stats.Moments { return a.CTR }},
		{MetricConversions, func(a Arm) stats.Moments { return a.Conv }},
		{MetricValue, func(a Arm) stats.Moments { return a.Val }},
	}
	t.lookMu.Lock()
	defer t.lookMu.Unlock()
	for _, m := range metrics {
		ms := make([]stats.Moments, nv)
		for g := range nv {
			ms[g] = m.of(arms[g])
		}
		adj := stats.CUPED(ms)
		first := len(res.Comparisons)
		var ps []float64
		for g := 1; g < nv; g++ {
			key := def.Name + "\x00" + def.Variants[g].Name + "\x00" + m.name
			r := t.looks[key]
			if r == nil {
				r = &stats.Running{}
				t.looks[key] = r
			}
			seq := r.Look(ms[0], ms[g], Alpha, planned)
			cu := stats.Sequential(adj[0], adj[g], Alpha, planned)
			fh := stats.Relative(ms[0], ms[g], Alpha)
			res.Comparisons = append(res.Comparisons, Comparison{
				Variant: def.Variants[g].Name, Metric: m.name,
				Control: Number(seq.Control), Treatment: Number(seq.Treatment), Lift: Number(seq.Lift),
				Sequential:   interval(seq),
				CUPED:        interval(cu),
				FixedHorizon: interval(fh),
			})
			ps = append(ps, seq.P)
		}
		for i, q := range stats.Holm(ps) {
			c := &res.Comparisons[first+i]
			c.Sequential.PAdjusted = Number(q)
			c.Sequential.Significant = q < Alpha // some look's interval excluded 0, after Holm
		}
	}
	return res, true
}

func interval(c stats.Comparison) Interval {
	return Interval{Low: Number(c.Low), High: Number(c.High), P: Number(c.P), Significant: c.Significant}
}

var methods = map[string]string{
	"unit":          "the user: every figure is a per-user sum, compared between independent arms",
	"ratio":         "delta method for ratio metrics (Deng, Knoblich, Lu, KDD 2018)",
	"sequential":    "asymptotic confidence sequences (Waudby-Smith et al., arXiv 2103.06476) and the mSPRT always-valid p-value (Johari, Pekelis, Walsh, arXiv 1512.04922), running minimum over looks",
	"multiple":      "Holm–Bonferroni across the treatments of each metric: significant means p_adjusted < alpha",
	"cuped":         "CUPED with the user's events before the experiment's start as the covariate (Deng, Xu, Kohavi, Walker, WSDM 2013)",
	"srm":           "Pearson chi-squared of the variants' users against their shares; mismatch at p < 0.001",
	"fixed_horizon": "normal interval by the delta method: valid for one look at a planned size only",
}
