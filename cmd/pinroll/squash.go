package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
)

func init() {
	commands["squash"] = command{
		summary: "Fold the bot's pin commits now, as the weekly squash does (one report per branch).",
		usage:   "[--env E] [--dry-run] [-o table|json] [--server URL]",
		run:     squash,
	}
}

// squashBody is the body of POST /squash.
type squashBody struct {
	Env    string `json:"env,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
}

func squash(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "squash")
	c := addClientFlags(env, fs)
	envName := fs.String("env", "", "only the branch of this environment (default: every branch with a track or append environment)")
	dryRun := fs.Bool("dry-run", false, "report what the squash would do; write and move nothing")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	body, err := c.send(ctx, env, http.MethodPost, "/squash", squashBody{Env: *envName, DryRun: *dryRun})
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return printJSON(env.stdout, body)
	}
	var ans struct {
		Reports []engine.SquashReport `json:"reports"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("decode squash reports: %w", err)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BRANCH\tOUTCOME\tFOLDED\tREPLAYED\tTIP\tBACKUP\tREASON")
	for _, r := range ans.Reports {
		outcome := string(r.Outcome)
		if r.DryRun {
			outcome += " (dry run)"
		}
		tip := dash(shortSHA(r.OldTip))
		if r.NewTip != "" {
			tip += "→" + shortSHA(r.NewTip)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Branch, outcome, r.Folded, r.Replayed, tip, dash(r.BackupRef), dash(r.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range ans.Reports {
		if r.Outcome == gitops.SquashSquashed && r.BackupRef != "" {
			fmt.Fprintf(env.stdout, "\nUndo %s: git push --force origin %s:%s\n", r.Branch, r.BackupRef, r.Branch)
		}
	}
	return nil
}
