package statuspage_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pinroll/pinroll/internal/server"
)

// chromium finds a Chromium or Chrome to drive. Under CI=true one must be
// there (.ci/run installs Debian's chromium); elsewhere the test skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found under CI=true: install it (apt-get install -y chromium)")
	}
	t.Skip("no Chromium found (chromium, chromium-browser, google-chrome): install Debian's chromium to run the page test")
	return ""
}

// TestPageOnAPhone loads the status page (GET / of the server) in headless Chromium at 375 px
// wide, checks that nothing scrolls sideways and that the incident is on
// it, and saves a screenshot in the test's temporary directory.
func TestPageOnAPhone(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	eng, _ := incident(t)
	srv := httptest.NewServer(server.New(server.Options{Engine: eng})) // GET / as served, headers included
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // root in containers
		chromedp.DisableGPU,
		chromedp.WindowSize(375, 812),
	)
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Navigate(srv.URL),
		chromedp.WaitVisible(chromedp.CSS("#history")),
	)
	if err != nil {
		t.Fatalf("drive Chromium: %v", err)
	}
	scrollWidth, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	innerWidth, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "status-375.png")
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	if innerWidth != 375 {
		t.Errorf("viewport %d px wide, want 375", innerWidth)
	}
	if scrollWidth > innerWidth {
		t.Errorf("the page scrolls sideways at 375 px: %d px wide", scrollWidth)
	}
	for _, want := range []string{"dev", "prod", "held", "INC-4242", "v1.4.0", "v1.5.0", "pending", "Recent history"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page at 375 px does not show %q", want)
		}
	}
}
