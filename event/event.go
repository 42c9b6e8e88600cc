package event

import (
	"encoding/json"
	"time"
)

// Type is the kind of behaviour an event records.
type Type uint8

// The event types streamrec knows. A scenario preset decides which of them
// it accepts and what each is worth.
const (
	TypeUnknown Type = iota
	View
	Click
	Search
	Favorite
	Cart
	Purchase
	Watch
	Like
	Dislike
	Comment
	Share
	Rating
	numTypes
)

// NumTypes is the size of a table indexed by Type.
const NumTypes = int(numTypes)

var typeNames = [numTypes]string{
	TypeUnknown: "unknown",
	View:        "view",
	Click:       "click",
	Search:      "search",
	Favorite:    "favorite",
	Cart:        "cart",
	Purchase:    "purchase",
	Watch:       "watch",
	Like:        "like",
	Dislike:     "dislike",
	Comment:     "comment",
	Share:       "share",
	Rating:      "rating",
}

// typeAliases lets clients use the spellings they already have.
var typeAliases = map[string]Type{
	"favourite":   Favorite,
	"add_to_cart": Cart,
	"add-to-cart": Cart,
	"addtocart":   Cart,
	"buy":         Purchase,
	"rate":        Rating,
}

// String returns the canonical name of t.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// ParseType returns the Type named s (canonical name or a known alias).
func ParseType(s string) (Type, bool) {
	for i, n := range typeNames {
		if i != int(TypeUnknown) && n == s {
			return Type(i), true
		}
	}
	if t, ok := typeAliases[s]; ok {
		return t, true
	}
	return TypeUnknown, false
}

// Event is one cleaned, validated behaviour event, as stored in the log and
// applied by the models.
type Event struct {
	ID      string          // client-supplied id, used for de-duplication; may be empty
	User    string          // user id at the API edge
	Item    string          // item id at the API edge; empty only for search events
	Type    Type            // what happened
	Value   float64         // the value given or the type's default (watched fraction, rating...)
	Time    time.Time       // when it happened (server time when the client gave none)
	Weight  float32         // implicit-feedback weight from the scenario's table
	Context json.RawMessage // free JSON object supplied by the client (device, page, query...)
}

// Item is a catalogue entry.
type Item struct {
	ID          string          `json:"id"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	Categories  []string        `json:"categories,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	Attributes  json.RawMessage `json:"attributes,omitempty"`
	PublishedAt *time.Time      `json:"published_at,omitempty"`
	Hidden      bool            `json:"hidden,omitempty"`
}

// User is a user profile.
type User struct {
	ID         string          `json:"id"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
}

// RecordKind says what a log record holds.
type RecordKind uint8

// Log record kinds. The values are stored on disk: never renumber them.
const (
	KindEvent      RecordKind = 1
	KindItemPut    RecordKind = 2
	KindItemDelete RecordKind = 3
	KindUserPut    RecordKind = 4
	KindUserDelete RecordKind = 5
	KindImpression RecordKind = 6 // a list the application showed a user
	KindExperiment RecordKind = 7 // an experiment defined or changed
	// KindSkip holds the place of a record the models skip: a duplicate
	// event in a log several replicas append to (cluster mode), found when
	// the log is applied, in log order.
	KindSkip RecordKind = 8
)

// Record is one entry of the durable log. Models are deterministic
// consumers of records in log order.
type Record struct {
	Kind  RecordKind
	Event Event // KindEvent
	Item  Item  // KindItemPut; Item.ID also for KindItemDelete
	User  User  // KindUserPut; User.ID also for KindUserDelete
	// Impression is what the application showed (KindImpression).
	Impression Impression
	// Doc is an experiment's definition as the experiment package writes it
	// (KindExperiment); the log keeps it as it came.
	Doc json.RawMessage
}

// Impression is one list shown to a user: the recommendation it came from
// and the items, in the order shown.
type Impression struct {
	RecommendationID string    `json:"recommendation_id"`
	User             string    `json:"user_id"`
	Items            []string  `json:"items"`
	Time             time.Time `json:"timestamp"`
}
