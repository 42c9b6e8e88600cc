// Command streamrec is the real-time recommendation engine: one binary with
// the subcommands serve, import, train, eval, bench and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `streamrec: a real-time recommendation engine

Usage:
  streamrec serve  [--addr 127.0.0.1:8080] [--data ./streamrec-data] [--config FILE] [--preset ecommerce|video]
  streamrec import [--data ./streamrec-data] [--preset ecommerce|video] SOURCE
  streamrec train  [--data ./streamrec-data] [--out FILE] [SOURCE] | --synthetic N [--users U --items I]
  streamrec eval   --data DIR [--protocol chrono|leave-last|prequential] [--json FILE] [--plot FILE.svg]
  streamrec bench  serve|ingest|freshness|mixed [--url http://127.0.0.1:8080] [--data-from DIR] ...
  streamrec version

Run "streamrec COMMAND --help" for a command's flags.
`

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "streamrec:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, getenv)
	case "import":
		return importCmd(ctx, args[1:], stdout, stderr, getenv)
	case "eval":
		return evalCmd(ctx, args[1:], stdout, stderr, getenv)
	case "train":
		return trainCmd(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "streamrec", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
