// Package shared finds the real data sets that tests, evaluations and
// benchmarks read in place from ../shared/datasets beside the repository
// (they may not be copied into it).
package shared

import (
	"os"
	"path/filepath"
	"testing"
)

// Dataset returns the directory of the named data set, or skips tb with a
// clear message when ../shared is absent.
func Dataset(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := find(name)
	if err != nil {
		tb.Skipf("../shared/datasets/%s is absent (%v): real-data tests need the shared data sets beside the repository", name, err)
	}
	return dir
}

// find walks up from the working directory (a package directory under
// go test) to the module root and looks beside it.
func find(name string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared", "datasets", name)
			_, err := os.Stat(p)
			return p, err
		}
		if filepath.Dir(dir) == dir {
			return "", os.ErrNotExist
		}
	}
}

// SkipUnderRace skips tb when the race detector is on: a test that pushes a
// whole real data set through the engine gives the detector little to check
// that the smaller tests do not, and takes minutes under it. .ci/run runs
// each such test again without -race (its second phase).
func SkipUnderRace(tb testing.TB) {
	tb.Helper()
	if Race {
		tb.Skip("a whole data set under the race detector: .ci/run runs this test without -race")
	}
}
