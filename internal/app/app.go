// Package app wires pinroll from its configuration: it opens the ledger named
// by `ledger:`, the git backend named by `git.repo`, and builds the engine that
// every entry point (the CLI's serve and watch, the function targets) shares.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/events"
	"github.com/pinroll/pinroll/internal/gar/registry"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/github"
	"github.com/pinroll/pinroll/internal/gitops/local"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/ledger/firestore"
)

// App is a wired pinroll.
type App struct {
	Config *config.Config
	Engine *engine.Engine
	Ledger ledger.Ledger
	Repo   gitops.Repo

	closers []func() error
}

// Open builds the app described by cfg. getenv reads the environment
// (os.Getenv outside tests); log receives start-up warnings.
func Open(ctx context.Context, cfg *config.Config, getenv func(string) string, log *slog.Logger) (*App, error) {
	a := &App{Config: cfg}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	var err error
	if a.Ledger, err = OpenLedger(ctx, cfg.Ledger); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Ledger.Close)
	if a.Repo, err = OpenRepo(cfg, log); err != nil {
		_ = a.Close()
		return nil, err
	}
	opts := engine.Options{Config: cfg, Ledger: a.Ledger, Repo: a.Repo}
	if reg, err := openRegistry(ctx, cfg, getenv); err != nil {
		log.Warn("Artifact Registry lookups are off: releases wait for their image's push, deploys take only digests and tags the ledger knows", "reason", err.Error())
	} else if reg != nil {
		a.closers = append(a.closers, reg.Close)
		opts.Registry = reg
	}
	if pub, err := openEvents(ctx, cfg, getenv); err != nil {
		// Pin events never decide whether a pin happens.
		log.Warn("pin events are off", "topic", cfg.Events.Topic, "reason", err.Error())
	} else if pub != nil {
		a.closers = append(a.closers, pub.Close)
		opts.Events = pub
	}
	a.Engine = engine.New(opts)
	a.checkOverlays(ctx, log)
	return a, nil
}

// RegistryEndpointEnv names an Artifact Registry endpoint to use without TLS
// or credentials, like the emulator variables of other Google APIs; tests
// point it at an in-process fake.
const RegistryEndpointEnv = "PINROLL_ARTIFACT_REGISTRY_ENDPOINT"

// openRegistry opens the Artifact Registry client: releases resolve their
// tag with it, and manual deploys a tag or digest the ledger has not seen.
func openRegistry(ctx context.Context, cfg *config.Config, getenv func(string) string) (*registry.Client, error) {
	ep := getenv(RegistryEndpointEnv)
	if ep != "" {
		return registry.New(ctx, option.WithEndpoint(ep), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	if !googleCredentials(cfg, getenv) {
		return nil, errors.New("local mode without GOOGLE_APPLICATION_CREDENTIALS")
	}
	return registry.New(ctx)
}

// openEvents opens the pin events publisher of events.topic; nil when none
// is configured.
func openEvents(ctx context.Context, cfg *config.Config, getenv func(string) string) (*events.Publisher, error) {
	if cfg.Events.Topic == "" {
		return nil, nil
	}
	if getenv("PUBSUB_EMULATOR_HOST") == "" && !googleCredentials(cfg, getenv) {
		return nil, errors.New("local mode without GOOGLE_APPLICATION_CREDENTIALS or PUBSUB_EMULATOR_HOST")
	}
	// Without cancel: pins finishing after SIGTERM still publish.
	return events.New(context.WithoutCancel(ctx), cfg.Events.Topic)
}

// googleCredentials reports whether pinroll should look for Google
// credentials: finding them probes the GCE metadata server when no other
// source exists, so only the cloud setup (a Firestore ledger), or a machine
// given credentials explicitly, looks.
func googleCredentials(cfg *config.Config, getenv func(string) string) bool {
	return strings.HasPrefix(cfg.Ledger, "firestore://") || getenv("GOOGLE_APPLICATION_CREDENTIALS") != ""
}

// Close releases what Open acquired.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// OpenLedger opens the ledger named by a `ledger:` URL.
func OpenLedger(ctx context.Context, url string) (ledger.Ledger, error) {
	scheme, rest, _ := strings.Cut(url, "://")
	switch scheme {
	case "bolt":
		l, err := bolt.Open(rest)
		if err != nil {
			return nil, fmt.Errorf("open ledger %s: %w", url, err)
		}
		return l, nil
	case "firestore":
		project, database, _ := strings.Cut(rest, "/")
		l, err := firestore.Open(ctx, project, database)
		if err != nil {
			return nil, fmt.Errorf("open ledger %s: %w", url, err)
		}
		return l, nil
	default:
		return nil, fmt.Errorf("open ledger %s: want bolt://PATH or firestore://PROJECT[/DATABASE]", url)
	}
}

// IsRemote reports whether git.repo names a hosted repository (GitHub or
// GitHub Enterprise) rather than a path or file:// URL on this machine.
func IsRemote(repo string) bool {
	return strings.HasPrefix(repo, "https://") || strings.HasPrefix(repo, "http://")
}

// OpenRepo opens the git backend named by git.repo: GitHub (or GitHub
// Enterprise) for an https:// URL, else a repository on this machine.
func OpenRepo(cfg *config.Config, log *slog.Logger) (gitops.Repo, error) {
	if IsRemote(cfg.Git.Repo) {
		s := cfg.Secrets
		r, err := github.New(github.Options{
			Repo:           cfg.Git.Repo,
			APIURL:         cfg.Git.APIURL,
			Token:          s.GitHubToken,
			AppID:          s.GitHubAppID,
			InstallationID: s.GitHubInstallationID,
			PrivateKey:     s.GitHubPrivateKey,
			Logger:         log,
		})
		if err != nil {
			return nil, fmt.Errorf("open git repo %s: %w", cfg.Git.Repo, err)
		}
		return r, nil
	}
	r, err := local.Open(cfg.Git.Repo)
	if err != nil {
		return nil, fmt.Errorf("open git repo %s: %w", cfg.Git.Repo, err)
	}
	return r.WithLogger(log), nil
}
