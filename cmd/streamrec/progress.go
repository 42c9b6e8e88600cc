package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// plainEvery is how often a progress line is written when stderr is not a
// terminal (a file, a pipe, a CI log).
var plainEvery = 5 * time.Second

// progressOut is where the progress of long phases goes: stderr, or
// nowhere with --quiet.
func progressOut(stderr io.Writer, quiet bool) io.Writer {
	if quiet {
		return io.Discard
	}
	return stderr
}

// isTerminal reports whether w is a terminal (a redrawn bar makes sense).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bar reports one phase's progress: a redrawn bar with an ETA on a
// terminal; elsewhere a plain line every plainEvery and one when the phase
// is done; nothing on io.Discard. Safe for concurrent use.
type bar struct {
	mu    sync.Mutex
	pb    *progressbar.ProgressBar // terminal
	w     io.Writer                // plain lines; nil when quiet
	what  string
	bytes bool
	max   int64
	cur   int64
	start time.Time
	last  time.Time
	done  bool
}

// newBar starts reporting a phase of max steps (bytes when bytes) on w.
func newBar(w io.Writer, max int64, what string, bytes bool) *bar {
	return makeBar(w, max, what, bytes, isTerminal(w))
}

func makeBar(w io.Writer, max int64, what string, bytes, tty bool) *bar {
	b := &bar{what: what, bytes: bytes, max: max, start: time.Now()}
	b.last = b.start
	switch {
	case w == io.Discard:
	case tty:
		b.pb = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowBytes(bytes),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	default:
		b.w = w
	}
	return b
}

// Set64 records that n steps are done.
func (b *bar) Set64(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.cur = n
	if b.pb != nil {
		_ = b.pb.Set64(n)
		return
	}
	if b.w != nil {
		if now := time.Now(); now.Sub(b.last) >= plainEvery {
			b.last = now
			fmt.Fprintln(b.w, b.line(now))
		}
	}
}

// Set records that n steps are done.
func (b *bar) Set(n int) { b.Set64(int64(n)) }

// Add records n more steps.
func (b *bar) Add(n int) {
	b.mu.Lock()
	cur := b.cur
	b.mu.Unlock()
	b.Set64(cur + int64(n))
}

// GetMax64 is the number of steps.
func (b *bar) GetMax64() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max
}

// GetMax is the number of steps.
func (b *bar) GetMax() int { return int(b.GetMax64()) }

// ChangeMax64 changes the number of steps.
func (b *bar) ChangeMax64(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.max = n
	if b.pb != nil {
		b.pb.ChangeMax64(n)
	}
}

// ChangeMax changes the number of steps.
func (b *bar) ChangeMax(n int) { b.ChangeMax64(int64(n)) }

// Finish reports the phase done.
func (b *bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.pb != nil {
		_ = b.pb.Finish()
		return
	}
	if b.w != nil {
		fmt.Fprintf(b.w, "%s: %s done in %s\n", b.what, b.amount(max(b.cur, b.max)), time.Since(b.start).Round(100*time.Millisecond))
	}
}

// Stop ends a phase that did not finish (an error, an interrupt): the
// terminal's cursor leaves the bar's line, so what is printed next starts
// a line of its own. A no-op after Finish.
func (b *bar) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.pb != nil && !b.pb.IsFinished() {
		_ = b.pb.Exit()
	}
}

// line is the plain progress line: "storing: 45000/100000 (45%), 12s, about 15s left".
func (b *bar) line(now time.Time) string {
	elapsed := now.Sub(b.start)
	s := fmt.Sprintf("%s: %s/%s", b.what, b.amount(b.cur), b.amount(b.max))
	if b.max > 0 {
		s += fmt.Sprintf(" (%d%%)", b.cur*100/b.max)
	}
	s += ", " + elapsed.Round(time.Second).String()
	if b.cur > 0 && b.max > b.cur {
		left := time.Duration(float64(elapsed) * float64(b.max-b.cur) / float64(b.cur))
		s += ", about " + left.Round(time.Second).String() + " left"
	}
	return s
}

func (b *bar) amount(n int64) string {
	if !b.bytes {
		return fmt.Sprint(n)
	}
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
