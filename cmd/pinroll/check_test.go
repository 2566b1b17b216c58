package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkConfig is the demo's config, with the images and extra environments a
// case adds.
const checkConfig = `images:
  - name: server
    repository: ` + serverRepo + `
%s
environments:
  - name: dev
    path: k8s/namespaces/backend/overlays/dev
    track: latest
  - name: prod
    path: k8s/namespaces/backend/overlays/prod
    release: {}
%s`

// runCheck runs `pinroll check` on host with the config and returns the exit
// code, stdout and stderr.
func runCheck(t *testing.T, host gitHost, extraImages, extraEnvs string, args ...string) (int, string, string) {
	t.Helper()
	gitYAML, vars := host.configure()
	path := filepath.Join(t.TempDir(), "pinroll.yaml")
	if err := os.WriteFile(path, []byte(gitYAML+fmt.Sprintf(checkConfig, extraImages, extraEnvs)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	env := &cliEnv{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
	code := run(t.Context(), env, append([]string{"check", "--config", path}, args...))
	return code, stdout.String(), stderr.String()
}

// baseRenames is the seed's trap (SPEC §3): the base renames server to its
// registry path, so the overlays' entries named server match nothing.
const baseRenames = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: backend
resources:
  - deployment.yaml
  - service.yaml
images:
  - name: server
    newName: ` + serverRepo + `
`

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	hosts := []struct {
		name string
		new  func(testing.TB) gitHost
	}{{"local", newLocalHost}, {"github", newGitHubHost}}
	cases := []struct {
		name       string
		setup      func(t *testing.T, h gitHost)
		images     string
		envs       string
		args       []string
		code       int
		want       []string // lines of stdout, in order, after the header
		wantStderr string
	}{
		{
			name: "demo is clean",
			code: 0,
			want: []string{
				"ok: dev: server not pinned yet; its entry reaches " + serverRepo + ":latest in 1 container(s)",
				"ok: prod: server not pinned yet; its entry reaches " + serverRepo + ":v0.1.0 in 1 container(s)",
			},
		},
		{
			name: "one environment",
			args: []string{"--env", "prod"},
			code: 0,
			want: []string{"ok: prod: server not pinned yet; its entry reaches " + serverRepo + ":v0.1.0 in 1 container(s)"},
		},
		{
			name:   "an image no container uses",
			images: "  - name: worker\n    repository: " + workerRepo,
			code:   1,
			want: []string{
				"error: dev: images[].name `worker` matches no container image (pinroll would create this entry); the rendered containers use `" + serverRepo + ":latest` — name the entry (and the image in pinroll's config) after the one it should pin",
				"ok: dev: server not pinned yet; its entry reaches " + serverRepo + ":latest in 1 container(s)",
				"error: prod: images[].name `worker` matches no container image (pinroll would create this entry); the rendered containers use `" + serverRepo + ":v0.1.0` — name the entry (and the image in pinroll's config) after the one it should pin",
				"ok: prod: server not pinned yet; its entry reaches " + serverRepo + ":v0.1.0 in 1 container(s)",
			},
			wantStderr: "pinroll check: problems in dev, prod: fix each as its line says, then run pinroll check again\n",
		},
		{
			name: "the base renames the image",
			setup: func(t *testing.T, h gitHost) {
				if err := h.human(t).Push("k8s/namespaces/backend/base/kustomization.yaml", baseRenames, "base: full registry path"); err != nil {
					t.Fatal(err)
				}
			},
			args: []string{"--env", "dev"},
			code: 1,
			want: []string{
				"error: dev: images[].name `server` matches no container image; the base renames it to `" + serverRepo + "` — name the entry `" + serverRepo + "` (and the image's name in pinroll's config, which names the entry pinroll edits)",
			},
		},
		{
			name: "an overlay that does not exist, and a config warning",
			envs: "  - name: staging\n    path: k8s/namespaces/backend/overlays/staging\n    track: staging\n    commit: append\n",
			args: []string{"--env", "staging"},
			code: 1,
			want: []string{
				`warning: config: environments[2] "staging" (commit: append) and environments[0] "dev" (commit: rolling) both write branch main: each append commit buries the rolling commit, so every push makes two commits; use one commit mode per branch, or give "staging" its own branch`,
				"error: staging: k8s/namespaces/backend/overlays/staging/kustomization.yaml not found on main at ",
			},
		},
		{
			name: "a branch that does not exist",
			envs: "  - name: qa\n    path: k8s/namespaces/backend/overlays/dev\n    track: qa\n    branch: qa\n",
			args: []string{"--env", "qa"},
			code: 1,
			want: []string{"error: qa: branch qa not found in the repository — create it, or fix the environment's branch (or git.branch) in the config"},
		},
		{
			name: "usage error",
			args: []string{"--env", "nope"},
			code: 2,
		},
	}
	for _, h := range hosts {
		for _, tc := range cases {
			t.Run(h.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				host := h.new(t)
				if tc.setup != nil {
					tc.setup(t, host)
				}
				code, out, errOut := runCheck(t, host, tc.images, tc.envs, tc.args...)
				if code != tc.code {
					t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
				}
				if tc.code == 2 {
					return
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if !strings.HasPrefix(lines[0], "pinroll check: ") {
					t.Fatalf("no header: %q", lines[0])
				}
				got := lines[1:]
				if len(got) != len(tc.want) {
					t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tc.want), out)
				}
				for i := range got {
					if !strings.HasPrefix(got[i], tc.want[i]) {
						t.Errorf("line %d:\n got %s\nwant %s", i+1, got[i], tc.want[i])
					}
				}
				if tc.wantStderr != "" && errOut != tc.wantStderr {
					t.Errorf("stderr = %q, want %q", errOut, tc.wantStderr)
				}
			})
		}
	}
}

// TestCheckJSONAndAPICalls reads the demo on the fake GitHub with -o json: the
// overlays' graph has three levels (the overlays, the base, its two files),
// read in one GraphQL query each.
func TestCheckJSONAndAPICalls(t *testing.T) {
	t.Parallel()
	host := newGitHubHost(t).(*githubHost)
	host.gh.ResetCalls()
	code, out, errOut := runCheck(t, host, "", "", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	var rep struct {
		OK       bool   `json:"ok"`
		Reads    int    `json:"reads"`
		APICalls *int64 `json:"api_calls"`
		Envs     []struct {
			Env    string `json:"env"`
			OK     bool   `json:"ok"`
			Images []struct {
				Image      string   `json:"image"`
				Containers []string `json:"containers"`
			} `json:"images"`
		} `json:"envs"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !rep.OK || len(rep.Envs) != 2 || rep.Envs[0].Env != "dev" || len(rep.Envs[0].Images) != 1 {
		t.Fatalf("report: %s", out)
	}
	if rep.Reads != 3 || rep.APICalls == nil || *rep.APICalls != 3 || host.gh.TotalCalls() != 3 {
		t.Fatalf("reads %d, api_calls %v, fake GitHub saw %d calls; want 3 each", rep.Reads, rep.APICalls, host.gh.TotalCalls())
	}
}
