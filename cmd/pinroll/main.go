// Command pinroll pins Artifact Registry digests into a GitOps repository.
// Run `pinroll --help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of the CLI.
type command struct {
	summary string
	usage   string // after "pinroll NAME "
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is what a command may touch of the outside world.
type cliEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// ready, when set, is called by serve with its listening address (tests).
	ready func(addr string)
}

var commands = map[string]command{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, &cliEnv{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:]))
}

// usageError marks a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run executes one command line and returns the exit status: 0 on success,
// 1 on failure, 2 on usage errors.
func run(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			printUsage(env.stderr) // a usage error: on stderr, like every other
			return 2
		}
		printUsage(env.stdout)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.stderr, "pinroll: unknown command %q; run pinroll --help for the list.\n", args[0])
		return 2
	}
	err := cmd.run(ctx, env, args[1:])
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "pinroll %s: %s\nusage: pinroll %s %s\n", args[0], oneLine(err), args[0], cmd.usage)
		return 2
	default:
		fmt.Fprintf(env.stderr, "pinroll %s: %s\n", args[0], oneLine(err))
		return 1
	}
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "pinroll pins Artifact Registry digests into a GitOps repository.")
	fmt.Fprintln(w, "\nUsage: pinroll COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun pinroll COMMAND --help for a command's flags. Every command takes --config.")
}

// flags returns a flag set for a command that prints its help to stdout.
func flags(env *cliEnv, name string) *flag.FlagSet {
	c := commands[name]
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(env.stdout, "%s\n\nUsage: pinroll %s %s\n\nFlags:\n", c.summary, name, c.usage)
		fs.SetOutput(env.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses flags that may come before, between or after the positional
// arguments (`pinroll notify IMAGE@D --tag T`) and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	// The flag package prints the usage on every error; run prints the
	// usage line of a mistake itself, so print the help only when asked.
	help := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = help }()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				help()
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// configFlag adds the --config flag every command takes.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config file (default $PINROLL_CONFIG, else ./pinroll.yaml)")
}
