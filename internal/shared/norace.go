//go:build !race

package shared

// Race reports whether the race detector is on: tests that train models
// shrink their data under it (it slows them about tenfold), keeping the
// same assertions.
const Race = false
