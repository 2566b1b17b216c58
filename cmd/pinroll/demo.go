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
	cfg, err := config.Load(config.Path(*cfgPath), env.getenv)
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
	fmt.Fprintf(env.stdout, `Demo GitOps repository %s (%s), ledger %s.

Try it, in another terminal while pinroll serves on :8080:

  ./bin/pinroll notify %s@sha256:%s --tag latest
  ./bin/pinroll notify %s@sha256:%s --tag latest

Then look at the result: one rolling bot commit on top, pinning the second digest:

  git --git-dir %s log --format='%%h %%an: %%s' 
  git --git-dir %s show main:%s
`, repo, state, cfg.Ledger,
		img.Repository, sampleHex('a'), img.Repository, sampleHex('b'),
		filepath.Clean(repo), filepath.Clean(repo), cfg.Environments[0].Kustomization())
	return nil
}

func sampleHex(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = "0123456789abcdef"[(int(c)+i)%16]
	}
	return string(b)
}
