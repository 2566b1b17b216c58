// Package config loads pinroll's YAML configuration (SPEC §3) and the secrets
// that come from the environment. It is read once at start-up and validated,
// failing fast with the offending key and line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is pinroll's configuration file.
type Config struct {
	Git          Git           `yaml:"git"`
	Ledger       string        `yaml:"ledger"`
	Images       []Image       `yaml:"images"`
	Environments []Environment `yaml:"environments"`
	Squash       Squash        `yaml:"squash"`
	Events       Events        `yaml:"events"`

	// Secrets come from the environment, never from the file.
	Secrets Secrets `yaml:"-"`
}

// Git says which GitOps repository and branch pinroll writes, and as whom.
type Git struct {
	Repo   string `yaml:"repo"`
	Branch string `yaml:"branch"`
	Author Author `yaml:"author"`
	APIURL string `yaml:"api_url"`
	// MinInterval is the least time between two ref moves of a branch by
	// deliveries grouped into one commit: it folds a burst into few moves
	// and leaves humans room to push (default [DefaultMinIntervalLocal], or
	// [DefaultMinIntervalGitHub] for an http(s) repository).
	MinInterval Duration `yaml:"min_interval"`
}

// Defaults of git.min_interval.
//
// On GitHub a ref move costs three content-generating requests (CreateTree,
// CreateCommit, updateRefs), and GitHub allows 80 of those a minute and 500
// an hour per account. 4 s between moves is 45 a minute: under the 48 a
// minute the github backend paces itself to (60% of 80, the rest left to
// people's web edits and other tools on the same account), so a sustained
// stream of pins is held to one move per 4 s by this interval alone, never
// by a write waiting in the pacer (2 s, 90 a minute, was over GitHub's
// limit). No interval short of 22 s keeps the hour's 500: the backend's
// pacer does, spreading moves to one per 36 s once a stream has spent the
// hour's burst (after about 4 minutes of moves every 4 s).
const (
	DefaultMinIntervalLocal  = 500 * time.Millisecond
	DefaultMinIntervalGitHub = 4 * time.Second
)

// Author identifies the bot's own commits.
type Author struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// Image is a kustomize images[].name and the Artifact Registry repository it
// is built into.
type Image struct {
	Name       string `yaml:"name"`
	Repository string `yaml:"repository"`
	Source     string `yaml:"source"`
}

// Environment is an overlay directory pinroll writes, and its trigger.
type Environment struct {
	Name    string   `yaml:"name"`
	Path    string   `yaml:"path"`
	Track   string   `yaml:"track"`
	Release *Release `yaml:"release"`
	Images  []string `yaml:"images"`
	Branch  string   `yaml:"branch"`
	Commit  string   `yaml:"commit"`
}

// Release configures an environment that follows GitHub Releases.
type Release struct {
	Prerelease bool   `yaml:"prerelease"`
	Require    string `yaml:"require"`
}

// Squash configures the weekly squash (SPEC §6.3).
type Squash struct {
	Window  Duration `yaml:"window"`
	Rewrite *bool    `yaml:"rewrite"`
	// KeepBackups is how many backup refs of a branch a squash keeps
	// (default 8).
	KeepBackups int `yaml:"keep_backups"`
}

// DefaultKeepBackups is squash.keep_backups when the file does not set it.
const DefaultKeepBackups = 8

// Events configures the optional pin events topic.
type Events struct {
	Topic string `yaml:"topic"`
}

// Duration is a time.Duration written as in Go ("168h").
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 168h", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// Commit modes of a track environment (SPEC §6.2).
const (
	CommitRolling = "rolling"
	CommitAppend  = "append"
)

// Secrets are the credentials read from the environment (SPEC §3).
type Secrets struct {
	GitHubToken          string
	GitHubAppID          int64
	GitHubInstallationID int64
	GitHubPrivateKey     []byte
	WebhookSecret        string
	OpsToken             string
	OIDCAudience         string
	OIDCInvokers         []string
}

// EnvironmentByName returns the environment called name.
func (c *Config) EnvironmentByName(name string) (*Environment, bool) {
	for i := range c.Environments {
		if c.Environments[i].Name == name {
			return &c.Environments[i], true
		}
	}
	return nil, false
}

// ImageByName returns the image called name.
func (c *Config) ImageByName(name string) (*Image, bool) {
	for i := range c.Images {
		if c.Images[i].Name == name {
			return &c.Images[i], true
		}
	}
	return nil, false
}

// ImageByRepository returns the image built into an Artifact Registry
// repository path.
func (c *Config) ImageByRepository(repo string) (*Image, bool) {
	for i := range c.Images {
		if c.Images[i].Repository == repo {
			return &c.Images[i], true
		}
	}
	return nil, false
}

// Carries reports whether the environment's overlay carries image.
func (e *Environment) Carries(image string) bool {
	if len(e.Images) == 0 {
		return true
	}
	for _, n := range e.Images {
		if n == image {
			return true
		}
	}
	return false
}

// IsRelease reports whether the environment follows releases rather than a tag.
func (e *Environment) IsRelease() bool { return e.Release != nil }

// Rolling reports whether the environment's pins amend the rolling commit.
func (e *Environment) Rolling() bool { return e.Commit != CommitAppend }

// KustomizationNames are the file names kustomize accepts for a
// kustomization, in the order it looks for them.
var KustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Kustomization is the slash-separated path of the environment's
// kustomization.yaml.
func (e *Environment) Kustomization() string {
	return e.Kustomizations()[0]
}

// Kustomizations are the paths the environment's kustomization may have, one
// per name kustomize accepts.
func (e *Environment) Kustomizations() []string {
	dir := strings.TrimSuffix(e.Path, "/") + "/"
	if e.Path == "." || e.Path == "" {
		dir = "" // the repository's root is the overlay
	}
	out := make([]string, len(KustomizationNames))
	for i, n := range KustomizationNames {
		out[i] = dir + n
	}
	return out
}

// Path returns the config file to use: flag, else $PINROLL_CONFIG, else
// ./pinroll.yaml. getenv reads the environment (os.Getenv outside tests), as
// for [Load].
func Path(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if p := getenv("PINROLL_CONFIG"); p != "" {
		return p
	}
	return "pinroll.yaml"
}

// ProjectOf returns PROJECT of a Google Cloud resource name
// projects/PROJECT/COLLECTION/NAME, such as a Pub/Sub topic
// (collection "topics") or subscription ("subscriptions"). The error quotes
// name and says what was wanted.
func ProjectOf(name, collection string) (string, error) {
	p := strings.Split(name, "/")
	if len(p) != 4 || p[0] != "projects" || p[2] != collection || p[1] == "" || p[3] == "" {
		return "", fmt.Errorf("%q: want projects/PROJECT/%s/%s", name, collection, strings.ToUpper(strings.TrimSuffix(collection, "s")))
	}
	return p[1], nil
}

// Load reads and validates the config file at path and the secrets from the
// environment (getenv is os.Getenv outside tests).
func Load(path string, getenv func(string) string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.Secrets, err = loadSecrets(getenv); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// Parse decodes and validates a config document, applying defaults.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config")
		}
		return nil, cleanYAMLError(err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root) // already decoded once; only used for line numbers
	l := lines{&root}
	for i := range c.Environments {
		// `release:` with nothing under it (or only comments) means the
		// defaults, as `release: {}` does.
		if c.Environments[i].Release == nil && l.has(fmt.Sprintf("environments[%d].release", i)) {
			c.Environments[i].Release = &Release{}
		}
	}
	c.defaults()
	if err := c.validate(l); err != nil {
		return nil, err
	}
	return &c, nil
}

var fieldNotFound = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// cleanYAMLError turns yaml.v3's Go-flavoured messages into ones about keys.
func cleanYAMLError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = fieldNotFound.ReplaceAllString(msg, "line $1: unknown key $2")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return errors.New(msg)
}

func (c *Config) defaults() {
	if c.Git.Branch == "" {
		c.Git.Branch = "main"
	}
	if c.Git.Author.Name == "" {
		c.Git.Author.Name = "pinroll"
	}
	if c.Git.Author.Email == "" {
		c.Git.Author.Email = "pinroll@users.noreply.github.com"
	}
	if c.Git.MinInterval.Duration == 0 {
		c.Git.MinInterval.Duration = DefaultMinIntervalLocal
		if strings.HasPrefix(c.Git.Repo, "https://") || strings.HasPrefix(c.Git.Repo, "http://") {
			c.Git.MinInterval.Duration = DefaultMinIntervalGitHub
		}
	}
	if c.Ledger == "" {
		c.Ledger = "bolt://.pinroll/ledger.db"
	}
	if c.Squash.Window.Duration == 0 {
		c.Squash.Window.Duration = 168 * time.Hour
	}
	if c.Squash.KeepBackups == 0 {
		c.Squash.KeepBackups = DefaultKeepBackups
	}
	if c.Squash.Rewrite == nil {
		t := true
		c.Squash.Rewrite = &t
	}
	for i := range c.Environments {
		e := &c.Environments[i]
		if e.Branch == "" {
			e.Branch = c.Git.Branch
		}
		if e.Commit == "" {
			e.Commit = CommitRolling
		}
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)

func (c *Config) validate(l lines) error {
	if c.Git.Repo == "" {
		return l.errf("git.repo", "git.repo is required (a GitHub URL, a local path or a file:// URL)")
	}
	if u, err := url.Parse(c.Git.Repo); err == nil && u.User != nil {
		// Never echo the value: it holds a secret.
		return l.errf("git.repo", "git.repo must not carry credentials: set PINROLL_GITHUB_TOKEN or the GitHub App variables instead")
	}
	if c.Git.MinInterval.Duration < 0 {
		return l.errf("git.min_interval", "git.min_interval %s: want a positive duration (unset means the default)", c.Git.MinInterval.Duration)
	}
	scheme, target, _ := strings.Cut(c.Ledger, "://")
	if (scheme != "bolt" && scheme != "firestore") || strings.Trim(target, "/") == "" {
		return l.errf("ledger", "ledger %q: want bolt://PATH or firestore://PROJECT[/DATABASE]", c.Ledger)
	}
	if t := c.Events.Topic; t != "" {
		if _, err := ProjectOf(t, "topics"); err != nil {
			return l.errf("events.topic", "events.topic %v", err)
		}
	}
	if c.Squash.Window.Duration < 0 {
		return l.errf("squash.window", "squash.window %s: want a positive duration such as 168h", c.Squash.Window.Duration)
	}
	if c.Squash.KeepBackups < 0 {
		return l.errf("squash.keep_backups", "squash.keep_backups %d: want at least 1", c.Squash.KeepBackups)
	}
	if len(c.Images) == 0 {
		return l.errf("images", "images: at least one image is required")
	}
	seen := map[string]bool{}
	repos := map[string]bool{}
	for i, im := range c.Images {
		key := fmt.Sprintf("images[%d]", i)
		switch {
		case im.Name == "":
			return l.errf(key, "%s.name is required", key)
		case seen[im.Name]:
			return l.errf(key+".name", "%s.name: duplicate image name %q", key, im.Name)
		case im.Repository == "":
			return l.errf(key, "%s.repository is required for image %q", key, im.Name)
		case strings.Contains(im.Repository, "://"):
			return l.errf(key+".repository", "%s.repository %q: write the registry path without a scheme, e.g. asia-northeast2-docker.pkg.dev/PROJECT/REPO/IMAGE", key, im.Repository)
		case strings.ContainsAny(im.Repository, "@") || strings.Contains(im.Repository[strings.LastIndex(im.Repository, "/")+1:], ":"):
			return l.errf(key+".repository", "%s.repository %q must not carry a tag or digest", key, im.Repository)
		case repos[im.Repository]:
			return l.errf(key+".repository", "%s.repository: %q is already used by another image", key, im.Repository)
		case im.Source != "" && strings.Count(im.Source, "/") != 1:
			return l.errf(key+".source", "%s.source %q: want OWNER/REPO", key, im.Source)
		}
		seen[im.Name], repos[im.Repository] = true, true
	}
	if len(c.Environments) == 0 {
		return l.errf("environments", "environments: at least one environment is required")
	}
	envs := map[string]bool{}
	for i := range c.Environments {
		e := &c.Environments[i]
		key := fmt.Sprintf("environments[%d]", i)
		if e.Path != "" && !strings.HasPrefix(e.Path, "/") {
			e.Path = path.Clean(e.Path) // ./a/b/ and a/b are the same overlay
		}
		switch {
		case e.Name == "":
			return l.errf(key, "%s.name is required", key)
		case !nameRE.MatchString(e.Name):
			return l.errf(key+".name", "%s.name %q: use lowercase letters, digits, '.', '_' or '-'", key, e.Name)
		case envs[e.Name]:
			return l.errf(key+".name", "%s.name: duplicate environment name %q", key, e.Name)
		case e.Path == "":
			return l.errf(key, "%s.path is required for environment %q", key, e.Name)
		case strings.HasPrefix(e.Path, "/") || e.Path == ".." || strings.HasPrefix(e.Path, "../"):
			return l.errf(key+".path", "%s.path %q must be relative to the repository root", key, e.Path)
		case e.Track == "" && e.Release == nil:
			return l.errf(key, "%s: environment %q needs a trigger: track: TAG or release: {}", key, e.Name)
		case e.Track != "" && e.Release != nil:
			return l.errf(key, "%s: environment %q has both track and release; choose one", key, e.Name)
		case e.Commit != CommitRolling && e.Commit != CommitAppend:
			return l.errf(key+".commit", "%s.commit %q: want rolling or append", key, e.Commit)
		}
		for j, n := range e.Images {
			if !seen[n] {
				return l.errf(fmt.Sprintf("%s.images[%d]", key, j), "%s.images: unknown image %q", key, n)
			}
		}
		envs[e.Name] = true
	}
	for i, e := range c.Environments {
		if e.Release != nil && e.Release.Require != "" {
			key := fmt.Sprintf("environments[%d].release.require", i)
			if !envs[e.Release.Require] {
				return l.errf(key, "%s: unknown environment %q", key, e.Release.Require)
			}
			if req, _ := c.EnvironmentByName(e.Release.Require); req.IsRelease() {
				// Only a track environment's pins re-check blocked promotions.
				return l.errf(key, "%s: %q must name a track environment (one with track: TAG)", key, e.Release.Require)
			}
		}
		for j := range i {
			o := c.Environments[j]
			if o.Path != e.Path || o.Branch != e.Branch || o.IsRelease() == e.IsRelease() {
				continue
			}
			for _, im := range c.Images {
				if o.Carries(im.Name) && e.Carries(im.Name) {
					key := fmt.Sprintf("environments[%d].path", i)
					return l.errf(key, "%s: environments %q and %q both pin %s in %s, one by tag and one by release: give each its own overlay", key, o.Name, e.Name, im.Name, e.Path)
				}
			}
		}
	}
	return nil
}

// lines finds the line of a dotted key path in the parsed document.
type lines struct{ root *yaml.Node }

func (l lines) errf(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if n := l.find(path); n > 0 {
		return fmt.Errorf("line %d: %s", n, msg)
	}
	return errors.New(msg)
}

var indexRE = regexp.MustCompile(`^(\w+)\[(\d+)\]$`)

func (l lines) find(path string) int {
	n := l.root
	if n == nil || len(n.Content) == 0 {
		return 0
	}
	n = n.Content[0]
	line := 0
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if m := indexRE.FindStringSubmatch(part); m != nil {
			key = m[1]
			idx, _ = strconv.Atoi(m[2])
		}
		v, kline := mapValue(n, key)
		if v == nil {
			return line
		}
		line, n = kline, v
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// has reports whether the dotted key path is present in the document.
func (l lines) has(path string) bool {
	n := l.root
	if n == nil || len(n.Content) == 0 {
		return false
	}
	n = n.Content[0]
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if m := indexRE.FindStringSubmatch(part); m != nil {
			key = m[1]
			idx, _ = strconv.Atoi(m[2])
		}
		if n, _ = mapValue(n, key); n == nil {
			return false
		}
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return false
			}
			n = n.Content[idx]
		}
	}
	return true
}

func mapValue(n *yaml.Node, key string) (*yaml.Node, int) {
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}

func loadSecrets(getenv func(string) string) (Secrets, error) {
	s := Secrets{
		GitHubToken:   getenv("PINROLL_GITHUB_TOKEN"),
		WebhookSecret: getenv("PINROLL_WEBHOOK_SECRET"),
		OpsToken:      getenv("PINROLL_OPS_TOKEN"),
		OIDCAudience:  getenv("PINROLL_OIDC_AUDIENCE"),
	}
	for _, e := range strings.Split(getenv("PINROLL_OIDC_INVOKERS"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			s.OIDCInvokers = append(s.OIDCInvokers, e)
		}
	}
	var err error
	if v := getenv("PINROLL_GITHUB_APP_ID"); v != "" {
		if s.GitHubAppID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return s, errors.New("PINROLL_GITHUB_APP_ID is not a number")
		}
	}
	if v := getenv("PINROLL_GITHUB_APP_INSTALLATION_ID"); v != "" {
		if s.GitHubInstallationID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return s, errors.New("PINROLL_GITHUB_APP_INSTALLATION_ID is not a number")
		}
	}
	if v := getenv("PINROLL_GITHUB_APP_PRIVATE_KEY"); v != "" {
		s.GitHubPrivateKey = []byte(v)
	} else if f := getenv("PINROLL_GITHUB_APP_PRIVATE_KEY_FILE"); f != "" {
		if s.GitHubPrivateKey, err = os.ReadFile(f); err != nil {
			// The path is not secret; the content is never echoed.
			return s, fmt.Errorf("PINROLL_GITHUB_APP_PRIVATE_KEY_FILE: %w", err)
		}
	}
	return s, nil
}
