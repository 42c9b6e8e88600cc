package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/streamrec/streamrec/bench"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
)

const benchUsage = `Usage: streamrec bench MODE [flags]

Measures a running server (ours or any URL speaking the same API).

Modes:
  serve      GET recommendations open-loop at --rate; latency from each request's due time
  ingest     POST batches of --batch events from --concurrency clients; durable events/s
  freshness  for new users: time from sending an event to the first recommendation that reflects it
  mixed      ingest and serve at once: read latency under write load
  saturate   closed loop from --conns connections against --url and against a minimal
             net/http server started in its own process, in alternating rounds:
             saturated requests/s of each and their ratio

Events, users and items come from --data-from (anything streamrec import reads),
or from a Zipf generator (--zipf-users, --zipf-items).

Flags:
`

type benchFlags struct {
	cfgURL, key, dataFrom, jsonOut, evType         string
	refURL                                         string
	rate, conns, n, batch, concurrency, ingestRate int
	samples, zipfUsers, zipfItems, rounds          int
	duration                                       time.Duration
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f benchFlags
	fs.StringVar(&f.cfgURL, "url", "http://127.0.0.1:8080", "server to measure")
	fs.StringVar(&f.key, "key", "", "API key (env STREAMREC_BENCH_KEY)")
	fs.StringVar(&f.dataFrom, "data-from", "", "data set to draw users, items and events from")
	fs.IntVar(&f.zipfUsers, "zipf-users", 6040, "without --data-from: users of the Zipf generator")
	fs.IntVar(&f.zipfItems, "zipf-items", 3706, "without --data-from: items of the Zipf generator")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "how long to run (serve, ingest, mixed; saturate: each round)")
	fs.IntVar(&f.rate, "rate", 5000, "serve: requests per second (open loop)")
	fs.IntVar(&f.conns, "conns", 0, "serve, saturate: keep-alive connections (default 32 for serve, 8 for saturate)")
	fs.IntVar(&f.rounds, "rounds", 2, "saturate: rounds per server, alternating, the reference first")
	fs.StringVar(&f.refURL, "reference-url", "", "saturate: use this server as the reference instead of starting the minimal one")
	fs.IntVar(&f.n, "n", 10, "items per recommendation request")
	fs.IntVar(&f.batch, "batch", 500, "ingest: events per request")
	fs.IntVar(&f.concurrency, "concurrency", 4, "ingest: concurrent clients")
	fs.IntVar(&f.ingestRate, "ingest-rate", 0, "ingest, mixed: events per second across the clients (0: as fast as they go)")
	fs.IntVar(&f.samples, "samples", 200, "freshness: users sampled")
	fs.StringVar(&f.evType, "type", "view", "freshness: event type sent")
	fs.StringVar(&f.jsonOut, "json", "", "also write the results as JSON to this file")
	var quiet bool
	fs.BoolVar(&quiet, "quiet", false, "no progress output")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return parseFlags(fs, args[:1], stdout)
	}
	if len(args) == 0 || len(args[0]) > 0 && args[0][0] == '-' {
		fs.Usage()
		return errors.New("bench: give a MODE first (serve, ingest, freshness, mixed, saturate)")
	}
	mode := args[0]
	if mode == "reference" { // hidden: the minimal server bench saturate starts
		return referenceCmd(ctx, args[1:], os.Stdin, stdout, stderr)
	}
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	progress := progressOut(stderr, quiet)
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if f.key == "" {
		f.key = os.Getenv("STREAMREC_BENCH_KEY")
	}
	switch mode {
	case "serve", "ingest", "freshness", "mixed", "saturate":
	default:
		fs.Usage()
		return fmt.Errorf("bench: unknown mode %q (serve, ingest, freshness, mixed, saturate)", mode)
	}
	switch {
	case f.conns < 0:
		return errors.New("bench: --conns must be positive")
	case f.conns == 0 && mode == "saturate":
		f.conns = 8
	case f.conns == 0:
		f.conns = 32
	}
	if mode == "saturate" && f.rounds <= 0 {
		return errors.New("bench: --rounds must be positive")
	}
	events, err := benchEvents(f)
	if err != nil {
		return err
	}
	out := map[string]any{"mode": mode, "url": f.cfgURL}
	var mu sync.Mutex
	runServe := func(show bool) error {
		cfg := bench.ServeConfig{URL: f.cfgURL, Rate: f.rate, Duration: f.duration, Conns: f.conns, N: f.n, Key: f.key, Users: users(events)}
		w := io.Discard
		if show {
			w = progress
		}
		b := newBar(w, int64(float64(f.rate)*f.duration.Seconds()), "serve", false)
		defer b.Stop()
		cfg.Progress = func(done int) { b.Set(done) }
		res, err := bench.Serve(ctx, cfg)
		if err != nil {
			return err
		}
		b.Finish()
		mu.Lock()
		defer mu.Unlock()
		out["serve"] = res
		fmt.Fprint(stdout, res.Table())
		return nil
	}
	runIngest := func(show bool) error {
		cfg := bench.IngestConfig{URL: f.cfgURL, Events: events, BatchSize: f.batch, Concurrency: f.concurrency, Rate: f.ingestRate, Duration: f.duration, Key: f.key}
		w := io.Discard
		if show {
			w = progress
		}
		// Progress in tenths of a second of the run: the number of events
		// it will reach is not known in advance.
		start := time.Now()
		b := newBar(w, int64(f.duration/(100*time.Millisecond)), "ingest", false)
		defer b.Stop()
		cfg.Progress = func(int) {
			b.Set64(min(int64(time.Since(start)/(100*time.Millisecond)), b.GetMax64()))
		}
		res, err := bench.Ingest(ctx, cfg)
		if err != nil {
			return err
		}
		b.Finish()
		mu.Lock()
		defer mu.Unlock()
		out["ingest"] = res
		fmt.Fprint(stdout, res.Table())
		return nil
	}
	switch mode {
	case "serve":
		err = runServe(true)
	case "ingest":
		err = runIngest(true)
	case "freshness":
		var res bench.FreshnessResult
		res, err = bench.Freshness(ctx, bench.FreshnessConfig{URL: f.cfgURL, Items: popular(events, 100), Samples: f.samples, Type: f.evType, N: f.n, Key: f.key})
		if err == nil {
			out["freshness"] = res
			fmt.Fprint(stdout, res.Table())
		}
	case "mixed":
		errc := make(chan error, 1)
		go func() { errc <- runIngest(false) }()
		err = runServe(true)
		if ierr := <-errc; err == nil {
			err = ierr
		}
	case "saturate":
		var res bench.SaturateResult
		res, err = runSaturate(ctx, f, users(events), stdout, stderr, progress)
		if err == nil {
			out["saturate"] = res
		}
	}
	if err != nil {
		return err
	}
	if f.jsonOut != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(f.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// referenceArgv is the command line that starts the reference server,
// before "bench reference ...": this very binary. Tests replace it with
// the test binary and referenceEnv.
var (
	referenceArgv = func() ([]string, error) {
		exe, err := os.Executable()
		return []string{exe}, err
	}
	referenceEnv []string
)

// runSaturate is bench saturate: it starts the reference server (unless
// --reference-url names one), runs the rounds, printing each as it ends,
// then the ratio.
func runSaturate(ctx context.Context, f benchFlags, users []string, stdout, stderr, progress io.Writer) (bench.SaturateResult, error) {
	ref := f.refURL
	how := "given by --reference-url"
	if ref == "" {
		argv, err := referenceArgv()
		if err != nil {
			return bench.SaturateResult{}, fmt.Errorf("bench: the reference server: %w", err)
		}
		addr, stop, err := startReference(ctx, argv, referenceEnv, f.n, stderr)
		if err != nil {
			return bench.SaturateResult{}, err
		}
		defer stop()
		ref = "http://" + addr
		how = "a minimal net/http server, in its own process"
	}
	body := len(bench.ReferenceBody(f.n))
	fmt.Fprintf(stdout, "saturate: closed loop, %d keep-alive connections, %s a round, %d rounds each, alternating\n", f.conns, f.duration, f.rounds)
	fmt.Fprintf(stdout, "  requests:  GET /v1/users/{id}/recommendations?n=%d over %d users, the same sequence every round\n", f.n, len(users))
	fmt.Fprintf(stdout, "  streamrec: %s\n  reference: %s (%s; a fixed %d-byte JSON body)\n", f.cfgURL, ref, how, body)
	fmt.Fprint(stdout, bench.SaturateHeader())
	var b *bar
	defer func() {
		if b != nil {
			b.Stop()
		}
	}()
	cfg := bench.SaturateConfig{
		Reference: ref, Target: f.cfgURL, Duration: f.duration, Rounds: f.rounds,
		Conns: f.conns, Users: users, N: f.n, Key: f.key,
		Round: func(i int, server string, cc *bench.ClosedConfig) {
			// Progress in tenths of a second of the round.
			start := time.Now()
			b = newBar(progress, int64(f.duration/(100*time.Millisecond)), fmt.Sprintf("%s %d/%d", server, (i+1)/2, f.rounds), false)
			cc.Progress = func(int) {
				b.Set64(min(int64(time.Since(start)/(100*time.Millisecond)), b.GetMax64()))
			}
		},
		Done: func(r bench.SaturateRound) {
			b.Finish()
			fmt.Fprint(stdout, r.Row())
		},
	}
	res, err := bench.Saturate(ctx, cfg)
	if err != nil {
		return res, err
	}
	fmt.Fprint(stdout, res.Summary())
	return res, nil
}

// startReference starts "ARGV bench reference" listening on a free
// loopback port and returns its address once it listens, and how to stop
// it. It also stops when this process dies: it ends when its stdin, a
// pipe from here, closes.
func startReference(ctx context.Context, argv, env []string, n int, stderr io.Writer) (addr string, stop func(), err error) {
	args := append(append([]string(nil), argv[1:]...), "bench", "reference", "--addr", "127.0.0.1:0", "--n", strconv.Itoa(n), "--watch-stdin")
	cmd := exec.Command(argv[0], args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, fmt.Errorf("bench: the reference server: %w", err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("bench: the reference server: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("bench: the reference server: %w", err)
	}
	exited := make(chan struct{})
	stop = func() {
		in.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	// The first line that is a host:port is the address; the rest of its
	// stdout is drained.
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outPipe)
		for said := false; !said && sc.Scan(); {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				if _, _, err := net.SplitHostPort(line); err == nil {
					found <- line
					said = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, outPipe)
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case addr = <-found:
		return addr, stop, nil
	case <-exited:
		return "", nil, fmt.Errorf("bench: the reference server (%s bench reference) exited before listening", argv[0])
	case <-time.After(10 * time.Second):
		stop()
		return "", nil, errors.New("bench: the reference server did not say its address within 10s")
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
}

// referenceCmd is the hidden "bench reference": the minimal server,
// answering every GET with a fixed recommendation-sized JSON body. It
// prints its address on stdout and runs until ctx ends (SIGTERM,
// interrupt) or, with --watch-stdin, until stdin closes.
func referenceCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench reference", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0: any free one)")
	n := fs.Int("n", 10, "items in the body")
	watch := fs.Bool("watch-stdin", false, "exit when stdin closes (when started by bench saturate)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: streamrec bench reference [flags]\n\nThe minimal HTTP server bench saturate compares with: every GET gets a fixed\nJSON body of --n recommendations. Prints its address on stdout.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench reference: unexpected argument %q", fs.Arg(0))
	}
	if *n <= 0 {
		return errors.New("bench reference: --n must be positive")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("bench reference: %w", err)
	}
	srv := &http.Server{Handler: bench.ReferenceHandler(bench.ReferenceBody(*n)), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(stdout, ln.Addr().String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *watch {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("bench reference: %w", err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// benchEvents loads the source: a data set, or the Zipf generator.
func benchEvents(f benchFlags) ([]event.Input, error) {
	if f.dataFrom != "" {
		d, err := dataset.Load(f.dataFrom, nil)
		if err != nil {
			return nil, err
		}
		if len(d.Events) == 0 {
			return nil, fmt.Errorf("bench: %s holds no events", f.dataFrom)
		}
		return d.Events, nil
	}
	if f.zipfUsers <= 1 || f.zipfItems <= 1 {
		return nil, fmt.Errorf("bench: --zipf-users and --zipf-items must be above 1")
	}
	return dataset.Synthetic(dataset.SynthConfig{Users: f.zipfUsers, Items: f.zipfItems, Events: 200_000, Seed: uint64(time.Now().UnixNano())}), nil
}

// users lists the distinct users of the events, in order of appearance.
func users(events []event.Input) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range events {
		if !seen[e.UserID] {
			seen[e.UserID] = true
			out = append(out, e.UserID)
		}
	}
	return out
}

// popular lists the k most frequent items of the events.
func popular(events []event.Input, k int) []string {
	count := map[string]int{}
	for _, e := range events {
		count[e.ItemID]++
	}
	items := make([]string, 0, len(count))
	for it := range count {
		items = append(items, it)
	}
	sort.Slice(items, func(a, b int) bool {
		if count[items[a]] != count[items[b]] {
			return count[items[a]] > count[items[b]]
		}
		return items[a] < items[b]
	})
	return items[:min(k, len(items))]
}
