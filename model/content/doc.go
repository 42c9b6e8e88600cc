// Package content recommends by what items say about themselves: every
// catalogue item is a sparse TF-IDF vector of the terms of its title,
// description, tags, categories and string attributes (Tokenize), and every
// user a time-decayed sum of the vectors of the items they used. Candidates
// are the items whose vectors point the way the user's profile does,
// found through an inverted index term → items, so an item nobody has
// touched yet is reachable the moment it is put: the cold start the
// collaborative sources cannot serve.
//
// Items: a term's weight is ln(1+tf)·idf, tf the sum of the field weights
// of its occurrences, idf = ln((1+N)/(1+df)) + 1 over the N live items;
// each vector keeps its MaxItemTerms heaviest terms and has unit length.
// Document frequencies change on every put and delete, but a vector uses
// the idf of the moment it was computed: all vectors are recomputed (and
// the index rebuilt) only when the live catalogue has grown or shrunk by a
// quarter since the last time, which costs O(1) amortised per put.
//
// Profiles: a user's profile is Σ w·e^{(t−ref)/τ}·v over the events
// applied (w the event's weight, negative for dislikes; τ from
// HalfLifeSeconds), stored relative to a per-user reference time so that
// decay is one factor for the whole profile; it keeps its MaxProfileTerms
// terms of largest magnitude. Candidates score an item by the cosine of the
// profile's QueryTerms largest terms with the item's vector.
//
// Retention (Evict) is approximate, by design of a bounded profile: the
// evicted event's contribution is subtracted with the item's current
// vector from the terms the profile still holds, a term is never pushed
// past zero (it is dropped instead), and a user whose events are all
// evicted has an empty profile again, exactly. The approximation comes from
// terms the bound already dropped and from vectors recomputed since the
// event was applied (a put or an idf refresh).
//
// Concurrency: Apply, Evict, PutItem and DeleteItem need the caller's write
// lock; Candidates, Neighbours, Similarity, Because, Stats and Bytes only
// the read lock (they write nothing of the model's and use the query's
// scratch).
package content
