package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const valid = `git:
  repo: https://github.com/acme/cloud-provisioning
  branch: main
  author: {name: pinroll, email: pinroll@example.com}
ledger: bolt://.pinroll/ledger.db
images:
  - name: server
    repository: asia-northeast2-docker.pkg.dev/PROJECT/backend/server
    source: acme/backend
environments:
  - name: dev
    path: k8s/namespaces/backend/overlays/dev
    track: latest
  - name: prod
    path: k8s/namespaces/backend/overlays/prod
    release:
      prerelease: false
      require: dev
squash:
  window: 168h
  rewrite: true
events:
  topic: projects/PROJECT/topics/pinroll-events
`

func TestParseValid(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	dev, ok := c.EnvironmentByName("dev")
	if !ok || dev.Track != "latest" || dev.Branch != "main" || !dev.Rolling() || dev.IsRelease() {
		t.Fatalf("dev = %+v", dev)
	}
	if dev.Kustomization() != "k8s/namespaces/backend/overlays/dev/kustomization.yaml" {
		t.Fatalf("kustomization path = %s", dev.Kustomization())
	}
	prod, _ := c.EnvironmentByName("prod")
	if !prod.IsRelease() || prod.Release.Require != "dev" {
		t.Fatalf("prod = %+v", prod)
	}
	if c.Squash.Window.Duration != 168*time.Hour || !*c.Squash.Rewrite || c.Squash.KeepBackups != DefaultKeepBackups {
		t.Fatalf("squash = %+v", c.Squash)
	}
	if im, ok := c.ImageByRepository("asia-northeast2-docker.pkg.dev/PROJECT/backend/server"); !ok || im.Source != "acme/backend" {
		t.Fatalf("image by repository = %+v", im)
	}
}

func TestPathsAreCleanedAndBareReleaseIsDefault(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`git: {repo: /tmp/x}
images: [{name: a, repository: r.example/p/a}]
environments:
  - {name: dev, path: ./overlays/dev/, track: latest}
  - name: prod
    path: overlays/prod
    release:
      # defaults
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Environments[0].Kustomization(); p != "overlays/dev/kustomization.yaml" {
		t.Fatalf("kustomization path %q", p)
	}
	if !c.Environments[1].IsRelease() || c.Environments[1].Release.Prerelease {
		t.Fatalf("a bare release: is a release environment with defaults: %+v", c.Environments[1])
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`git: {repo: /tmp/x}
images: [{name: a, repository: r.example/p/a}]
environments: [{name: dev, path: o/dev, track: latest}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Git.Branch != "main" || c.Ledger != "bolt://.pinroll/ledger.db" || c.Git.Author.Email == "" || c.Environments[0].Commit != CommitRolling {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestMinIntervalDefaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, git string
		want      time.Duration
	}{
		{"local path", "{repo: /tmp/x}", DefaultMinIntervalLocal},
		{"file URL", "{repo: 'file:///tmp/x'}", DefaultMinIntervalLocal},
		{"GitHub", "{repo: 'https://github.com/acme/gitops'}", DefaultMinIntervalGitHub},
		{"set", "{repo: 'https://github.com/acme/gitops', min_interval: 3s}", 3 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse([]byte("git: " + c.git + `
images: [{name: a, repository: r.example/p/a}]
environments: [{name: dev, path: o/dev, track: latest}]
`))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Git.MinInterval.Duration; got != c.want {
				t.Fatalf("git.min_interval %s, want %s", got, c.want)
			}
		})
	}
}

// TestMinIntervalGitHubKeepsTheWriteLimit: at the default interval, a
// sustained stream's three content writes per ref move stay within the 48 a
// minute the github backend paces to (60% of GitHub's 80), so the interval,
// not the pacer, sets the rhythm.
func TestMinIntervalGitHubKeepsTheWriteLimit(t *testing.T) {
	t.Parallel()
	const writesPerMove, pacedPerMinute = 3, 48
	if got := writesPerMove * float64(time.Minute) / float64(DefaultMinIntervalGitHub); got > pacedPerMinute {
		t.Errorf("%.1f content writes a minute at git.min_interval %s, over %d", got, DefaultMinIntervalGitHub, pacedPerMinute)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(string) string
		want []string // substrings of the error
	}{
		{"unknown top-level key", func(s string) string { return s + "colour: blue\n" }, []string{"line 24", "unknown key colour"}},
		{"unknown nested key", func(s string) string {
			return strings.Replace(s, "    track: latest\n", "    track: latest\n    trak: x\n", 1)
		}, []string{"line 14", "unknown key trak"}},
		{"duplicate image", func(s string) string {
			return strings.Replace(s, "environments:", "  - name: server\n    repository: x.example/p/other\nenvironments:", 1)
		}, []string{"images[1].name", "duplicate image name \"server\"", "line 10"}},
		{"duplicate environment", func(s string) string {
			return strings.Replace(s, "  - name: prod", "  - name: dev", 1)
		}, []string{"environments[1].name", "duplicate environment name \"dev\""}},
		{"track without path", func(s string) string {
			return strings.Replace(s, "    path: k8s/namespaces/backend/overlays/dev\n", "", 1)
		}, []string{"environments[0].path is required", "line 11"}},
		{"image without repository", func(s string) string {
			return strings.Replace(s, "    repository: asia-northeast2-docker.pkg.dev/PROJECT/backend/server\n", "", 1)
		}, []string{"images[0].repository is required", "line 7"}},
		{"repository with tag", func(s string) string {
			return strings.Replace(s, "backend/server\n", "backend/server:latest\n", 1)
		}, []string{"must not carry a tag or digest"}},
		{"negative min_interval", func(s string) string {
			return strings.Replace(s, "  branch: main\n", "  branch: main\n  min_interval: -1s\n", 1)
		}, []string{"line 4", "git.min_interval -1s"}},
		{"no trigger", func(s string) string { return strings.Replace(s, "    track: latest\n", "", 1) }, []string{"needs a trigger"}},
		{"bad commit mode", func(s string) string {
			return strings.Replace(s, "    track: latest\n", "    track: latest\n    commit: squash\n", 1)
		}, []string{"environments[0].commit", "rolling or append"}},
		{"unknown carried image", func(s string) string {
			return strings.Replace(s, "    track: latest\n", "    track: latest\n    images: [frontend]\n", 1)
		}, []string{"unknown image \"frontend\""}},
		{"require unknown env", func(s string) string { return strings.Replace(s, "require: dev", "require: qa", 1) }, []string{"release.require", "unknown environment \"qa\""}},
		{"bad ledger", func(s string) string { return strings.Replace(s, "bolt://", "sqlite://", 1) }, []string{"line 5", "bolt://PATH or firestore://"}},
		{"bad window", func(s string) string { return strings.Replace(s, "168h", "a week", 1) }, []string{"line 20", "not a duration"}},
		{"negative window", func(s string) string { return strings.Replace(s, "168h", "-1h", 1) }, []string{"line 20", "squash.window"}},
		{"negative keep_backups", func(s string) string {
			return strings.Replace(s, "  rewrite: true\n", "  rewrite: true\n  keep_backups: -1\n", 1)
		}, []string{"line 22", "squash.keep_backups"}},
		{"missing repo", func(s string) string {
			return strings.Replace(s, "  repo: https://github.com/acme/cloud-provisioning\n", "", 1)
		}, []string{"git.repo is required"}},
		{"bad source", func(s string) string { return strings.Replace(s, "acme/backend", "backend", 1) }, []string{"images[0].source", "OWNER/REPO"}},
		{"bad events topic", func(s string) string {
			return strings.Replace(s, "projects/PROJECT/topics/pinroll-events", "pinroll-events", 1)
		}, []string{"line 23", "events.topic"}},
		{"credentials in repo", func(s string) string {
			return strings.Replace(s, "https://github.com/", "https://x-access-token:ghp_SECRET@github.com/", 1)
		}, []string{"line 2", "must not carry credentials"}},
		{"repository with scheme", func(s string) string {
			return strings.Replace(s, "repository: asia", "repository: https://asia", 1)
		}, []string{"images[0].repository", "without a scheme"}},
		{"require itself", func(s string) string { return strings.Replace(s, "require: dev", "require: prod", 1) }, []string{"must name a track environment"}},
		{"empty bolt path", func(s string) string { return strings.Replace(s, "bolt://.pinroll/ledger.db", "bolt://", 1) }, []string{"ledger"}},
		{"path escapes the repo", func(s string) string {
			return strings.Replace(s, "path: k8s/namespaces/backend/overlays/dev", "path: ../elsewhere", 1)
		}, []string{"must be relative to the repository root"}},
		{"track and release on one overlay", func(s string) string {
			return strings.Replace(s, "path: k8s/namespaces/backend/overlays/prod", "path: ./k8s/namespaces/backend/overlays/dev/", 1)
		}, []string{"environments[1].path", `"dev" and "prod" both pin server`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(c.edit(valid)))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pinroll.yaml")
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cfg, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"PINROLL_GITHUB_APP_ID":               "12",
		"PINROLL_GITHUB_APP_INSTALLATION_ID":  "34",
		"PINROLL_GITHUB_APP_PRIVATE_KEY_FILE": key,
		"PINROLL_OIDC_INVOKERS":               "a@p.iam.gserviceaccount.com, b@p.iam.gserviceaccount.com",
	}
	c, err := Load(cfg, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s := c.Secrets
	if s.GitHubAppID != 12 || s.GitHubInstallationID != 34 || string(s.GitHubPrivateKey) != "PEM" || len(s.OIDCInvokers) != 2 {
		t.Fatalf("secrets = %+v", s)
	}
	env["PINROLL_GITHUB_APP_ID"] = "twelve"
	if _, err := Load(cfg, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "PINROLL_GITHUB_APP_ID") {
		t.Fatalf("bad app id: %v", err)
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PINROLL_CONFIG": "env.yaml"}
	getenv := func(k string) string { return env[k] }
	if Path("x.yaml", getenv) != "x.yaml" {
		t.Fatal("flag first")
	}
	if Path("", getenv) != "env.yaml" {
		t.Fatal("then $PINROLL_CONFIG")
	}
	if Path("", func(string) string { return "" }) != "pinroll.yaml" {
		t.Fatal("else ./pinroll.yaml")
	}
}

func TestProjectOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, collection, want string
	}{
		{"projects/p/topics/t", "topics", "p"},
		{"projects/p/subscriptions/s", "subscriptions", "p"},
		{"projects/p/topics/t", "subscriptions", ""},
		{"projects/p/topics/", "topics", ""},
		{"projects//topics/t", "topics", ""},
		{"projects/p/topics/t/x", "topics", ""},
		{"t", "topics", ""},
	} {
		got, err := ProjectOf(c.name, c.collection)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ProjectOf(%q, %q) = %q, %v; want %q", c.name, c.collection, got, err, c.want)
		}
	}
}
