// Package model is the seam between the engine and its models: what a model
// sees when it applies an event (Interaction, in log order, under the
// engine's single writer) and what a source is asked when a request comes
// (Query), with the candidates it answers.
//
// The engine holds a list of models and never names one. A model is a value
// with a Name and an Apply method; everything else is optional and found once
// by type assertion (see the interfaces below). Adding a model is one
// package that implements them plus one line where the node is assembled.
package model

import (
	"slices"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/snapshot"
)

// Interaction is one event as a model applies it.
type Interaction struct {
	User  int32         // dense user id
	Item  int32         // dense item id
	Entry history.Entry // the event as the history keeps it (item, time, weight, type, session flag)
	// History is the user's kept history before this event, oldest first
	// (for Evict: the history after the evicted entry). Read-only.
	History []history.Entry
	// Start is how many of the user's events retention evicted before
	// History[0].
	Start uint32
	// Session is where the user's current session starts in History:
	// History[Session:] are the session's earlier events; len(History)
	// when this event starts a new one.
	Session int
	Users   int // users the engine knows: dense user ids are below it
	Items   int // items the engine knows: dense item ids are below it
}

// Weight is the event's implicit-feedback weight.
func (x *Interaction) Weight() float32 { return x.Entry.Weight }

// Seconds is the event's time, milliseconds included.
func (x *Interaction) Seconds() float64 { return x.Entry.Seconds() }

// Model applies events in log order under the engine's single writer.
type Model interface {
	// Name is the source name answers carry ("item_knn"), the
	// configuration key of its blend weight and the label of its metrics.
	Name() string
	Apply(x *Interaction)
}

// Evicter forgets an event retention evicts: x.Entry is the user's oldest
// kept event, x.History what stays after it, as if the model had never seen
// it.
type Evicter interface {
	Evict(x *Interaction)
}

// Flusher finishes work deferred over a group of applied events; the
// engine calls it before readers see the group.
type Flusher interface {
	Flush()
}

// Cataloguer learns of catalogue changes: an item put (with its text and
// categories) or deleted.
type Cataloguer interface {
	PutItem(item int32, it *event.Item)
	DeleteItem(item int32)
}

// Recorder sees every log record as the engine applies it, in log order and
// before the models (impressions, experiment definitions, and events as
// they came, with their context): for a part that keeps its own account of
// the log rather than scoring items (experiments). It must not keep r.
type Recorder interface {
	Record(r *event.Record)
}

// Snapshotter saves and restores the model's state. Fingerprint names
// everything the state depends on besides the log (the model's
// configuration): a snapshot taken under another fingerprint is refused and
// the log replayed.
type Snapshotter interface {
	Fingerprint() string
	Encode(e *snapshot.Encoder)
	Decode(d *snapshot.Decoder)
}

// Sized reports an estimate of the bytes the model holds.
type Sized interface {
	Bytes() int64
}

// Statser reports the model's own figures for /v1/stats (JSON-encodable).
type Statser interface {
	Stats() any
}

// Popular is a source that answers users the engine knows nothing of (the
// same popular items for everyone): the engine's cold start and
// /v1/trending.
type Popular interface {
	Popular()
}

// Featurer is a model that describes items to the learned ranker (package
// ranker): a few numbers per candidate, from state it already holds, that
// the ranker may weigh beside the sources' scores. Features names its
// columns (the engine prefixes each with the model's name); Describe writes
// them for every one of items, item i's at dst[i*stride:], one call per
// request.
type Featurer interface {
	Features() []string
	Describe(q *Query, items []int32, dst []float32, stride int)
}

// Candidate is one scored item.
type Candidate struct {
	Item  int32
	Score float32
}

// Source answers scored candidates for a query: one call per source per
// request, never one per candidate.
type Source interface {
	Name() string
	// Candidates appends to dst up to q.Want items that q.Skip does not
	// reject, best first, with scores where higher is better.
	Candidates(q *Query, dst []Candidate) []Candidate
}

// Weighted is a source with its own default weight in the blend (1 when a
// source does not say); the configuration's blend overrides it.
type Weighted interface {
	DefaultWeight() float32
}

// Scorer is a source that scores given items directly (for ranking a
// list the client sends) rather than through Candidates with q.Only.
type Scorer interface {
	// ScoreItems appends a candidate for each of items it has a score for.
	ScoreItems(q *Query, items []int32, dst []Candidate) []Candidate
}

// Norm says how a blend scales a source's scores to [0, 1] for the user at
// hand.
type Norm uint8

const (
	// NormMax divides by the best score (scores are non-negative): the
	// default.
	NormMax Norm = iota
	// NormMinMax maps the best to 1 and the last to 0 (scores of any sign).
	NormMinMax
)

// Normed is a source whose scores the blend scales other than by NormMax.
type Normed interface {
	Norm() Norm
}

// Explainer says which of the user's own items led a source to item
// (appended to dst as dense item ids, strongest first); called only for
// answers that ask for explanations.
type Explainer interface {
	Because(q *Query, item int32, dst []int32) []int32
}

// Similarity kinds.
const (
	Behaviour = "behaviour" // items the same people use
	Content   = "content"   // items described alike
)

// Similar is a source that knows item-to-item similarity: for
// /v1/items/{id}/similar and for diversifying a list.
type Similar interface {
	// SimilarKind is Behaviour or Content.
	SimilarKind() string
	// Neighbours appends up to q.Want items most similar to item that
	// q.Skip does not reject, best first, scores in [0, 1].
	Neighbours(q *Query, item int32, dst []Candidate) []Candidate
	// Similarity is the similarity of a and b in [0, 1].
	Similarity(a, b int32) float32
}

// Query is one request as a source sees it. The engine fills it and holds
// the read lock while sources answer; a source must not keep any of its
// slices.
type Query struct {
	User    int32           // dense user id; -1 for a user the engine has never seen
	History []history.Entry // the user's kept history, oldest first
	Start   uint32          // the user's events evicted before History[0]
	Session int             // History[Session:] is the user's current session
	N       int             // the answer's length
	Want    int             // candidates a source should bring, best first
	Now     float64         // the events' clock: the latest event time applied, in seconds
	// Excluded counts the items Skip rejects for this user and request
	// (consumed ones of History, and those the request excludes).
	Excluded int
	// Filtered is set when Skip depends on more than the user's history and
	// the catalogue (the request excludes items, or ranks a given list): a
	// source must not answer it from, nor keep it in, a cache shared with
	// other requests.
	Filtered bool
	// Category is the category the answer is restricted to, -1 for none;
	// InCategory its items.
	Category   int32
	InCategory []int32
	// Epoch changes with every catalogue change: a source that caches
	// filtered candidates keys them by it.
	Epoch uint64
	Items int // items the engine knows: dense item ids are below it

	// Acc is a per-item scratch of length Items or more, all zero: a
	// source may use it and must leave it all zero.
	Acc []float32
	// Touched is scratch for the items a source touched in Acc.
	Touched []int32

	// Mark[item] == Stamp: excluded from this answer (consumed by the
	// user, or excluded by the request); when Only is set, the reverse:
	// the answer may hold only the marked items (ranking a given list).
	Mark  []uint32
	Stamp uint32
	Only  bool
	// Blocked[item]: hidden or deleted.
	Blocked []bool
	// Cats[item]: the item's categories.
	Cats [][]int32
}

// Skip reports whether item must not be answered: excluded, hidden,
// deleted, or outside the category asked for; when ranking a given list
// (Only), whether it is not in the list.
func (q *Query) Skip(item int32) bool {
	if q.Only {
		return q.Mark[item] != q.Stamp
	}
	if q.Mark[item] == q.Stamp || q.Blocked[item] {
		return true
	}
	return q.Category >= 0 && !slices.Contains(q.Cats[item], q.Category)
}

// SessionItems is the user's current session, oldest first.
func (q *Query) SessionItems() []history.Entry { return q.History[q.Session:] }
