// Package github is the GitHub backend of [gitops.Repo] (SPEC §6.5).
//
// Reads are one GraphQL query: the branch tip's oid, message, author,
// parents and tree, and the text of every requested file at that commit
// (https://docs.github.com/graphql/reference/objects#commit, field file).
// Writes use go-github's Git Data API: one CreateTree with the file contents
// inline on a base_tree, one CreateCommit
// (https://docs.github.com/rest/git/trees#create-a-tree,
// https://docs.github.com/rest/git/commits#create-a-commit). The branch moves
// with the GraphQL updateRefs mutation, whose beforeOid makes it a
// compare-and-swap and whose force flag allows the rolling commit's amend
// (https://docs.github.com/graphql/reference/mutations#updaterefs).
//
// So a pin that changes something costs 4 API calls (read, tree, commit,
// move), 3 when [gitops.Writer] remembers the tip it wrote last (it skips the
// read; see [Repo.WriteCommitTree]), and one that changes nothing costs 1. A
// lost race costs no more than the refused move: STALE_DATA needs no check
// query, so the next attempt's read is the only re-read. Only unusual content costs
// more: a binary or very large file read needs one REST blob call each, a
// written file that is not valid UTF-8 one blob call each.
//
// Content-creating requests (every attempt of a tree, commit or blob write
// and of the updateRefs mutation) are paced under GitHub's secondary limits
// of 80 a minute and 500 an hour ([SecondaryLimits]), so that pinroll does
// not trip them; see [Options.WritesPerMinute].
//
// Every call honours Retry-After and X-RateLimit-* (waiting when the wait
// fits the context deadline, else failing with [ErrRateLimited]), retries
// 5xx answers with backoff ([ErrTransient] when they persist), and errors
// carry GitHub's X-GitHub-Request-Id. Credentials never appear in URLs, log
// lines or error messages.
package github

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v62/github"

	"github.com/pinroll/pinroll/internal/gitops"
)

// Options configures [New].
type Options struct {
	// Repo is the repository's web URL: https://github.com/OWNER/REPO, or
	// the same on a GitHub Enterprise host. "OWNER/REPO" alone means
	// github.com.
	Repo string
	// APIURL is the REST API base URL. Empty means https://api.github.com
	// for github.com, and https://HOST/api/v3 for any other Repo host.
	// GraphQL is then at https://HOST/api/graphql when APIURL ends in
	// /api/v3, else at APIURL + "/graphql".
	APIURL string
	// Token is a personal access token (PINROLL_GITHUB_TOKEN). Set either it
	// or all three App fields.
	Token string
	// AppID is the GitHub App's ID (PINROLL_GITHUB_APP_ID).
	AppID int64
	// InstallationID is the App's installation on the repository's owner
	// (PINROLL_GITHUB_APP_INSTALLATION_ID).
	InstallationID int64
	// PrivateKey is the App's PEM private key
	// (PINROLL_GITHUB_APP_PRIVATE_KEY or the file PINROLL_GITHUB_APP_PRIVATE_KEY_FILE).
	PrivateKey []byte
	// HTTPClient, when set, provides the base transport (its Transport,
	// Jar and Timeout); credentials are added on top of it.
	HTTPClient *http.Client
	// Logger receives retries and rate-limit waits (Warn) and one line per
	// call (Debug). Nil discards them.
	Logger *slog.Logger
	// MaxWait caps a single rate-limit wait; default one minute. A longer
	// wait fails the call with [ErrRateLimited] at once.
	MaxWait time.Duration
	// WritesPerMinute paces content-creating requests (CreateTree,
	// CreateCommit, CreateBlob, the updateRefs mutation) under GitHub's
	// secondary limits: 0 means GitHub's (80 a minute and 500 an hour, or
	// WriteLimits), a positive number replaces the minute's 80, a negative
	// number does not pace at all (tests, benchmarks).
	WritesPerMinute int
	// WriteLimits replaces GitHub's [SecondaryLimits] as the limits writes
	// are paced under, e.g. for a test against a fake GitHub with smaller
	// windows. Empty means GitHub's.
	WriteLimits []WriteLimit
}

// Repo is a GitHub repository as a [gitops.Repo]. It is safe for concurrent
// use.
type Repo struct {
	owner, name string
	rest        *gh.Client
	http        *http.Client
	graphqlURL  string
	lim         *limiter
	log         *slog.Logger
	secrets     []string

	mu     sync.Mutex
	repoID string            // GraphQL node ID, cached from the first query
	sent   map[string]string // by ref: the commit MoveBranch last sent it to
}

var _ gitops.Repo = (*Repo)(nil)

// Environment variable names, for error messages.
const (
	envToken          = "PINROLL_GITHUB_TOKEN"
	envAppID          = "PINROLL_GITHUB_APP_ID"
	envInstallationID = "PINROLL_GITHUB_APP_INSTALLATION_ID"
	envPrivateKey     = "PINROLL_GITHUB_APP_PRIVATE_KEY (or PINROLL_GITHUB_APP_PRIVATE_KEY_FILE)"
)

// New returns the backend for o.Repo. It checks the options without calling
// GitHub: exactly one of a token or complete App credentials, a parsable
// private key, and URLs it can use.
func New(o Options) (*Repo, error) {
	owner, name, host, err := parseRepo(o.Repo)
	if err != nil {
		return nil, fmt.Errorf("github: repository %q: %w", o.Repo, err)
	}
	apiURL, gqlURL, err := endpoints(o.APIURL, host)
	if err != nil {
		return nil, fmt.Errorf("github: API URL %q: %w", o.APIURL, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("github_repo", owner+"/"+name)

	base := http.DefaultTransport
	var jar http.CookieJar
	var timeout time.Duration
	if o.HTTPClient != nil {
		if o.HTTPClient.Transport != nil {
			base = o.HTTPClient.Transport
		}
		jar, timeout = o.HTTPClient.Jar, o.HTTPClient.Timeout
	} else if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t = t.Clone()
		t.ResponseHeaderTimeout = 30 * time.Second
		base = t
	}

	auth, secrets, err := credentials(o, base, apiURL)
	if err != nil {
		return nil, err
	}
	lim := newLimiter(auth, log, o.MaxWait)
	lim.secrets = secrets
	lim.pace = newPacer(o.WritesPerMinute, o.WriteLimits)
	client := &http.Client{
		Transport: lim,
		Jar:       jar,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
				return fmt.Errorf("refusing redirect to another host (%s)", req.URL.Host)
			}
			return nil
		},
	}
	rest := gh.NewClient(client)
	rest.BaseURL = apiURL
	rest.UserAgent = "pinroll"
	return &Repo{
		owner: owner, name: name,
		rest: rest, http: client, graphqlURL: gqlURL,
		lim: lim, log: log, secrets: secrets,
	}, nil
}

// Calls returns how many HTTP calls to the GitHub API this Repo has made,
// retries included (GitHub App token exchanges are not counted).
func (r *Repo) Calls() int64 { return r.lim.calls.Load() }

// String names the repository.
func (r *Repo) String() string { return r.owner + "/" + r.name }

// credentials builds the authenticating transport and lists the secrets to
// keep out of error messages.
func credentials(o Options, base http.RoundTripper, apiURL *url.URL) (http.RoundTripper, []string, error) {
	token := strings.TrimSpace(o.Token)
	anyApp := o.AppID != 0 || o.InstallationID != 0 || len(o.PrivateKey) > 0
	switch {
	case token != "" && anyApp:
		return nil, nil, fmt.Errorf("github: both %s and GitHub App credentials are set; set only one", envToken)
	case token != "":
		if strings.ContainsAny(token, " \t\r\n") {
			return nil, nil, fmt.Errorf("github: %s contains whitespace", envToken)
		}
		return &bearer{next: base, token: token, host: apiURL.Host}, []string{token}, nil
	case !anyApp:
		return nil, nil, fmt.Errorf("github: no credentials: set %s, or %s, %s and %s", envToken, envAppID, envInstallationID, envPrivateKey)
	}
	var missing []string
	if o.AppID == 0 {
		missing = append(missing, envAppID)
	}
	if o.InstallationID == 0 {
		missing = append(missing, envInstallationID)
	}
	if len(strings.TrimSpace(string(o.PrivateKey))) == 0 {
		missing = append(missing, envPrivateKey)
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("github: incomplete GitHub App credentials: missing %s", strings.Join(missing, ", "))
	}
	if o.AppID < 0 || o.InstallationID < 0 {
		return nil, nil, fmt.Errorf("github: %s and %s must be positive", envAppID, envInstallationID)
	}
	if err := checkKey(o.PrivateKey); err != nil {
		return nil, nil, fmt.Errorf("github: %s: %w", envPrivateKey, err)
	}
	itr, err := ghinstallation.New(base, o.AppID, o.InstallationID, o.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("github: %s is not a usable RSA private key", envPrivateKey)
	}
	itr.BaseURL = strings.TrimSuffix(apiURL.String(), "/")
	return itr, keySecrets(o.PrivateKey), nil
}

// checkKey says what is wrong with a private key without echoing any of it.
func checkKey(key []byte) error {
	block, _ := pem.Decode(key)
	if block == nil {
		return errors.New("not PEM (expected -----BEGIN RSA PRIVATE KEY-----, as GitHub hands it out)")
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("PEM block %q is not an RSA private key", block.Type)
	}
	if _, ok := k.(*rsa.PrivateKey); !ok {
		return errors.New("not an RSA private key")
	}
	return nil
}

// keySecrets lists the lines of a PEM key's body, so that a message quoting
// any of them is redacted.
func keySecrets(key []byte) []string {
	var out []string
	for _, l := range strings.Split(string(key), "\n") {
		l = strings.TrimSpace(l)
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// parseRepo reads OWNER and REPO from a web URL or "OWNER/REPO".
func parseRepo(s string) (owner, name, host string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", "", errors.New("empty; want https://github.com/OWNER/REPO")
	}
	host = "github.com"
	p := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", "", "", errors.New("not a URL; want https://github.com/OWNER/REPO")
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			return "", "", "", fmt.Errorf("scheme %q; want https://HOST/OWNER/REPO", u.Scheme)
		}
		if u.User != nil {
			return "", "", "", errors.New("credentials in the URL; put them in the environment instead")
		}
		host, p = u.Host, u.Path
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	parts := strings.Split(p, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", "", errors.New("want https://HOST/OWNER/REPO")
	}
	for _, part := range parts {
		if strings.ContainsAny(part, " ?#%\\") || part == "." || part == ".." {
			return "", "", "", fmt.Errorf("%q is not a valid owner or repository name", part)
		}
	}
	return parts[0], parts[1], host, nil
}

// endpoints returns the REST base URL (with a trailing slash, as go-github
// wants) and the GraphQL URL.
func endpoints(apiURL, repoHost string) (*url.URL, string, error) {
	if apiURL == "" {
		h := strings.ToLower(repoHost)
		if h == "github.com" || h == "www.github.com" {
			apiURL = "https://api.github.com"
		} else {
			apiURL = "https://" + repoHost + "/api/v3"
		}
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, "", errors.New("want an http(s) URL such as https://ghe.example.com/api/v3")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, "", errors.New("want a plain base URL, without credentials, query or fragment")
	}
	path := strings.TrimSuffix(u.Path, "/")
	g := *u
	if rest, ok := strings.CutSuffix(path, "/api/v3"); ok {
		g.Path = rest + "/api/graphql"
	} else {
		g.Path = path + "/graphql"
	}
	u.Path = path + "/"
	return u, g.String(), nil
}
