package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// module is a Terraform configuration parsed with hclsyntax: the files of a
// directory, their sources, and the blocks they hold. The checks below read
// it statically (no provider, no plan), which is all the security properties
// need: who is public, which calls carry OIDC, where the secrets come from.
type module struct {
	files map[string]*hclsyntax.Body // by file name
	src   map[string][]byte
}

// loadModule parses every .tf file of dir (and .tfvars files, as sources only).
func loadModule(dir string) (*module, error) {
	m := &module{files: map[string]*hclsyntax.Body{}, src: map[string][]byte{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".tf") || strings.Contains(name, ".tfvars")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if err := m.add(name, b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// parseModule parses the named sources as one module (for the checker's tests).
func parseModule(files map[string]string) (*module, error) {
	m := &module{files: map[string]*hclsyntax.Body{}, src: map[string][]byte{}}
	for name, s := range files {
		if err := m.add(name, []byte(s)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *module) add(name string, b []byte) error {
	f, diags := hclsyntax.ParseConfig(b, name, hcl.InitialPos)
	if diags.HasErrors() {
		return fmt.Errorf("parse %s: %w", name, diags)
	}
	m.files[name] = f.Body.(*hclsyntax.Body)
	m.src[name] = b
	return nil
}

// names returns the file names in order, for stable reports.
func (m *module) names() []string {
	var ns []string
	for n := range m.files {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// resource is one resource block and the file holding it.
type resource struct {
	typ, name, file string
	body            *hclsyntax.Body
}

func (r resource) String() string { return r.typ + "." + r.name }

// resources returns the resource blocks of type typ ("" for all).
func (m *module) resources(typ string) []resource {
	var rs []resource
	for _, n := range m.names() {
		for _, b := range m.files[n].Blocks {
			if b.Type == "resource" && len(b.Labels) == 2 && (typ == "" || b.Labels[0] == typ) {
				rs = append(rs, resource{typ: b.Labels[0], name: b.Labels[1], file: n, body: b.Body})
			}
		}
	}
	return rs
}

// local returns the expression of locals attribute name.
func (m *module) local(name string) (hclsyntax.Expression, bool) {
	for _, n := range m.names() {
		for _, b := range m.files[n].Blocks {
			if b.Type == "locals" {
				if a, ok := b.Body.Attributes[name]; ok {
					return a.Expr, true
				}
			}
		}
	}
	return nil, false
}

// text is the source of a range.
func (m *module) text(r hcl.Range) string {
	return string(m.src[r.Filename][r.Start.Byte:r.End.Byte])
}

// blocks returns the nested blocks of body of type typ, dynamic ones
// included (their content block).
func blocks(body *hclsyntax.Body, typ string) []*hclsyntax.Body {
	var bs []*hclsyntax.Body
	for _, b := range body.Blocks {
		switch {
		case b.Type == typ:
			bs = append(bs, b.Body)
		case b.Type == "dynamic" && len(b.Labels) == 1 && b.Labels[0] == typ:
			for _, c := range b.Body.Blocks {
				if c.Type == "content" {
					bs = append(bs, c.Body)
				}
			}
		}
	}
	return bs
}

// block returns the first nested block of body of type typ.
func block(body *hclsyntax.Body, typ string) (*hclsyntax.Body, bool) {
	bs := blocks(body, typ)
	if len(bs) == 0 {
		return nil, false
	}
	return bs[0], true
}

// refs renders the references of expr, e.g. `google_pubsub_topic.gcr.id` or
// `google_cloud_run_v2_service.target["Squash"].name`.
func refs(expr hcl.Expression) []string {
	var out []string
	for _, t := range expr.Variables() {
		var sb strings.Builder
		for i, step := range t {
			switch s := step.(type) {
			case hcl.TraverseRoot:
				sb.WriteString(s.Name)
			case hcl.TraverseAttr:
				sb.WriteString("." + s.Name)
			case hcl.TraverseIndex:
				if s.Key.Type() == cty.String {
					fmt.Fprintf(&sb, "[%q]", s.Key.AsString())
				} else {
					sb.WriteString("[?]")
				}
			default:
				if i == 0 {
					sb.WriteString("?")
				}
			}
		}
		out = append(out, sb.String())
	}
	return out
}

// refersTo reports whether expr references something starting with prefix.
func refersTo(expr hcl.Expression, prefix string) bool {
	return slices.ContainsFunc(refs(expr), func(r string) bool { return strings.HasPrefix(r, prefix) })
}

// literal returns expr's value when it is a constant string.
func literal(expr hcl.Expression) (string, bool) {
	if len(expr.Variables()) > 0 {
		return "", false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// stringLiterals calls f with every constant string part of node's
// expressions (template parts included) and its range.
func stringLiterals(node hclsyntax.Node, f func(s string, r hcl.Range)) {
	_ = hclsyntax.VisitAll(node, func(n hclsyntax.Node) hcl.Diagnostics {
		if l, ok := n.(*hclsyntax.LiteralValueExpr); ok && l.Val.Type() == cty.String && l.Val.IsKnown() && !l.Val.IsNull() {
			f(l.Val.AsString(), l.SrcRange)
		}
		return nil
	})
}

func within(inner, outer hcl.Range) bool {
	return inner.Filename == outer.Filename && inner.Start.Byte >= outer.Start.Byte && inner.End.Byte <= outer.End.Byte
}

// --- the checks: each returns the problems it finds, one sentence each ---

// webhookTarget is the only function target that may be public (SPEC §4.2, §8).
const webhookTarget = "OnGitHubWebhook"

var publicMembers = []string{"allUsers", "allAuthenticatedUsers"}

// checkPublic: the one public grant is roles/run.invoker for allUsers on the
// webhook's Cloud Run service; no other string in the module names a public
// member, and no service switches its IAM check off.
func checkPublic(m *module) []string {
	var problems []string
	var allowed []hcl.Range
	for _, r := range m.resources("") {
		if !strings.HasPrefix(r.typ, "google_cloud_run_v2_service_iam_") {
			continue
		}
		a, ok := r.body.Attributes["member"]
		if !ok {
			a, ok = r.body.Attributes["members"]
		}
		if !ok {
			continue
		}
		public := false
		stringLiterals(a.Expr, func(s string, _ hcl.Range) {
			public = public || slices.Contains(publicMembers, s)
		})
		if !public {
			continue
		}
		name, ok := r.body.Attributes["name"]
		if !ok || !refersTo(name.Expr, fmt.Sprintf("google_cloud_run_v2_service.target[%q]", webhookTarget)) {
			problems = append(problems, fmt.Sprintf("%s makes a service other than %s public", r, webhookTarget))
			continue
		}
		if role, _ := literal(r.body.Attributes["role"].Expr); role != "roles/run.invoker" {
			problems = append(problems, fmt.Sprintf("%s grants the public %q, not roles/run.invoker", r, role))
			continue
		}
		allowed = append(allowed, a.Expr.Range())
	}
	if len(allowed) != 1 {
		problems = append(problems, fmt.Sprintf("want exactly one public invoker grant (allUsers on %s), found %d", webhookTarget, len(allowed)))
	}
	for _, n := range m.names() {
		stringLiterals(m.files[n], func(s string, rng hcl.Range) {
			for _, p := range publicMembers {
				if strings.Contains(s, p) && !slices.ContainsFunc(allowed, func(a hcl.Range) bool { return within(rng, a) }) {
					problems = append(problems, fmt.Sprintf("%s: %s names %s outside the webhook's invoker grant", rng, s, p))
				}
			}
		})
	}
	for _, r := range m.resources("google_cloud_run_v2_service") {
		if a, ok := r.body.Attributes["invoker_iam_disabled"]; ok && m.text(a.Expr.Range()) != "false" {
			problems = append(problems, fmt.Sprintf("%s disables Cloud Run's invoker IAM check", r))
		}
	}
	return problems
}

// checkOIDC: every push subscription and every Scheduler HTTP job carries an
// OIDC token of a service account; a push endpoint's path names its topic
// (projects/P/topics/T) so the Functions Framework turns the envelope into a
// CloudEvent.
func checkOIDC(m *module) []string {
	var problems []string
	for _, r := range m.resources("google_pubsub_subscription") {
		pc, ok := block(r.body, "push_config")
		if !ok {
			continue
		}
		if !hasOIDC(pc) {
			problems = append(problems, fmt.Sprintf("%s pushes without an OIDC token", r))
		}
		ep, ok := pc.Attributes["push_endpoint"]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no push_endpoint", r))
			continue
		}
		if s := m.text(ep.Expr.Range()); !strings.Contains(s, "/projects/") || !strings.Contains(s, "/topics/") {
			problems = append(problems, fmt.Sprintf("%s: push_endpoint %s lacks the /projects/P/topics/T path the Functions Framework needs", r, s))
		}
	}
	for _, r := range m.resources("google_cloud_scheduler_job") {
		ht, ok := block(r.body, "http_target")
		if !ok {
			continue
		}
		if !hasOIDC(ht) {
			problems = append(problems, fmt.Sprintf("%s calls its target without an OIDC token", r))
		}
	}
	return problems
}

func hasOIDC(body *hclsyntax.Body) bool {
	o, ok := block(body, "oidc_token")
	if !ok {
		return false
	}
	_, ok = o.Attributes["service_account_email"]
	return ok
}

// checkDeadLetter: every push subscription retries with backoff and has a
// dead-letter topic the Pub/Sub service agent may publish to, and the agent
// may acknowledge on the subscription itself.
func checkDeadLetter(m *module) []string {
	var problems []string
	pushes := 0
	for _, r := range m.resources("google_pubsub_subscription") {
		if _, ok := block(r.body, "push_config"); !ok {
			continue
		}
		pushes++
		if _, ok := block(r.body, "retry_policy"); !ok {
			problems = append(problems, fmt.Sprintf("%s has no retry_policy (backoff)", r))
		}
		dl, ok := block(r.body, "dead_letter_policy")
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no dead_letter_policy", r))
			continue
		}
		topic, ok := dl.Attributes["dead_letter_topic"]
		var topicRes string
		for _, ref := range refsOf(topic, ok) {
			if strings.HasPrefix(ref, "google_pubsub_topic.") {
				topicRes = strings.Join(strings.Split(ref, ".")[:2], ".")
			}
		}
		if topicRes == "" {
			problems = append(problems, fmt.Sprintf("%s: dead_letter_topic is not a topic of this module", r))
			continue
		}
		if !m.agentGranted("google_pubsub_topic_iam_", "topic", topicRes, "roles/pubsub.publisher") {
			problems = append(problems, fmt.Sprintf("%s: the Pub/Sub service agent may not publish to %s", r, topicRes))
		}
		if !m.agentGranted("google_pubsub_subscription_iam_", "subscription", "google_pubsub_subscription."+r.name, "roles/pubsub.subscriber") {
			problems = append(problems, fmt.Sprintf("%s: the Pub/Sub service agent may not subscribe to it (dead-lettering needs it)", r))
		}
	}
	if pushes == 0 {
		problems = append(problems, "no push subscription")
	}
	return problems
}

func refsOf(a *hclsyntax.Attribute, ok bool) []string {
	if !ok {
		return nil
	}
	return refs(a.Expr)
}

// agentGranted reports whether an IAM resource of typePrefix grants role on
// the resource target (named by attribute attr) to the Pub/Sub service agent.
func (m *module) agentGranted(typePrefix, attr, target, role string) bool {
	for _, r := range m.resources("") {
		if !strings.HasPrefix(r.typ, typePrefix) {
			continue
		}
		a, ok := r.body.Attributes[attr]
		if !ok || !refersTo(a.Expr, target+".") {
			continue
		}
		if got, _ := literal(r.body.Attributes["role"].Expr); got != role {
			continue
		}
		if mem, ok := r.body.Attributes["member"]; ok && m.resolvesTo(mem.Expr, "gcp-sa-pubsub.iam.gserviceaccount.com") {
			return true
		}
	}
	return false
}

// resolvesTo reports whether expr's source, or that of a local it names,
// contains s.
func (m *module) resolvesTo(expr hcl.Expression, s string) bool {
	if strings.Contains(m.text(expr.Range()), s) {
		return true
	}
	for _, ref := range refs(expr) {
		if name, ok := strings.CutPrefix(ref, "local."); ok {
			if e, ok := m.local(name); ok && strings.Contains(m.text(e.Range()), s) {
				return true
			}
		}
	}
	return false
}

// leakPatterns are shapes of secret values that never belong in Terraform.
var leakPatterns = []*regexp.Regexp{
	regexp.MustCompile(`-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----`),
	regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{20,}`),
	regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{20,}`),
	regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`),
	regexp.MustCompile(`"private_key"\s*:`),
}

// secretish names an attribute or variable that would hold a secret value.
var secretish = regexp.MustCompile(`(?i)(token|secret|password|passwd|private_key|api_key|secret_data|payload)`)

// checkSecrets: no secret value or key in any file; the only secret version
// Terraform writes is the config file's, read from a file; no secret-named
// attribute or variable default holds a literal value.
func checkSecrets(m *module) []string {
	var problems []string
	for _, n := range m.names() {
		for _, p := range leakPatterns {
			if loc := p.FindIndex(m.src[n]); loc != nil {
				problems = append(problems, fmt.Sprintf("%s holds something shaped like a secret (%s)", n, p))
			}
		}
		_ = hclsyntax.VisitAll(m.files[n], func(node hclsyntax.Node) hcl.Diagnostics {
			a, ok := node.(*hclsyntax.Attribute)
			if !ok || !secretish.MatchString(a.Name) || strings.HasSuffix(a.Name, "_id") || a.Name == "secret" {
				return nil
			}
			if s, ok := literal(a.Expr); ok && s != "" {
				problems = append(problems, fmt.Sprintf("%s: %s is a literal value", a.SrcRange, a.Name))
			}
			return nil
		})
		for _, b := range m.files[n].Blocks {
			if b.Type != "variable" || len(b.Labels) != 1 || !secretish.MatchString(b.Labels[0]) {
				continue
			}
			if d, ok := b.Body.Attributes["default"]; ok {
				if s, ok := literal(d.Expr); ok && s != "" {
					problems = append(problems, fmt.Sprintf("%s: variable %s has a default value", d.SrcRange, b.Labels[0]))
				}
			}
		}
	}
	problems = append(problems, checkSecretEnv(m)...)
	for _, r := range m.resources("google_secret_manager_secret_version") {
		sec, ok := r.body.Attributes["secret"]
		if !ok || !refersTo(sec.Expr, "google_secret_manager_secret.config.") {
			problems = append(problems, fmt.Sprintf("%s writes a secret other than the config: credentials are created empty and filled with gcloud", r))
			continue
		}
		data, ok := r.body.Attributes["secret_data"]
		call, isCall := hclsyntax.Expression(nil), false
		if ok {
			call = data.Expr
			fc, c := call.(*hclsyntax.FunctionCallExpr)
			isCall = c && fc.Name == "file"
		}
		if !isCall {
			problems = append(problems, fmt.Sprintf("%s: the config's secret_data must be file(var.config_file)", r))
		}
	}
	return problems
}

// secretEnv names an environment variable that carries a credential.
var secretEnv = regexp.MustCompile(`(?i)(TOKEN|SECRET|PRIVATE_KEY|PASSWORD)$`)

// checkSecretEnv: an environment variable named like a credential
// (PINROLL_GITHUB_TOKEN, PINROLL_WEBHOOK_SECRET, …) gets its value from a
// Secret Manager secret, whether it is an env block or the key of a map
// that dynamic env blocks range over.
func checkSecretEnv(m *module) []string {
	var problems []string
	fromSecret := func(e hcl.Expression) bool { return refersTo(e, "google_secret_manager_secret.") }
	for _, n := range m.names() {
		_ = hclsyntax.VisitAll(m.files[n], func(node hclsyntax.Node) hcl.Diagnostics {
			switch x := node.(type) {
			case *hclsyntax.ObjectConsExpr:
				for _, item := range x.Items {
					k, diags := item.KeyExpr.Value(nil)
					if diags.HasErrors() || k.Type() != cty.String || !secretEnv.MatchString(k.AsString()) {
						continue
					}
					if !fromSecret(item.ValueExpr) {
						problems = append(problems, fmt.Sprintf("%s: %s does not come from a Secret Manager secret", item.ValueExpr.Range(), k.AsString()))
					}
				}
			case *hclsyntax.Block:
				if x.Type != "env" {
					return nil
				}
				name, ok := x.Body.Attributes["name"]
				if !ok {
					return nil
				}
				if s, ok := literal(name.Expr); ok && secretEnv.MatchString(s) {
					if _, plain := x.Body.Attributes["value"]; plain {
						problems = append(problems, fmt.Sprintf("%s: env %s is a plain value, not a secret reference", x.DefRange(), s))
					}
				}
			}
			return nil
		})
	}
	return problems
}

// checkRoles: no primitive role, and a comment says why each role is held
// (on the line above the role, or at its end).
func checkRoles(m *module) []string {
	var problems []string
	for _, n := range m.names() {
		lines := strings.Split(string(m.src[n]), "\n")
		_ = hclsyntax.VisitAll(m.files[n], func(node hclsyntax.Node) hcl.Diagnostics {
			a, ok := node.(*hclsyntax.Attribute)
			if !ok || (a.Name != "role" && a.Name != "roles") {
				return nil
			}
			stringLiterals(a.Expr, func(s string, rng hcl.Range) {
				if s == "roles/owner" || s == "roles/editor" {
					problems = append(problems, fmt.Sprintf("%s: primitive role %s", rng, s))
				}
			})
			l := a.SrcRange.Start.Line
			above := ""
			if l >= 2 {
				above = strings.TrimSpace(lines[l-2])
			}
			if !strings.HasPrefix(above, "#") && !strings.HasPrefix(above, "//") && !strings.Contains(lines[l-1], "#") {
				problems = append(problems, fmt.Sprintf("%s: role without a comment saying why", a.SrcRange))
			}
			return nil
		})
	}
	return problems
}

// checkServices: every Cloud Run service scales to zero and sets
// FUNCTION_TARGET and PINROLL_CONFIG, the config coming from a secret volume.
// It returns the function targets the module serves.
func checkServices(m *module) (targets []string, problems []string) {
	for _, r := range m.resources("google_cloud_run_v2_service") {
		tmpl, ok := block(r.body, "template")
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no template", r))
			continue
		}
		scaling, ok := block(tmpl, "scaling")
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no scaling block (min_instance_count = 0)", r))
		} else if a, ok := scaling.Attributes["min_instance_count"]; !ok || m.text(a.Expr.Range()) != "0" {
			problems = append(problems, fmt.Sprintf("%s: min_instance_count must be 0", r))
		}
		configFromSecret := false
		for _, v := range blocks(tmpl, "volumes") {
			if s, ok := block(v, "secret"); ok && refersTo(s.Attributes["secret"].Expr, "google_secret_manager_secret.config.") {
				configFromSecret = true
			}
		}
		if !configFromSecret {
			problems = append(problems, fmt.Sprintf("%s does not mount the config secret as a volume", r))
		}
		env := map[string]hcl.Expression{}
		for _, c := range blocks(tmpl, "containers") {
			for _, e := range blocks(c, "env") {
				if name, ok := literal(e.Attributes["name"].Expr); ok {
					if v, ok := e.Attributes["value"]; ok {
						env[name] = v.Expr
					}
				}
			}
		}
		if _, ok := env["PINROLL_CONFIG"]; !ok {
			problems = append(problems, fmt.Sprintf("%s does not set PINROLL_CONFIG", r))
		}
		ft, ok := env["FUNCTION_TARGET"]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s does not set FUNCTION_TARGET", r))
			continue
		}
		if v, ok := literal(ft); ok {
			targets = append(targets, v)
			continue
		}
		// FUNCTION_TARGET = each.key over for_each = local.NAME: the targets
		// are that map's keys.
		fe, ok := r.body.Attributes["for_each"]
		if m.text(ft.Range()) != "each.key" || !ok {
			problems = append(problems, fmt.Sprintf("%s: FUNCTION_TARGET is neither a literal nor each.key", r))
			continue
		}
		keys, err := m.localKeys(fe.Expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", r, err))
			continue
		}
		targets = append(targets, keys...)
	}
	sort.Strings(targets)
	return targets, problems
}

// localKeys returns the keys of the object constant that expr, a reference
// to a local, names.
func (m *module) localKeys(expr hcl.Expression) ([]string, error) {
	rs := refs(expr)
	if len(rs) != 1 || !strings.HasPrefix(rs[0], "local.") {
		return nil, fmt.Errorf("for_each %s is not a local", m.text(expr.Range()))
	}
	e, ok := m.local(strings.TrimPrefix(rs[0], "local."))
	if !ok {
		return nil, fmt.Errorf("no %s", rs[0])
	}
	obj, ok := e.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil, fmt.Errorf("%s is not an object constant", rs[0])
	}
	var keys []string
	for _, item := range obj.Items {
		k, diags := item.KeyExpr.Value(nil)
		if diags.HasErrors() || k.Type() != cty.String {
			return nil, fmt.Errorf("%s: a key is not a constant string", rs[0])
		}
		keys = append(keys, k.AsString())
	}
	return keys, nil
}
