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
// Profiles are built when a request comes, from the user's history as the
// engine keeps it: Σ w·e^{(t−t₀)/τ}·v over the ProfileItems latest entries
// (w the event's weight, negative for dislikes; τ from HalfLifeSeconds; t₀
// the latest of those entries, a factor common to every term that the
// cosine ignores), summed in a dense per-term scratch pooled across
// requests. Apply and Evict keep nothing: the next request reflects an
// event, and retention is exact, since the history is the engine's; a user
// costs the model no memory. Candidates score an item by the dot product of
// its vector with the profile's query terms, over the whole profile's norm:
// the QueryTerms terms of largest magnitude among those in at most
// MaxTermShare of the live items (or commonFloor postings): a term as
// common as a genre carries little idf and would be most of a request's
// work. Scores are summed list by list, positive terms first; negative
// ones only lower items already met.
//
// Neighbours reads the postings of the item's terms heaviest bound first
// and scores each item met exactly, leaving a list as soon as no item it
// has yet to list could enter the answer (a MaxScore bound): exact, and a
// fraction of the postings when the answer's worst score is high.
//
// Concurrency: Apply, Evict, PutItem and DeleteItem need the caller's write
// lock; Candidates, Neighbours, Similarity, Because, Stats and Bytes only
// the read lock (they write nothing of the model's and use the query's
// scratch).
package content
