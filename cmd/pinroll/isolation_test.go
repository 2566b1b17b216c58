package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/gar"
)

// stagingPath is the overlay the isolation scenario configures but the demo
// repository lacks.
const stagingPath = "k8s/namespaces/backend/overlays/staging/kustomization.yaml"

// fullReply is POST /gar's whole answer, environments and warnings included.
type fullReply struct {
	Status   int
	Outcome  string `json:"outcome"`
	Error    string `json:"error"`
	Warnings []string
	Envs     []struct {
		Env     string `json:"env"`
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"envs"`
}

func (w *world) deliverFull(t *testing.T, m gar.Message) fullReply {
	t.Helper()
	resp, err := http.DefaultClient.Do(w.request(t, binaryCE, m))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := fullReply{Status: resp.StatusCode}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, body)
	}
	return r
}

func (r fullReply) env(name string) (outcome, reason string) {
	for _, e := range r.Envs {
		if e.Env == name {
			return e.Outcome, e.Reason
		}
	}
	return "", ""
}

// TestBrokenEnvironmentDoesNotBlockOthers: staging tracks latest like dev,
// but its overlay does not exist. The push pins dev all the same; the message
// is not acknowledged (500, staging failed, with its reason) so that it comes
// back; redeliveries pin nothing twice; once a human adds the overlay, the
// next redelivery pins staging (creating its images entry, with a warning)
// and is acknowledged. Dev is pinned exactly once throughout.
func TestBrokenEnvironmentDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	addStaging := func(c string) string {
		return c + "  - name: staging\n    path: k8s/namespaces/backend/overlays/staging\n    track: latest\n    images: [server]\n"
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b, addStaging)
			// The start-up check already said so, as a warning.
			if !strings.Contains(w.logs(), `"overlay check: staging: `+stagingPath+` not found on main`) {
				t.Errorf("no start-up warning about staging's overlay in:\n%s", w.logs())
			}
			// ... and the status shows it, on the page's data and in the CLI.
			code, out, errOut := w.cli("status")
			if code != 0 || !strings.Contains(out, "Overlay check (at start-up") || !strings.Contains(out, "  staging: "+stagingPath+" not found on main") {
				t.Errorf("pinroll status: exit %d\n%s%s", code, out, errOut)
			}
			m := push("iso-1", serverRepo, digest(1), "latest", 1)
			pinsOfDev := func() int {
				n := 0
				for _, c := range w.host.log(t) {
					if isBot(c) && trailer(c, "Pinroll-Pin: dev/server="+digest(1)) {
						n++
					}
				}
				return n
			}
			for i := range 3 { // the first delivery and two redeliveries
				r := w.deliverFull(t, m)
				out, reason := r.env("staging")
				if r.Status != http.StatusInternalServerError || out != "failed" || !strings.Contains(reason, "overlays/staging/kustomization.yaml not found") {
					t.Fatalf("delivery %d: %+v, want 500 with staging failed and why", i+1, r)
				}
				if dev, _ := r.env("dev"); (i == 0 && dev != "pinned") || (i > 0 && dev != "unchanged") {
					t.Fatalf("delivery %d: dev %q", i+1, dev)
				}
				if w.pinned(t, "server") != digest(1) || pinsOfDev() != 1 || botRun(w.host.log(t)) != 1 {
					t.Fatalf("delivery %d: dev pinned %s in %d commits, %d bot commits on top; want once in one", i+1, w.pinned(t, "server"), pinsOfDev(), botRun(w.host.log(t)))
				}
			}

			// The human adds staging's overlay, without an images entry.
			staging := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\n"
			if err := w.host.human(t).Push(stagingPath, staging, "add staging"); err != nil {
				t.Fatal(err)
			}
			r := w.deliverFull(t, m)
			if out, _ := r.env("staging"); r.Status != http.StatusOK || out != "pinned" {
				t.Fatalf("after the fix: %+v, want 200 with staging pinned", r)
			}
			if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "staging: entry created: check that `server` matches a container image") {
				t.Errorf("warnings %q, want the created entry's", r.Warnings)
			}
			if !strings.Contains(w.logs(), `"severity":"WARNING","message":"gar message"`) || !strings.Contains(w.logs(), `"warnings":["staging: entry created: check that`) {
				t.Errorf("no WARNING log line with the created entry in:\n%s", w.logs())
			}
			if !strings.Contains(string(w.host.file(t, stagingPath)), digest(1)) {
				t.Fatalf("staging not pinned:\n%s", w.host.file(t, stagingPath))
			}
			if n := pinsOfDev(); n != 1 {
				t.Fatalf("dev pinned by %d commits, want 1", n)
			}
			// Acknowledged now: one more redelivery is a duplicate, and no commit.
			tip := w.host.log(t)[0].SHA
			if r := w.deliver(t, binaryCE, m); r.Status != http.StatusOK || !r.Duplicate {
				t.Fatalf("redelivery after success: %+v", r)
			}
			if w.host.log(t)[0].SHA != tip {
				t.Fatal("a duplicate moved the branch")
			}
		})
	}
}
