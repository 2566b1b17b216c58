package infra

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// load parses this directory's Terraform.
func load(t *testing.T) *module {
	t.Helper()
	m, err := loadModule(".")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTerraform runs every check on infra/ itself.
func TestTerraform(t *testing.T) {
	t.Parallel()
	m := load(t)
	for _, c := range []struct {
		name  string
		check func(*module) []string
	}{
		{"only the webhook is public", checkPublic},
		{"push and scheduler calls carry OIDC", checkOIDC},
		{"dead-letter policy", checkDeadLetter},
		{"no secret values", checkSecrets},
		{"least-privilege roles", checkRoles},
		{"services", func(m *module) []string { _, p := checkServices(m); return p }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, p := range c.check(m) {
				t.Error(p)
			}
		})
	}
}

// TestTerraformFiles: one file per concern, as the README describes them.
func TestTerraformFiles(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"versions.tf", "variables.tf", "apis.tf", "services.tf", "pubsub.tf",
		"scheduler.tf", "firestore.tf", "secrets.tf", "iam.tf", "outputs.tf", "terraform.tfvars.example"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	m := load(t)
	for _, want := range []string{"google_firestore_database", "google_firestore_field", "google_cloud_scheduler_job",
		"google_pubsub_subscription", "google_secret_manager_secret"} {
		if len(m.resources(want)) == 0 {
			t.Errorf("no %s resource", want)
		}
	}
	// The TTL policy is on deliveries.expireAt, the expiry the ledger writes.
	ttl := false
	for _, r := range m.resources("google_firestore_field") {
		c, _ := literal(r.body.Attributes["collection"].Expr)
		f, _ := literal(r.body.Attributes["field"].Expr)
		_, hasTTL := block(r.body, "ttl_config")
		ttl = ttl || (c == "deliveries" && f == "expireAt" && hasTTL)
	}
	if !ttl {
		t.Error("no TTL policy on deliveries.expireAt")
	}
}

// TestFunctionTargetsExist: every FUNCTION_TARGET the Terraform serves is
// registered in package function, and every registered target is served.
func TestFunctionTargetsExist(t *testing.T) {
	t.Parallel()
	served, problems := checkServices(load(t))
	for _, p := range problems {
		t.Error(p)
	}
	registered, err := registeredTargets(filepath.Join("..", "function"))
	if err != nil {
		t.Fatal(err)
	}
	if len(served) == 0 {
		t.Fatal("the Terraform serves no FUNCTION_TARGET")
	}
	for _, s := range served {
		if _, ok := registered[s]; !ok {
			t.Errorf("FUNCTION_TARGET %s is served but not registered in function/ (registered: %v)", s, keys(registered))
		}
	}
	for r := range registered {
		if !slices.Contains(served, r) {
			t.Errorf("function/ registers %s but no Cloud Run service serves it", r)
		}
	}
	// The push subscription delivers a Pub/Sub envelope: its target must be
	// a CloudEvent function for the Functions Framework to convert it.
	if kind, ok := registered["OnImagePushed"]; ok && kind != "CloudEvent" {
		t.Errorf("OnImagePushed is registered as %s, want CloudEvent", kind)
	}
}

// registeredTargets reads the functions.HTTP("…") and
// functions.CloudEvent("…") registrations of the Go package in dir: target →
// kind.
func registeredTargets(dir string) (map[string]string, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || pkg.Name != "functions" || (sel.Sel.Name != "HTTP" && sel.Sel.Name != "CloudEvent") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if name, err := strconv.Unquote(lit.Value); err == nil {
				out[name] = sel.Sel.Name
			}
			return true
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no functions.HTTP or functions.CloudEvent registration in %s", dir)
	}
	return out, nil
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestTerraformFmt runs terraform fmt -check (offline) when terraform is installed.
func TestTerraformFmt(t *testing.T) {
	t.Parallel()
	tf, err := exec.LookPath("terraform")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("terraform not found (required under CI=true): %v", err)
		}
		t.Skipf("terraform not found: %v", err)
	}
	out, err := exec.Command(tf, "fmt", "-check", "-recursive", "-no-color", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("terraform fmt -check: %v; run make tf-fmt's fix, terraform fmt -recursive infra:\n%s", err, out)
	}
}
