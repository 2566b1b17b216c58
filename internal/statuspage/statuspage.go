// Package statuspage renders pinroll's status page for people (SPEC §4.3,
// GET /): the environments and their pins, holds, pending and blocked
// promotions, the branches and the recent history. It is server-rendered
// with html/template from embedded files, needs no JavaScript, changes
// nothing (no forms) and reads on a 375 px phone without horizontal
// scrolling.
package statuspage

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
)

//go:embed page.html.tmpl style.css
var files embed.FS

var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"short":      gitops.ShortDigest,
	"shortSHA":   shortSHA,
	"ago":        ago,
	"stamp":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"style":      style,
	"commitLink": func(d Data, sha string) string { return d.commitURL(sha) },
	"lastSquash": lastSquash,
}).ParseFS(files, "page.html.tmpl"))

// Data is what the page shows.
type Data struct {
	Status  engine.Status
	History []engine.HistoryEntry
	// Repo is the config's git.repo: commits link to its web pages when it
	// is a GitHub URL, and are plain text for a local repository.
	Repo string
	// Now is the time the page is rendered at, for "3 min ago".
	Now time.Time
}

// Render writes the page for d.
func Render(w io.Writer, d Data) error {
	if d.Now.IsZero() {
		d.Now = time.Now()
	}
	var b bytes.Buffer // whole or nothing: no half page after an error
	if err := page.Execute(&b, d); err != nil {
		return fmt.Errorf("render status page: %w", err)
	}
	_, err := b.WriteTo(w)
	return err
}

// lastSquash decodes a branch's last squash report; nil when there is none
// or it does not decode.
func lastSquash(raw json.RawMessage) *engine.SquashReport {
	var r engine.SquashReport
	if len(raw) == 0 || json.Unmarshal(raw, &r) != nil {
		return nil
	}
	return &r
}

// commitURL is the web page of commit sha on GitHub (or GitHub Enterprise),
// or "" when the repository is not on the web.
func (d Data) commitURL(sha string) string {
	u, err := url.Parse(d.Repo)
	if err != nil || sha == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSuffix(d.Repo, "/"), ".git") + "/commit/" + url.PathEscape(sha)
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// ago says how long before now t was, for people: "just now", "5 min ago",
// "3 h ago", "2 d ago".
func ago(d Data, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	s := d.Now.Sub(t)
	switch {
	case s < time.Minute:
		return "just now"
	case s < time.Hour:
		return fmt.Sprintf("%d min ago", int(s/time.Minute))
	case s < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(s/time.Hour))
	default:
		return fmt.Sprintf("%d d ago", int(s/(24*time.Hour)))
	}
}

// style is the embedded stylesheet, inlined: one request, same auth.
func style() (template.CSS, error) {
	b, err := files.ReadFile("style.css")
	return template.CSS(b), err //nolint:gosec // our own embedded file
}
