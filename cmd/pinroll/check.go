package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/pinroll/pinroll/internal/app"
	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/kustomize"
	"github.com/pinroll/pinroll/internal/logging"
)

func init() {
	commands["check"] = command{
		summary: "Prove each overlay renders its images at their pins; needs no server.",
		usage:   "[--config F] [--env E] [-o json]",
		run:     check,
	}
}

// apiCounter is a git backend that counts its API calls (GitHub).
type apiCounter interface{ Calls() int64 }

// checkOutput is `pinroll check -o json`: the report, and the API calls it
// cost when the repository is on GitHub.
type checkOutput struct {
	kustomize.Report
	OK       bool   `json:"ok"`
	APICalls *int64 `json:"api_calls,omitempty"`
}

func check(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "check")
	cfgPath := configFlag(fs)
	envName := fs.String("env", "", "check only this environment")
	output := fs.String("o", "", "output format: json for scripts (default: one line per finding)")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if *output != "" && *output != "json" {
		return usageError{fmt.Sprintf("-o %q: the only format is json", *output)}
	}
	cfg, err := config.Load(config.Path(*cfgPath, env.getenv), env.getenv)
	if err != nil {
		return err
	}
	var only []string
	if *envName != "" {
		if _, ok := cfg.EnvironmentByName(*envName); !ok {
			return usageError{fmt.Sprintf("--env %q: no such environment in the config", *envName)}
		}
		only = []string{*envName}
	}
	repo, err := app.OpenRepo(cfg, logging.New(io.Discard, slog.LevelError))
	if err != nil {
		return err
	}
	rep, err := kustomize.Check(ctx, repo, cfg, only...)
	if err != nil {
		return fmt.Errorf("check: %w; check git.repo and its credentials", err)
	}
	out := checkOutput{Report: rep, OK: rep.OK()}
	if c, ok := repo.(apiCounter); ok {
		n := c.Calls()
		out.APICalls = &n
	}
	if *output == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	} else {
		printCheck(env.stdout, cfg, out)
	}
	if !out.OK {
		var bad []string
		for _, e := range rep.Envs {
			if !e.OK {
				bad = append(bad, e.Env)
			}
		}
		return errors.New("problems in " + strings.Join(bad, ", ") + ": fix each as its line says, then run pinroll check again")
	}
	return nil
}

func printCheck(w io.Writer, cfg *config.Config, out checkOutput) {
	commits := map[string]string{}
	for _, e := range out.Envs {
		if e.Commit != "" {
			commits[e.Branch] = e.Commit
		}
	}
	var at []string
	for b, c := range commits {
		at = append(at, b+" at "+shortSHA(c))
	}
	sort.Strings(at)
	cost := fmt.Sprintf("%d read(s)", out.Reads)
	if out.APICalls != nil {
		cost += fmt.Sprintf(", %d GitHub API call(s)", *out.APICalls)
	}
	fmt.Fprintf(w, "pinroll check: %d environment(s) of %s, %s (%s)\n", len(out.Envs), cfg.Git.Repo, strings.Join(at, ", "), cost)
	for _, l := range out.Lines() {
		fmt.Fprintln(w, l)
	}
}

// printChecks lists the problems of the overlay checks the server ran at
// start-up (`pinroll status`); nothing when every overlay passed.
func printChecks(w io.Writer, envs []engine.EnvStatus) {
	var lines []string
	for _, e := range envs {
		if e.Check == nil || e.Check.OK {
			continue
		}
		for _, p := range e.Check.Problems {
			lines = append(lines, "  "+e.Name+": "+p)
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nOverlay check (at start-up; run pinroll check for the current state):")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
