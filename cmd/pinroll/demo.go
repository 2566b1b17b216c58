package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/demo"
)

func init() {
	commands["demo"] = command{
		summary: "Seed the local demo GitOps repository named by the config's git.repo (idempotent).",
		usage:   "[--config F]",
		run:     demoSeed,
	}
}

func demoSeed(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "demo")
	cfgPath := configFlag(fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		return err
	}
	repo := cfg.Git.Repo
	created, err := demo.Seed(repo, cfg.Git.Branch)
	if err != nil {
		return err
	}
	state := "already there"
	if created {
		state = "created"
	}
	img := cfg.Images[0]
	fmt.Fprintf(env.stdout, `Demo GitOps repository %[1]s (%[2]s), ledger %[3]s.

Try it in another terminal while pinroll serves on :8080. Two pushes of latest
fold into one rolling commit on top, pinning the second digest:

  ./bin/pinroll notify %[4]s@sha256:%[5]s --tag latest
  ./bin/pinroll notify %[4]s@sha256:%[6]s --tag latest
  git --git-dir %[1]s log --format='%%h %%an: %%s'

A release promotes to prod (make run sets PINROLL_WEBHOOK_SECRET=%[7]s):

  ./bin/pinroll notify %[4]s@sha256:%[6]s --tag v1.0.0
  PINROLL_WEBHOOK_SECRET=%[7]s ./bin/pinroll release %[8]s v1.0.0
  git --git-dir %[1]s show main:%[9]s
`, filepath.Clean(repo), state, cfg.Ledger, img.Repository, sampleHex('a'), sampleHex('b'),
		demoSecret(env), img.Source, prodKustomization(cfg))
	return nil
}

// demoSecret is the webhook secret to show: make run's demo value, never a
// real secret somebody exported.
func demoSecret(env *cliEnv) string {
	if s := env.getenv("PINROLL_WEBHOOK_SECRET"); s == "local-demo-secret" {
		return s
	}
	return `"$PINROLL_WEBHOOK_SECRET"`
}

func prodKustomization(cfg *config.Config) string {
	for _, e := range cfg.Environments {
		if e.IsRelease() {
			return e.Kustomization()
		}
	}
	return cfg.Environments[0].Kustomization()
}

func sampleHex(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = "0123456789abcdef"[(int(c)+i)%16]
	}
	return string(b)
}
