// Package conformance holds a test suite that every model of the default
// configuration (config.Default().Models()) passes, each alone in an engine
// and under both presets: answers fresh after each event, snapshot round
// trips, chunking invariance, top-N against a brute-force ranking of every
// item, and retention against an engine fed only the events retention kept.
//
// A model added to config.Models() is covered without a change here. What a
// model may not promise is named in the tests' tables, with the reason
// (its package documentation), and the check is skipped with that note
// rather than passed.
package conformance
