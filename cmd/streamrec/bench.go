package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/streamrec/streamrec/bench"
	"github.com/streamrec/streamrec/dataset"
)

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.ServeConfig
	var usersFrom, jsonOut string
	var users int
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "server to measure")
	fs.IntVar(&cfg.Rate, "rate", 5000, "recommendation requests per second (open loop)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&cfg.Conns, "conns", 32, "keep-alive connections")
	fs.IntVar(&cfg.N, "n", 10, "items per request")
	fs.StringVar(&usersFrom, "users-from", "", "data set whose users to ask for (anything streamrec import reads)")
	fs.IntVar(&users, "users", 1000, "without --users-from: ask for users u0 … u(N-1)")
	fs.StringVar(&jsonOut, "json", "", "also write the result as JSON to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: streamrec bench [flags]\n\nSends GET /v1/users/{id}/recommendations open-loop at a fixed rate and reports latency percentiles.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if usersFrom != "" {
		d, err := dataset.Load(usersFrom, nil)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range d.Events {
			if !seen[e.UserID] {
				seen[e.UserID] = true
				cfg.Users = append(cfg.Users, e.UserID)
			}
		}
	} else {
		if users <= 0 {
			return errors.New("bench: --users must be positive")
		}
		for i := range users {
			cfg.Users = append(cfg.Users, "u"+strconv.Itoa(i))
		}
	}
	total := int64(float64(cfg.Rate) * cfg.Duration.Seconds())
	bar := newBar(stderr, total, "requests", false)
	cfg.Progress = func(done int) { _ = bar.Set(done) }
	res, err := bench.Serve(ctx, cfg)
	_ = bar.Finish()
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, res.Table())
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}
