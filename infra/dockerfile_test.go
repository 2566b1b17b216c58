package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions (comments dropped,
// backslash continuations joined).
func parseDockerfile(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continuation
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	return out
}

// stage is one FROM and the instructions up to the next.
type stage struct {
	base, name string
	ins        []instruction
}

func stages(ins []instruction) []stage {
	var ss []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{}
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.name = f[i+1]
					i++
				case st.base == "":
					st.base = f[i]
				}
			}
			ss = append(ss, st)
			continue
		}
		if len(ss) > 0 {
			ss[len(ss)-1].ins = append(ss[len(ss)-1].ins, in)
		}
	}
	return ss
}

// lintDockerfile checks pinroll's image rules: multi-stage; the build stage
// compiles cmd/function statically (CGO_ENABLED=0); the final stage is
// distroless static, runs as a non-root user, copies the binary from the
// build stage and starts it in exec form; nothing is fetched with ADD.
func lintDockerfile(src string) []string {
	var problems []string
	ins := parseDockerfile(src)
	ss := stages(ins)
	if len(ss) < 2 {
		return []string{fmt.Sprintf("want a multi-stage build, found %d stage(s)", len(ss))}
	}
	final, builds := ss[len(ss)-1], ss[:len(ss)-1]
	static, buildsFunction := false, false
	for _, st := range builds {
		if st.name == "" {
			problems = append(problems, fmt.Sprintf("build stage FROM %s has no name (AS ...)", st.base))
		}
		for _, in := range st.ins {
			if (in.cmd == "ENV" || in.cmd == "RUN" || in.cmd == "ARG") && strings.Contains(in.args, "CGO_ENABLED=0") {
				static = true
			}
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") && strings.Contains(in.args, "./cmd/function") {
				buildsFunction = true
			}
		}
	}
	if !static {
		problems = append(problems, "the build stage does not set CGO_ENABLED=0 (the binary must be static)")
	}
	if !buildsFunction {
		problems = append(problems, "no build stage runs go build ./cmd/function")
	}
	if !strings.HasPrefix(final.base, "gcr.io/distroless/static") {
		problems = append(problems, fmt.Sprintf("the final stage is FROM %s, want gcr.io/distroless/static…:nonroot", final.base))
	}
	user := ""
	if strings.HasSuffix(final.base, ":nonroot") || strings.Contains(final.base, ":nonroot@") {
		user = "nonroot"
	}
	copied, entry := false, false
	for _, in := range final.ins {
		switch in.cmd {
		case "USER":
			user = strings.Split(in.args, ":")[0]
		case "COPY":
			for _, st := range builds {
				copied = copied || (st.name != "" && strings.Contains(in.args, "--from="+st.name))
			}
		case "ENTRYPOINT":
			entry = strings.HasPrefix(in.args, "[")
			if !entry {
				problems = append(problems, "ENTRYPOINT is in shell form; distroless has no shell: use [\"/path\"]")
			}
		case "RUN":
			problems = append(problems, fmt.Sprintf("line %d: RUN in the final stage (distroless has no shell)", in.line))
		}
	}
	if user == "" || user == "root" || user == "0" {
		problems = append(problems, fmt.Sprintf("the final stage runs as %q; want a non-root user (distroless :nonroot, USER nonroot)", user))
	}
	if !copied {
		problems = append(problems, "the final stage copies nothing from a build stage")
	}
	if !entry {
		problems = append(problems, "the final stage has no exec-form ENTRYPOINT")
	}
	for _, in := range ins {
		if in.cmd == "ADD" && strings.Contains(in.args, "://") {
			problems = append(problems, fmt.Sprintf("line %d: ADD of a URL (unpinned download); use COPY", in.line))
		}
	}
	return problems
}

// TestDockerfile lints the repository's Dockerfile.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lintDockerfile(string(b)) {
		t.Error(p)
	}
}

// TestLintDockerfileFails: each rule can fail.
func TestLintDockerfileFails(t *testing.T) {
	t.Parallel()
	const good = `FROM golang:1.26 AS build
ENV CGO_ENABLED=0
RUN go build -o /out/function \
    ./cmd/function
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/function /function
ENTRYPOINT ["/function"]
`
	cases := []struct {
		name, old, new, want string
	}{
		{name: "good", want: ""},
		{name: "single stage", old: "FROM golang:1.26 AS build\n", new: "", want: "multi-stage"},
		{name: "cgo on", old: "ENV CGO_ENABLED=0\n", new: "", want: "CGO_ENABLED=0"},
		{name: "not the function", old: "./cmd/function", new: "./cmd/other", want: "go build ./cmd/function"},
		{name: "a full base image", old: "gcr.io/distroless/static-debian12:nonroot", new: "debian:12", want: "final stage is FROM debian:12"},
		{name: "root user", old: ":nonroot\n", new: ":latest\n", want: "non-root user"},
		{name: "explicit root", old: "ENTRYPOINT", new: "USER root\nENTRYPOINT", want: "non-root user"},
		{name: "shell entrypoint", old: `ENTRYPOINT ["/function"]`, new: "ENTRYPOINT /function", want: "shell form"},
		{name: "nothing copied", old: "--from=build ", new: "", want: "copies nothing"},
		{name: "unnamed build stage", old: " AS build", new: "", want: "has no name"},
		{name: "a download", old: "ENV CGO", new: "ADD https://example.com/x /x\nENV CGO", want: "ADD of a URL"},
		{name: "RUN in distroless", old: "ENTRYPOINT", new: "RUN chmod +x /function\nENTRYPOINT", want: "RUN in the final stage"},
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
			problems := lintDockerfile(src)
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
