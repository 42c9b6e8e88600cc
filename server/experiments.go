package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/experiment"
	"github.com/streamrec/streamrec/push"
	"github.com/streamrec/streamrec/recommend"
)

// SetExperiments turns experiments on: assignment of every request, a
// recommendation id on every answer, impressions, and the experiments API.
func (s *Server) SetExperiments(t *experiment.Tracker, ids *experiment.IDs) {
	s.exp, s.ids = t, ids
}

// asked says which of a request's controls the client gave itself: those
// an experiment's variant leaves as they are.
type asked struct {
	n, diversity bool
}

// readRecommendation reads GET /v1/users/{id}/recommendations's parameters
// (the stream's too) into a request, before experiments apply.
func (s *Server) readRecommendation(r *http.Request) (recommend.Request, asked, error) {
	id, err := s.pathID(r, "user id")
	if err != nil {
		return recommend.Request{}, asked{}, err
	}
	q := r.URL.Query()
	req := recommend.Request{User: id, Category: q.Get("category")}
	if req.N, err = intValue(q, "n", 10, s.limits.MaxN); err != nil {
		return req, asked{}, err
	}
	if err := s.controls(q, &req); err != nil {
		return req, asked{}, err
	}
	return req, asked{n: q.Get("n") != "", diversity: q.Get("diversity") != ""}, nil
}

// personalise applies the experiments the user is in to req (each
// variant's override, in the order the experiments were defined: a later
// one wins a setting both change) and returns the answer's header with a
// fresh recommendation id. Without experiments it returns the bare header.
func (s *Server) personalise(req *recommendation, now time.Time) header {
	h := header{key: "user_id", id: req.User}
	if s.exp == nil {
		return h
	}
	h.recommendationID = s.ids.New(req.User, now)
	h.assigned = s.exp.Assign(req.User, now, nil)
	for _, a := range h.assigned {
		o := a.Config
		if o == nil {
			continue
		}
		if o.Blend != nil {
			req.blend(o.Blend)
		}
		if o.Ranker != nil && !*o.Ranker {
			req.noRanker()
		}
		if o.Diversity != nil && !req.asked.diversity {
			req.Diversity = *o.Diversity
		}
		if o.N != nil && !req.asked.n {
			req.N = min(*o.N, s.limits.MaxN)
		}
	}
	return h
}

// recommendation is a recommendation or rank request on its way through
// personalise.
type recommendation struct {
	*recommend.Request
	rank  *recommend.RankRequest
	asked asked
}

func (r *recommendation) blend(b map[string]float32) {
	if r.rank != nil {
		r.rank.Blend = b
		return
	}
	r.Request.Blend = b
}

func (r *recommendation) noRanker() {
	if r.rank != nil {
		r.rank.NoRanker = true
		return
	}
	r.Request.NoRanker = true
}

// shown reads the shown parameter: true records the answer as an impression
// before it is sent.
func (s *Server) shown(q url.Values) (bool, error) {
	shown, err := boolValue(q, "shown")
	if err != nil {
		return false, err
	}
	if shown && s.exp == nil {
		return false, errorf(http.StatusBadRequest, "invalid_parameter", "shown=true records an impression, and experiments are off on this server", nil)
	}
	return shown, nil
}

// recordShown logs the answer as shown to the user.
func (s *Server) recordShown(w http.ResponseWriter, ctx context.Context, h header, items []recommend.Scored, now time.Time) error {
	im := event.Impression{RecommendationID: h.recommendationID, User: h.id, Time: now.UTC()}
	for _, it := range items {
		im.Items = append(im.Items, it.Item)
	}
	return s.submit(w, ctx, event.Record{Kind: event.KindImpression, Impression: im})
}

// impressionJSON is one impression as POST /v1/impressions takes it.
type impressionJSON struct {
	RecommendationID string     `json:"recommendation_id"`
	UserID           string     `json:"user_id"`
	Items            []string   `json:"items"`
	Timestamp        *time.Time `json:"timestamp,omitempty"`
}

// maxImpressionAge is how old a recommendation id may be when its
// impression is recorded.
const maxImpressionAge = 7 * 24 * time.Hour

// postImpressions records what the application showed: one impression
// object or an array of them, each naming a recommendation id this server
// issued to that user.
func (s *Server) postImpressions(w http.ResponseWriter, r *http.Request) error {
	if s.exp == nil {
		return errorf(http.StatusNotFound, "experiments_off", "impressions are recorded for experiments, and experiments are off on this server", nil)
	}
	b, err := s.readBody(w, r, s.limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	recs, err := s.parseImpressions(b, s.now().UTC())
	if err != nil {
		return err
	}
	if err := s.submit(w, r.Context(), recs...); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(recs)})
	return nil
}

// parseImpressions decodes and checks a body of POST /v1/impressions at
// now: the log records to write, or the 4xx error naming the first problem.
func (s *Server) parseImpressions(b []byte, now time.Time) ([]event.Record, error) {
	var list []impressionJSON
	var err error
	if t := firstByte(b); t == '[' {
		err = decodeBytes(b, &list, "a JSON array of impressions")
	} else {
		var one impressionJSON
		err = decodeBytes(b, &one, `a JSON object {"recommendation_id", "user_id", "items"} or an array of them`)
		list = []impressionJSON{one}
	}
	if err != nil {
		return nil, err
	}
	switch {
	case len(list) == 0:
		return nil, errorf(http.StatusBadRequest, "invalid_impressions", "the array holds no impression", nil)
	case len(list) > s.limits.MaxBatchEvents:
		return nil, errorf(http.StatusRequestEntityTooLarge, "too_many_impressions", fmt.Sprintf("%d impressions in one request; at most %d (limits.max_batch_events)", len(list), s.limits.MaxBatchEvents), nil)
	}
	return s.impressions(list, now)
}

// impressions checks the impressions of one request at now and makes
// their log records; the first bad one refuses them all.
func (s *Server) impressions(list []impressionJSON, now time.Time) ([]event.Record, error) {
	recs := make([]event.Record, 0, len(list))
	for i, im := range list {
		bad := func(msg string) error {
			return errorf(http.StatusBadRequest, "invalid_impression", fmt.Sprintf("impression %d: %s", i, msg), map[string]any{"index": i})
		}
		if p := s.idProblem(im.UserID); p != "" {
			return nil, bad("user_id " + p)
		}
		if im.RecommendationID == "" {
			return nil, bad("recommendation_id is missing: give the recommendation_id of the answer that was shown")
		}
		issued, ok := s.ids.Check(im.RecommendationID, im.UserID)
		if !ok {
			return nil, errorf(http.StatusUnprocessableEntity, "unknown_recommendation", fmt.Sprintf("impression %d: recommendation_id %q was not issued by this server to user %q", i, im.RecommendationID, im.UserID), map[string]any{"index": i})
		}
		if now.Sub(issued) > maxImpressionAge {
			return nil, errorf(http.StatusUnprocessableEntity, "expired_recommendation", fmt.Sprintf("impression %d: recommendation_id %q was issued %s ago; impressions are recorded within %s", i, im.RecommendationID, now.Sub(issued).Round(time.Second), maxImpressionAge), map[string]any{"index": i})
		}
		if len(im.Items) == 0 || len(im.Items) > s.limits.MaxN {
			return nil, bad(fmt.Sprintf("items must list 1 to %d item ids; got %d", s.limits.MaxN, len(im.Items)))
		}
		for j, it := range im.Items {
			if p := s.idProblem(it); p != "" {
				return nil, bad(fmt.Sprintf("items[%d] %s", j, p))
			}
		}
		at := now
		if im.Timestamp != nil {
			if im.Timestamp.Before(issued.Add(-time.Minute)) || im.Timestamp.After(now.Add(time.Minute)) {
				return nil, bad(fmt.Sprintf("timestamp %s is before the recommendation was issued (%s) or in the future", im.Timestamp.Format(time.RFC3339), issued.Format(time.RFC3339)))
			}
			at = im.Timestamp.UTC()
		}
		recs = append(recs, event.Record{Kind: event.KindImpression, Impression: event.Impression{
			RecommendationID: im.RecommendationID, User: im.UserID, Items: im.Items, Time: at}})
	}
	return recs, nil
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// experimentsOn answers 404 when experiments are off.
func (s *Server) experimentsOn() error {
	if s.exp == nil {
		return errorf(http.StatusNotFound, "experiments_off", "experiments are off on this server (experiments.enabled: false)", nil)
	}
	return nil
}

// defineExperiment is POST /v1/experiments: a new experiment, through the
// log.
func (s *Server) defineExperiment(w http.ResponseWriter, r *http.Request) error {
	if err := s.experimentsOn(); err != nil {
		return err
	}
	b, err := s.readBody(w, r, s.limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	var d experiment.Definition
	if err := decodeBytes(b, &d, "a JSON experiment definition"); err != nil {
		return err
	}
	s.expMu.Lock()
	defer s.expMu.Unlock()
	d.Normalize(s.now())
	if err := d.Validate(s.eng.Sources(), s.limits.MaxN); err != nil {
		return invalidExperiment(err)
	}
	if _, ok := s.exp.Definition(d.Name); ok {
		return errorf(http.StatusConflict, "experiment_exists", fmt.Sprintf("an experiment named %q exists; change it with PATCH /v1/experiments/%s, or choose another name", d.Name, d.Name), nil)
	}
	if err := s.submit(w, r.Context(), event.Record{Kind: event.KindExperiment, Doc: experiment.Record(d, false)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, d)
	return nil
}

func invalidExperiment(err error) error {
	var ve *experiment.ValidationError
	if errors.As(err, &ve) {
		return errorf(http.StatusBadRequest, "invalid_experiment", err.Error(), map[string]string{"field": ve.Field})
	}
	return errorf(http.StatusBadRequest, "invalid_experiment", err.Error(), nil)
}

// experimentPath is the {name} path segment of an experiment that exists.
func (s *Server) experimentPath(r *http.Request) (experiment.Definition, error) {
	if err := s.experimentsOn(); err != nil {
		return experiment.Definition{}, err
	}
	name := r.PathValue("name")
	d, ok := s.exp.Definition(name)
	if !ok {
		return d, errorf(http.StatusNotFound, "unknown_experiment", fmt.Sprintf("no experiment named %q", name), nil)
	}
	return d, nil
}

func (s *Server) listExperiments(w http.ResponseWriter, r *http.Request) error {
	if err := s.experimentsOn(); err != nil {
		return err
	}
	defs := s.exp.Definitions()
	if defs == nil {
		defs = []experiment.Definition{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"experiments": defs})
	return nil
}

func (s *Server) getExperiment(w http.ResponseWriter, r *http.Request) error {
	d, err := s.experimentPath(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// changeExperiment is PATCH /v1/experiments/{name}: start, stop, end, or
// change traffic, through the log.
func (s *Server) changeExperiment(w http.ResponseWriter, r *http.Request) error {
	if err := s.experimentsOn(); err != nil {
		return err
	}
	b, err := s.readBody(w, r, s.limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	var c experiment.Change
	if err := decodeBytes(b, &c, `a JSON object of the changes {"state", "shares", "traffic", "holdout", "end", "reassign"}`); err != nil {
		return err
	}
	s.expMu.Lock()
	defer s.expMu.Unlock()
	d, err := s.experimentPath(r)
	if err != nil {
		return err
	}
	next, err := d.Apply(c)
	if err != nil {
		return invalidExperiment(err)
	}
	// The sources its variants already weigh stay valid: a source since
	// removed from the configuration must not keep an experiment from
	// being stopped or changed.
	sources := s.eng.Sources()
	for _, v := range d.Variants {
		for name := range v.Config.Blend {
			if !slices.Contains(sources, name) {
				sources = append(sources, name)
			}
		}
	}
	if err := next.Validate(sources, s.limits.MaxN); err != nil {
		return invalidExperiment(err)
	}
	if err := s.exp.Check(next, c.Reassign); err != nil {
		return errorf(http.StatusConflict, "would_move_users", err.Error(), nil)
	}
	if err := s.submit(w, r.Context(), event.Record{Kind: event.KindExperiment, Doc: experiment.Record(next, c.Reassign)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, next)
	return nil
}

func (s *Server) experimentResults(w http.ResponseWriter, r *http.Request) error {
	d, err := s.experimentPath(r)
	if err != nil {
		return err
	}
	res, _ := s.exp.Results(d.Name, s.now())
	writeJSON(w, http.StatusOK, res)
	return nil
}

// userExperiments is GET /v1/users/{id}/experiments: the user's variant in
// every running experiment.
func (s *Server) userExperiments(w http.ResponseWriter, r *http.Request) error {
	if err := s.experimentsOn(); err != nil {
		return err
	}
	id, err := s.pathID(r, "user id")
	if err != nil {
		return err
	}
	as := s.exp.Assign(id, s.now(), nil)
	out := make([]map[string]string, 0, len(as))
	for _, a := range as {
		out = append(out, map[string]string{"experiment": a.Experiment, "variant": a.Variant})
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": id, "experiments": out})
	return nil
}

// SetPush turns recommendation streams on: h tells them of changes, every
// bounds how often one stream is updated, max how many are open at once.
func (s *Server) SetPush(h *push.Hub, every time.Duration, max int) {
	s.hub, s.streamEvery, s.maxStreams = h, every, max
}
