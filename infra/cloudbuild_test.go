package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"go.yaml.in/yaml/v3"
)

// cloudBuild is the part of a Cloud Build config
// (https://cloud.google.com/build/docs/build-config-file-schema) the checks read.
type cloudBuild struct {
	Steps []struct {
		ID         string   `yaml:"id"`
		Name       string   `yaml:"name"`
		Entrypoint string   `yaml:"entrypoint"`
		Args       []string `yaml:"args"`
		WaitFor    []string `yaml:"waitFor"`
	} `yaml:"steps"`
	Substitutions map[string]string `yaml:"substitutions"`
	Images        []string          `yaml:"images"`
	Options       map[string]any    `yaml:"options"`
	Timeout       string            `yaml:"timeout"`
}

var userSubstitution = regexp.MustCompile(`\$\{?(_[A-Z0-9_]+)`)

// lintCloudBuild checks that the build tests, builds, pushes to Artifact
// Registry and deploys, in that order; that every user substitution it uses
// is defined; and that it deploys exactly the services in services.
func lintCloudBuild(src []byte, services []string) []string {
	var cb cloudBuild
	dec := yaml.NewDecoder(strings.NewReader(string(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&cb); err != nil {
		return []string{fmt.Sprintf("cloudbuild.yaml does not parse: %v", err)}
	}
	var problems []string
	index := map[string]int{}
	for i, s := range cb.Steps {
		if s.ID == "" {
			problems = append(problems, fmt.Sprintf("step %d (%s) has no id", i, s.Name))
		}
		index[s.ID] = i
	}
	all := func(id string) string {
		s := cb.Steps[index[id]]
		return s.Entrypoint + " " + strings.Join(s.Args, " ")
	}
	for _, want := range []string{"test", "build", "push", "deploy"} {
		if _, ok := index[want]; !ok {
			problems = append(problems, fmt.Sprintf("no step with id %q", want))
		}
	}
	if len(problems) > 0 {
		return problems
	}
	if index["test"] > index["build"] || index["build"] > index["push"] || index["push"] > index["deploy"] {
		problems = append(problems, "steps out of order: want test, build, push, deploy")
	}
	if a := all("test"); !strings.Contains(a, "go test") && !strings.Contains(a, "make test") {
		problems = append(problems, "the test step runs neither go test nor make test")
	}
	if a := all("push"); !strings.Contains(a, "-docker.pkg.dev/") {
		problems = append(problems, "the push step does not push to Artifact Registry (REGION-docker.pkg.dev)")
	}
	if a := all("deploy"); !strings.Contains(a, "gcloud run") && !strings.Contains(a, "terraform") {
		problems = append(problems, "the deploy step runs neither gcloud run nor terraform")
	}
	for _, k := range []string{"_REGION"} {
		if _, ok := cb.Substitutions[k]; !ok {
			problems = append(problems, fmt.Sprintf("no substitution %s", k))
		}
	}
	used := map[string]bool{}
	for _, m := range userSubstitution.FindAllStringSubmatch(string(src), -1) {
		used[m[1]] = true
	}
	for k := range used {
		if _, ok := cb.Substitutions[k]; !ok {
			problems = append(problems, fmt.Sprintf("substitution %s is used but not defined", k))
		}
	}
	if services != nil {
		got := strings.Fields(cb.Substitutions["_SERVICES"])
		sort.Strings(got)
		if !slices.Equal(got, services) {
			problems = append(problems, fmt.Sprintf("_SERVICES = %v, want the Terraform's services %v", got, services))
		}
		if !strings.Contains(all("deploy"), "_SERVICES") {
			problems = append(problems, "the deploy step does not deploy ${_SERVICES}")
		}
	}
	return problems
}

// terraformServices returns the Cloud Run service names of local.targets.
func terraformServices(m *module) ([]string, error) {
	e, ok := m.local("targets")
	if !ok {
		return nil, fmt.Errorf("no local.targets")
	}
	obj, ok := e.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil, fmt.Errorf("local.targets is not an object")
	}
	var names []string
	for _, item := range obj.Items {
		t, ok := item.ValueExpr.(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil, fmt.Errorf("a target is not an object")
		}
		for _, a := range t.Items {
			k, _ := a.KeyExpr.Value(nil)
			if k.AsString() == "service" {
				s, ok := literal(a.ValueExpr)
				if !ok {
					return nil, fmt.Errorf("a service name is not a constant")
				}
				names = append(names, s)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// TestCloudBuild checks the repository's cloudbuild.yaml against infra/.
func TestCloudBuild(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "cloudbuild.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	services, err := terraformServices(load(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(services) != 4 {
		t.Errorf("Terraform services = %v, want four (one per function target)", services)
	}
	for _, p := range lintCloudBuild(src, services) {
		t.Error(p)
	}
}

// TestLintCloudBuildFails: each rule can fail.
func TestLintCloudBuildFails(t *testing.T) {
	t.Parallel()
	const good = `substitutions:
  _REGION: asia-northeast2
  _SERVICES: a b
steps:
  - id: test
    name: golang
    args: [go, test, ./...]
  - id: build
    name: docker
    args: [build, -t, "${_REGION}-docker.pkg.dev/$PROJECT_ID/r/i", .]
  - id: push
    name: docker
    args: [push, "${_REGION}-docker.pkg.dev/$PROJECT_ID/r/i"]
  - id: deploy
    name: gcloud
    args: [bash, -c, "for s in ${_SERVICES}; do gcloud run services update $$s; done"]
`
	cases := []struct{ name, old, new, want string }{
		{name: "good"},
		{name: "not YAML", old: "steps:", new: "steps: [", want: "does not parse"},
		{name: "unknown key", old: "steps:", new: "stpes: []\nsteps:", want: "does not parse"},
		{name: "no test", old: "id: test", new: "id: lint", want: `no step with id "test"`},
		{name: "test runs nothing", old: "[go, test, ./...]", new: "[go, vet, ./...]", want: "neither go test"},
		{name: "pushes elsewhere", old: `[push, "${_REGION}-docker.pkg.dev/$PROJECT_ID/r/i"]`, new: `[push, "docker.io/i"]`, want: "Artifact Registry"},
		{name: "undefined substitution", old: "$PROJECT_ID/r/i\", .]", new: "$PROJECT_ID/${_REPO}/i\", .]", want: "_REPO is used but not defined"},
		{name: "no region", old: "  _REGION: asia-northeast2\n", new: "", want: "no substitution _REGION"},
		{name: "services differ", old: "_SERVICES: a b", new: "_SERVICES: a", want: "want the Terraform's services"},
		{name: "deploys nothing", old: "gcloud run services update", new: "echo", want: "neither gcloud run nor terraform"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src := good
			if c.old != "" {
				src = strings.Replace(good, c.old, c.new, 1)
				if src == good {
					t.Fatalf("the edit %q changed nothing", c.old)
				}
			}
			problems := lintCloudBuild([]byte(src), []string{"a", "b"})
			if c.want == "" {
				for _, p := range problems {
					t.Errorf("unexpected problem: %s", p)
				}
				return
			}
			for _, p := range problems {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", c.want, problems)
		})
	}
}
