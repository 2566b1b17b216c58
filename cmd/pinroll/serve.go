package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pinroll/pinroll/internal/app"
	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/server"
)

func init() {
	commands["serve"] = command{
		summary: "Serve every HTTP route on one port (loopback only when no ops auth is set).",
		usage:   "[--config F] [--addr HOST:PORT]",
		run:     serve,
	}
}

// gcPercent is the garbage collector's target for the commands that run
// pinroll in process (serve, watch) when $GOGC sets none: a heap allowed to
// grow by half its live size between collections, not by all of it. Their
// live heap is a few MiB, so the collections this adds are cheap, and a burst
// of 1,000 deliveries leaves 2 MiB less resident (make bench-rss).
const gcPercent = 50

// openApp loads the config (--config, else $PINROLL_CONFIG, else
// ./pinroll.yaml) and opens the app it describes, logging JSON to stdout: the
// start of every command that runs pinroll in process (serve, watch).
func openApp(ctx context.Context, env *cliEnv, cfgFlag string) (*app.App, *slog.Logger, error) {
	if env.getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	cfg, err := loadConfig(env, cfgFlag)
	if err != nil {
		return nil, nil, err
	}
	log := logging.New(env.stdout, slog.LevelInfo)
	a, err := app.Open(ctx, cfg, env.getenv, log)
	if errors.Is(err, gitops.ErrNotFound) && !strings.Contains(cfg.Git.Repo, "://") {
		return nil, nil, fmt.Errorf("%w; to try pinroll locally, seed the demo repository with `pinroll demo%s` first", err, configArg(cfgFlag))
	}
	if err != nil {
		return nil, nil, err
	}
	return a, log, nil
}

// loadConfig loads the config (--config, else $PINROLL_CONFIG, else
// ./pinroll.yaml); a missing file says how to name one.
func loadConfig(env *cliEnv, cfgFlag string) (*config.Config, error) {
	path := config.Path(cfgFlag, env.getenv)
	cfg, err := config.Load(path, env.getenv)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no config file at %s: pass --config FILE or set $PINROLL_CONFIG (examples/pinroll.yaml is the demo's)", path)
	}
	return cfg, err
}

// configArg is " --config F" when the user gave one, for hints.
func configArg(cfgFlag string) string {
	if cfgFlag == "" {
		return ""
	}
	return " --config " + cfgFlag
}

func serve(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "serve")
	cfgPath := configFlag(fs)
	defAddr := ":8080"
	if p := env.getenv("PORT"); p != "" {
		defAddr = ":" + p
	}
	addr := fs.String("addr", defAddr, "listen address (default :$PORT, else :8080)")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	a, log, err := openApp(ctx, env, *cfgPath)
	if err != nil {
		return err
	}
	defer a.Close()
	cfg := a.Config
	auth := &server.Auth{OpsToken: cfg.Secrets.OpsToken, Audience: cfg.Secrets.OIDCAudience, Invokers: cfg.Secrets.OIDCInvokers}
	listen := *addr
	if auth.Open() {
		// Open routes: this machine only, unless --addr asks for more.
		if !flagSet(fs, "addr") {
			listen = loopback(listen)
		}
		log.Warn("no PINROLL_OPS_TOKEN or PINROLL_OIDC_AUDIENCE set: /gar and the ops routes accept unauthenticated calls (local mode); listening on " + listen)
	}
	srv := server.New(server.Options{Engine: a.Engine, Logger: log, Auth: auth, WebhookSecret: cfg.Secrets.WebhookSecret, Project: env.getenv("GOOGLE_CLOUD_PROJECT")})

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	log.Info("pinroll serving", "addr", ln.Addr().String(), "repo", cfg.Git.Repo, "ledger", cfg.Ledger)
	if env.ready != nil {
		env.ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// SIGTERM (Cloud Run gives 10 s): stop accepting, let in-flight pins finish.
	log.Info("pinroll shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 9*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// loopback is addr with its host replaced by 127.0.0.1 when it names every
// interface (":8080", "0.0.0.0:8080", "[::]:8080").
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
