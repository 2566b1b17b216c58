package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
)

func init() {
	commands["status"] = command{
		summary: "Show what every environment runs: pins, holds, pending promotions and each branch's tip and last squash.",
		usage:   "[-o table|json] [--server URL]",
		run:     status,
	}
	commands["history"] = command{
		summary: "Show the pins made, newest first, a page at a time.",
		usage:   "[--env E] [--image I] [--limit N] [--before CURSOR] [-o table|json] [--server URL]",
		run:     history,
	}
	commands["deploy"] = command{
		summary: "Pin a digest by hand (by digest, tag or rollback), optionally holding automatic updates.",
		usage:   "ENV IMAGE (--digest D | --tag T | --rollback N) [--hold] [--reason R] [-o table|json] [--server URL]",
		run:     deploy,
	}
	commands["resume"] = command{
		summary: "Lift the hold of ENV IMAGE: it catches up with its tag or newest release at once.",
		usage:   "ENV IMAGE [-o table|json] [--server URL]",
		run:     resume,
	}
	commands["version"] = command{
		summary: "Print pinroll's version.",
		usage:   "",
		run:     printVersion,
	}
}

// version is set at build time (-ldflags "-X main.version=v1.2.3"); else the
// module version the binary was built from, or "devel".
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func printVersion(_ context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "version")
	configFlag(fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	fmt.Fprintln(env.stdout, "pinroll", versionString())
	return nil
}

// clientFlags are the flags of every ops client command.
type clientFlags struct {
	server *string
	output *string
}

func addClientFlags(env *cliEnv, fs interface {
	String(name, value, usage string) *string
}) clientFlags {
	fs.String("config", "", "config file (client commands need none; accepted everywhere)")
	return clientFlags{
		server: serverFlag(env, fs),
		output: fs.String("o", "table", "output: table for people, json for scripts (the server's answer)"),
	}
}

// send sends a request for a client command and returns the answer's body.
func (c clientFlags) send(ctx context.Context, env *cliEnv, method, path string, body any) ([]byte, error) {
	if *c.output != "table" && *c.output != "json" {
		return nil, usageError{fmt.Sprintf("-o %q: want table or json", *c.output)}
	}
	server, err := serverURL(*c.server)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		r = bytes.NewReader(b)
	}
	return call(ctx, env, server, method, path, r)
}

// printJSON writes the server's answer as it came, indented.
func printJSON(w io.Writer, body []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := b.WriteTo(w)
	return err
}

func status(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "status")
	c := addClientFlags(env, fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	body, err := c.send(ctx, env, http.MethodGet, "/status", nil)
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return printJSON(env.stdout, body)
	}
	var st engine.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENV\tIMAGE\tDIGEST\tTAG\tCOMMIT\tAGE\tHELD")
	for _, e := range st.Environments {
		if len(e.Pins) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\n", e.Name)
		}
		for _, p := range e.Pins {
			held := "-"
			if p.Held {
				held = "held"
				if p.Hold != nil && p.Hold.Reason != "" {
					held += ": " + p.Hold.Reason
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, p.Image, dash(gitops.ShortDigest(p.Digest)), dash(p.Tag),
				dash(shortSHA(p.Commit)), dash(age(now, p.Time)), held)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printChecks(env.stdout, st.Environments)
	if len(st.Promotions) > 0 {
		fmt.Fprintln(env.stdout, "\nPromotions:")
		for _, p := range st.Promotions {
			line := fmt.Sprintf("  %s/%s %s %s", p.Env, p.Image, p.Tag, p.State)
			if p.Reason != "" {
				line += ": " + p.Reason
			}
			fmt.Fprintln(env.stdout, line)
		}
	}
	printBranches(env.stdout, now, st.Branches)
	return nil
}

// printBranches lists the branches with their tips and last squash.
func printBranches(w io.Writer, now time.Time, branches []engine.BranchStatus) {
	if len(branches) == 0 {
		return
	}
	fmt.Fprintln(w, "\nBranches:")
	for _, b := range branches {
		line := fmt.Sprintf("  %s at %s", b.Name, shortSHA(b.Tip))
		var sq engine.SquashReport
		if len(b.LastSquash) > 0 && json.Unmarshal(b.LastSquash, &sq) == nil {
			line += fmt.Sprintf("; last squash %s ago: %s", age(now, sq.Time), sq.Outcome)
			if sq.NewTip != "" {
				line += fmt.Sprintf(" (%d folded, %d replayed)", sq.Folded, sq.Replayed)
			}
			if sq.Reason != "" {
				line += ": " + sq.Reason
			}
		}
		fmt.Fprintln(w, line)
	}
}

func history(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "history")
	c := addClientFlags(env, fs)
	envName := fs.String("env", "", "only this environment")
	image := fs.String("image", "", "only this image")
	limit := fs.Int("limit", 0, "entries per page (default 50, at most 500)")
	before := fs.String("before", "", "the cursor a previous page printed, for the next page")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	q := url.Values{}
	for k, v := range map[string]string{"env": *envName, "image": *image, "before": *before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	path := "/history"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := c.send(ctx, env, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if *c.output == "json" {
		return printJSON(env.stdout, body)
	}
	var page engine.HistoryPage
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("decode history: %w", err)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGE\tENV\tIMAGE\tDIGEST\tTAG\tCOMMIT\tCAUSE")
	for _, h := range page.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(age(now, h.Time)), dash(h.Env), dash(h.Image), dash(gitops.ShortDigest(h.Digest)),
			dash(h.Tag), dash(shortSHA(h.Commit)), h.Cause)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(env.stdout, "\nMore: pinroll history --before %s", page.Next)
		lim := ""
		if *limit != 0 {
			lim = strconv.Itoa(*limit)
		}
		for _, f := range []struct{ name, v string }{{"env", *envName}, {"image", *image}, {"limit", lim}} {
			if f.v != "" {
				fmt.Fprintf(env.stdout, " --%s %s", f.name, f.v)
			}
		}
		fmt.Fprintln(env.stdout)
	}
	return nil
}

// deployBody is the body of POST /deploy.
type deployBody struct {
	Env      string `json:"env"`
	Image    string `json:"image"`
	Digest   string `json:"digest,omitempty"`
	Tag      string `json:"tag,omitempty"`
	Rollback int    `json:"rollback,omitempty"`
	Hold     bool   `json:"hold,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

func deploy(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "deploy")
	c := addClientFlags(env, fs)
	digest := fs.String("digest", "", "pin this digest (sha256:…)")
	tag := fs.String("tag", "", "pin the digest this tag names")
	rollback := fs.Int("rollback", 0, "pin the N-th previous distinct digest (1 = the one before the current)")
	hold := fs.Bool("hold", false, "hold automatic updates of ENV IMAGE until pinroll resume lifts it")
	reason := fs.String("reason", "", "why, for the commit and the hold")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"want ENV and IMAGE"}
	}
	n := 0
	for _, set := range []bool{*digest != "", *tag != "", *rollback != 0} {
		if set {
			n++
		}
	}
	if n != 1 || *rollback < 0 {
		return usageError{"give exactly one of --digest D, --tag T or --rollback N (N ≥ 1)"}
	}
	body, err := c.send(ctx, env, http.MethodPost, "/deploy", deployBody{Env: pos[0], Image: pos[1], Digest: *digest, Tag: *tag,
		Rollback: *rollback, Hold: *hold, Reason: *reason})
	if err != nil {
		return err
	}
	return printOps(env, *c.output, body)
}

func resume(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "resume")
	c := addClientFlags(env, fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"want ENV and IMAGE"}
	}
	body, err := c.send(ctx, env, http.MethodPost, "/resume", map[string]string{"env": pos[0], "image": pos[1]})
	if err != nil {
		return err
	}
	return printOps(env, *c.output, body)
}

// printOps prints the answer of a deploy or resume: one line for people.
func printOps(env *cliEnv, output string, body []byte) error {
	if output == "json" {
		return printJSON(env.stdout, body)
	}
	var r engine.OpsResult
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	line := fmt.Sprintf("%s %s/%s", r.Outcome, r.Env, r.Image)
	if r.Digest != "" {
		line += " " + gitops.ShortDigest(r.Digest)
	}
	if r.Tag != "" {
		line += " (" + r.Tag + ")"
	}
	if r.Commit != "" {
		line += " at " + shortSHA(r.Commit)
	}
	if r.Held {
		line += "; automatic updates held until `pinroll resume " + r.Env + " " + r.Image + "`"
	}
	if r.Reason != "" {
		line += "; " + r.Reason
	}
	fmt.Fprintln(env.stdout, line)
	return nil
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age says how long before now t was: "40s", "5m", "3h", "2d".
func age(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}
