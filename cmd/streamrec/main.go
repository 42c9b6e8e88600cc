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
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

const usage = `streamrec: a real-time recommendation engine

Usage:
  streamrec serve  [--addr 127.0.0.1:8080] [--data ./streamrec-data] [--config FILE] [--preset ecommerce|video]
  streamrec import [--data ./streamrec-data] [--preset ecommerce|video] [--append] [--quiet] SOURCE
  streamrec train  [--data ./streamrec-data] [--out FILE] [--quiet] [SOURCE] | --synthetic N [--users U --items I]
  streamrec eval   --data DIR [--protocol chrono|leave-last|prequential] [--json FILE] [--plot FILE.svg] [--quiet]
  streamrec bench  serve|ingest|freshness|mixed|saturate [--url http://127.0.0.1:8080] [--data-from DIR] [--quiet] ...
  streamrec version

Run "streamrec COMMAND --help" for a command's flags.
`

// ldVersion may be set at link time (-ldflags "-X main.ldVersion=v1.2.3");
// otherwise the version comes from the build information go build records.
var ldVersion string

// version is what the server logs at start: the module version, or the
// VCS revision for a development build.
var version = shortVersion(debug.ReadBuildInfo())

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err once and says how the process ends: 0 on success and
// when help was asked for, 2 otherwise.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "streamrec:", err)
	return 2
}

// parseFlags parses a command's flags. --help (or -h) prints the command's
// usage on stdout and returns flag.ErrHelp (exit 0); a bad flag returns one
// error naming it, which main prints once, with no usage dump.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(out)
		return flag.ErrHelp
	}
	fs.SetOutput(out)
	if err != nil {
		return fmt.Errorf("%s: %w (see streamrec %s --help)", fs.Name(), err, fs.Name())
	}
	return nil
}

// describeBuild is what "streamrec version" prints: the module version, the
// VCS revision and time (and whether the tree had uncommitted changes), the
// Go version and platform.
func describeBuild(info *debug.BuildInfo, ok bool) string {
	var b strings.Builder
	b.WriteString("streamrec ")
	if ldVersion != "" {
		b.WriteString(ldVersion)
	} else if ok && info.Main.Version != "" {
		b.WriteString(info.Main.Version)
	} else {
		b.WriteString("(unknown version)")
	}
	rev, at, modified := vcs(info, ok)
	if rev != "" {
		fmt.Fprintf(&b, " revision %s", rev)
		var notes []string
		if at != "" {
			notes = append(notes, at)
		}
		if modified {
			notes = append(notes, "with uncommitted changes")
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
		}
	} else {
		b.WriteString(" (no VCS revision recorded: built outside a git checkout, or with -buildvcs=false)")
	}
	goVersion := runtime.Version()
	if ok && info.GoVersion != "" {
		goVersion = info.GoVersion
	}
	fmt.Fprintf(&b, " %s %s/%s", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// shortVersion is the module version, or "devel-REVISION" for a
// development build.
func shortVersion(info *debug.BuildInfo, ok bool) string {
	if ldVersion != "" {
		return ldVersion
	}
	if ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	if rev, _, modified := vcs(info, ok); rev != "" {
		if modified {
			rev += "+dirty"
		}
		return "devel-" + rev
	}
	return "devel"
}

func vcs(info *debug.BuildInfo, ok bool) (rev, at string, modified bool) {
	if !ok {
		return "", "", false
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, at, modified
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	case "import":
		return importCmd(ctx, args[1:], stdout, stderr, getenv)
	case "eval":
		return evalCmd(ctx, args[1:], stdout, stderr, getenv)
	case "train":
		return trainCmd(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "version":
		if len(args) > 1 && args[1] != "-h" && args[1] != "--help" {
			return fmt.Errorf("version: unexpected argument %q", args[1])
		}
		if len(args) > 1 {
			fmt.Fprintln(stdout, "Usage: streamrec version\n\nPrints the module version, the VCS revision it was built from, and the Go version.")
			return flag.ErrHelp
		}
		fmt.Fprintln(stdout, describeBuild(debug.ReadBuildInfo()))
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
