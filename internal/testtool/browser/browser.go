// Package browser starts headless Chromium (Debian's package) for tests,
// with the flags this sandbox needs, collects console errors and saves
// screenshots. It is only for tests.
package browser

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/takedown/takedown/internal/testtool"
)

// Console collects the browser's console errors and uncaught exceptions.
type Console struct {
	mu   sync.Mutex
	errs []string
}

// Errors returns what was collected so far.
func (c *Console) Errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errs)
}

// Reset forgets what was collected.
func (c *Console) Reset() {
	c.mu.Lock()
	c.errs = nil
	c.mu.Unlock()
}

// Start starts headless Chromium with a fresh profile (skipped, or failed
// under TAKEDOWN_STRICT=1, when it is not installed) and returns a browser
// context and its console. extra adds allocator options (a window size).
// Everything stops at the test's end.
func Start(tb testing.TB, extra ...chromedp.ExecAllocatorOption) (context.Context, *Console) {
	tb.Helper()
	chrome := testtool.Need(tb, "chromium", "chromium")
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		// Without these Chromium calls out to Google's hosts, which this
		// closed network refuses.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
	}, extra...)
	actx, cancelA := chromedp.NewExecAllocator(tb.Context(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	con := &Console{}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				con.mu.Lock()
				con.errs = append(con.errs, m.String()+" "+m.URL)
				con.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() { cancelC(); <-done; cancelA() })
	return ctx, con
}

// Screenshot saves a full-page PNG under the test's temporary folder and
// logs its path (and copies it to $TAKEDOWN_SCREENSHOTS when set).
func Screenshot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		tb.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(tb.TempDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("screenshot %s", path)
	if dir := os.Getenv("TAKEDOWN_SCREENSHOTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
}
