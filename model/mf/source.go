package mf

import "github.com/streamrec/streamrec/model"

// Name is the source name of matrix factorisation.
const Name = "mf"

// Source is matrix factorisation behind the engine's model seam: between
// trainings it notes every event (items without a vector are folded in from
// their users, users re-solved when their history changed) and answers the
// user's vector against the item vectors.
type Source struct {
	m *Model
}

// NewSource returns a source with no trained model yet.
func NewSource(cfg Config) *Source { return &Source{m: New(cfg)} }

// Model is the served model (write lock held to change it).
func (s *Source) Model() *Model { return s.m }

// Replace serves a new model with configuration cfg (write lock held).
func (s *Source) Replace(cfg Config) { s.m = New(cfg) }

// Name implements model.Model.
func (s *Source) Name() string { return Name }

// Apply implements model.Model.
func (s *Source) Apply(x *model.Interaction) {
	s.m.Grow(x.Users)
	s.m.Apply(x.User, x.Item, x.Entry.Weight)
}

// Evict implements model.Evicter.
func (s *Source) Evict(x *model.Interaction) { s.m.Evict(x.User, x.Item, x.Entry.Weight, x.Start) }

// DefaultWeight implements model.Weighted.
func (s *Source) DefaultWeight() float32 { return 0.25 }

// Norm implements model.Normed: dot products have any sign.
func (s *Source) Norm() model.Norm { return model.NormMinMax }

// Bytes implements model.Sized.
func (s *Source) Bytes() int64 { return s.m.Bytes() }

// Candidates implements model.Source: the user's vector, folded in first
// if they acted since, against the item vectors.
func (s *Source) Candidates(q *model.Query, dst []model.Candidate) []model.Candidate {
	if q.User < 0 {
		return dst
	}
	if q.Filtered { // this request's own exclusions: not the per-user cache
		return s.m.Candidates(s.m.UserVector(q.User, q.History, q.Start), q.Want, q.Excluded, q.Skip, dst)
	}
	return s.m.UserCandidates(q.User, q.History, q.Start, q.Want, q.Excluded, q.Category, q.Epoch, q.Skip, dst)
}

// ScoreItems implements model.Scorer: the user's vector against each item
// given that has a vector.
func (s *Source) ScoreItems(q *model.Query, items []int32, dst []model.Candidate) []model.Candidate {
	if q.User < 0 {
		return dst
	}
	return s.m.ScoreItems(q.User, q.History, q.Start, items, dst)
}
