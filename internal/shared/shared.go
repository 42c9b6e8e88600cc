// Package shared finds the real data sets that tests, evaluations and
// benchmarks read in place from ../shared/datasets beside the repository
// (they may not be copied into it).
package shared

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
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

// RSS is this process's resident set in bytes and its peak (VmRSS and VmHWM
// of /proc/self/status); 0, 0 where /proc is absent.
func RSS() (cur, peak uint64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	field := func(name string) uint64 {
		i := bytes.Index(b, []byte(name+":"))
		if i < 0 {
			return 0
		}
		f := bytes.Fields(b[i+len(name)+1:])
		if len(f) == 0 {
			return 0
		}
		kb, _ := strconv.ParseUint(string(f[0]), 10, 64)
		return kb << 10
	}
	return field("VmRSS"), field("VmHWM")
}
