package selfcheck

import (
	"context"
	"github.com/takedown/takedown/internal/testtool/browser"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium with a fresh profile and collects
// console errors, exceptions and error entries of the browser log (CSP
// violations, failed loads).
func startBrowser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	ctx, con := browser.Start(t)
	return ctx, con.Errors
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browser.Screenshot(t, ctx, name)
}

// The page renders in Chromium, phone-sized and desktop-sized, with
// JavaScript off and on, without a console error or CSP violation. The
// browser connects from 127.0.0.1, which the fixture store knows as
// infected.
func TestBrowser(t *testing.T) {
	st := fixtureStore()
	st.rows[mustAddr("127.0.0.1")] = st.rows[mustAddr(infected)]
	s := startServer(t, st, nil)
	url := "http://" + s.Addr().String() + "/"
	ctx, consoleErrors := startBrowser(t)
	for _, v := range []struct {
		name          string
		width, height int64
		mobile        bool
		noScript      bool
	}{
		{"phone", 390, 844, true, true},
		{"desktop", 1280, 900, false, false},
	} {
		t.Run(v.name, func(t *testing.T) {
			vp := []chromedp.EmulateViewportOption{chromedp.EmulateScale(2)}
			if v.mobile {
				vp = append(vp, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
			}
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(v.width, v.height, vp...),
				chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: v.noScript})
					return err
				})); err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
				t.Fatal(err)
			}
			status, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("result"), "data-status"))
			if err != nil || status.Value != "seen" {
				t.Fatalf("status %q, %v", status.Value, err)
			}
			text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("family-rustock")))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Rustock", "2011-09-04", "Microsoft Safety Scanner"} {
				if !strings.Contains(text, want) {
					t.Errorf("family section lacks %q:\n%s", want, text)
				}
			}
			// Readable on a phone: nothing wider than the screen.
			wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
			if err != nil || wide {
				t.Errorf("page wider than the %dpx screen (%v)", v.width, err)
			}
			// The style sheet applied (CSP allows it).
			style, err := chromedp.Run(ctx, chromedp.ComputedStyle(chromedp.ID("result")))
			if err != nil {
				t.Fatal(err)
			}
			if i := slices.IndexFunc(style, func(p *css.ComputedStyleProperty) bool { return p.Name == "border-left-style" }); i < 0 || style[i].Value != "solid" {
				t.Errorf("style sheet not applied to #result")
			}
			screenshot(t, ctx, "selfcheck-"+v.name)
		})
	}
	// The not-seen page, via a fresh store.
	st.mu.Lock()
	delete(st.rows, mustAddr("127.0.0.1"))
	st.mu.Unlock()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
		t.Fatal(err)
	}
	if status, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("result"), "data-status")); err != nil || status.Value != "not_seen" {
		t.Fatalf("status %q, %v", status.Value, err)
	}
	screenshot(t, ctx, "selfcheck-not-seen")
	if errs := consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
