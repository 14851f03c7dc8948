package web

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/takedown/takedown/internal/testtool/browser"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
)

// browser starts headless Chromium with a fresh profile and collects
// console errors, uncaught exceptions and error entries of the browser log
// (CSP violations, failed loads).
func startBrowser(t *testing.T) (context.Context, func() []string, func()) {
	t.Helper()
	ctx, con := browser.Start(t, chromedp.WindowSize(1400, 1100))
	return ctx, con.Errors, con.Reset
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browser.Screenshot(t, ctx, name)
}

// mapShaded is what the map draws: the regions of the world map that have
// a value and a visual colour other than the empty area colour.
const mapShaded = `(() => {
  const c = window.__takedown.charts.map;
  const s = c.getModel().getSeriesByIndex(0);
  const d = s.getData();
  const geo = s.coordinateSystem;
  const out = [];
  for (let i = 0; i < d.count(); i++) {
    const v = d.get('value', i);
    const name = d.getName(i);
    const fill = (d.getItemVisual(i, 'style') || {}).fill;
    if (!Number.isNaN(v) && v > 0 && geo.getRegion(name) && fill && fill !== '#2b3949') out.push(name);
  }
  return out.sort();
})()`

func TestBrowserDashboard(t *testing.T) {
	fx := apitest.New(t)
	srv := newServer(t, fx)
	ctx, consoleErrors, resetErrors := startBrowser(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		must(err)
		return s
	}
	location := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Location())
		must(err)
		return s
	}

	// The login flow: a wrong password does not log in.
	must(chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.SendKeys(chromedp.ID("user"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "not-the-password"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	))
	if loc, msg := location(), text("#login-error"); !strings.HasSuffix(loc, "/login") || !strings.Contains(msg, "Wrong user name or password") {
		t.Fatalf("after a wrong password: at %s, message %q", loc, msg)
	}
	screenshot(t, ctx, "login-refused")
	resetErrors() // the 401 of the refused login is logged as a failed load

	// The right password leads to the overview.
	must(chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("password"), "s3cret-admin"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="overview"]`)),
	))
	if loc := location(); strings.Contains(loc, "/login") {
		t.Fatalf("still at %s after the right password", loc)
	}

	// The headline equals /api/v1/stats.
	headline := text("#headline-24h")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/api/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+fx.Secrets["analyst"])
	resp, err := http.DefaultClient.Do(req)
	must(err)
	var st struct {
		UniqueIPs uint64 `json:"unique_ips"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	must(err)
	shown, err := strconv.ParseUint(strings.ReplaceAll(headline, ",", ""), 10, 64)
	if err != nil || shown != st.UniqueIPs || st.UniqueIPs == 0 {
		t.Fatalf("headline %q, /api/v1/stats unique_ips %d", headline, st.UniqueIPs)
	}

	// A contact stored while the overview is on screen shows in the
	// headline by the next second's poll, without the 30 s full refresh
	// or a reload (the poll is what keeps the headline fresh).
	fresh := event.Event{ID: "fresh-1", Timestamp: apitest.Now.Add(-time.Hour), Protocol: event.ProtoHTTP,
		SrcIP: netip.MustParseAddr("198.51.100.77"), SrcGeo: "DE", SrcASN: 64501, Family: "rustock", Case: "CASE-1"}
	if _, err := fx.Events.WriteBatch(t.Context(), &store.Batch{Events: []event.Event{fresh}, Received: 1}); err != nil {
		t.Fatal(err)
	}
	must(fx.Events.Flush(t.Context()))
	wantHeadline := strconv.FormatUint(st.UniqueIPs+1, 10)
	pollCtx, cancelPoll := context.WithTimeout(ctx, 10*time.Second)
	_, err = chromedp.Run(pollCtx, chromedp.Poll[bool](`document.querySelector('#headline-24h').textContent.replaceAll(',', '') === '`+wantHeadline+`'`))
	cancelPoll()
	if err != nil {
		t.Fatalf("headline %q did not become %s after a new contact: %v", text("#headline-24h"), wantHeadline, err)
	}

	// The map shades exactly the fixture's countries.
	shaded, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](mapShaded))
	must(err)
	if want := apitest.Countries(); !slices.Equal(shaded, want) {
		t.Fatalf("map shades %v, want %v", shaded, want)
	}
	// No country but Antarctica is drawn across the whole map (rings that
	// cross the antimeridian are pinned to it).
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
	  const geo = window.__takedown.charts.map.getModel().getSeriesByIndex(0).coordinateSystem;
	  const out = [];
	  for (const r of geo.regions) {
	    if (r.name === 'AQ') continue;
	    for (const g of r.geometries || []) {
	      const xs = (g.exterior || []).map((p) => p[0]);
	      if (xs.length && Math.max(...xs) - Math.min(...xs) > 200) out.push(r.name + ' ' + Math.round(Math.max(...xs) - Math.min(...xs)));
	    }
	  }
	  return out;
	})()`))
	must(err)
	if len(wide) > 0 {
		t.Errorf("regions drawn across the map: %v", wide)
	}
	screenshot(t, ctx, "overview")
	if errs := consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors on the overview:\n%s", strings.Join(errs, "\n"))
	}

	// Keyboard navigation: focus the Orders link and press Enter.
	must(chromedp.Do(ctx,
		chromedp.Focus(chromedp.CSS(`a[data-view="orders"]`)),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="orders"]`)),
	))
	if orders := text("#orders-table"); !strings.Contains(orders, "CASE-1") || !strings.Contains(orders, "expires within 30 days") || !strings.Contains(orders, "UTC") {
		t.Fatalf("orders table: %q", orders)
	}
	screenshot(t, ctx, "orders")

	// Notifications: the latest report and status per subscriber.
	yesterday := apitest.Now.Truncate(24*time.Hour).AddDate(0, 0, -1)
	fx.AddSubscriber(t, "isp-de", "ISP DE", "AS64501")
	fx.AddSubscriber(t, "cert-fr", "CERT FR", "FR")
	fx.AddSubscriber(t, "isp-us", "ISP US", "AS64502")
	fx.AddSubscriber(t, "quiet", "Quiet Networks", "NZ")
	fx.AddSubscriber(t, "isp-jp", "ISP JP", "AS64504")
	fx.RecordDelivery(t, "isp-de", yesterday.AddDate(0, 0, -1), 7, notify.StateFailed, "550 old failure")
	fx.RecordDelivery(t, "isp-de", yesterday, 6, notify.StateSent, "")
	fx.RecordDelivery(t, "cert-fr", yesterday, 2, notify.StateFailed, "550 5.1.1 mailbox unavailable")
	fx.RecordDelivery(t, "isp-us", yesterday, 7, notify.StatePending, "451 4.3.0 try again later")
	fx.RecordDelivery(t, "isp-jp", yesterday, 5, notify.StateInDoubt, notify.InDoubtReason)
	must(chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/#notifications"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="notifications"]`)),
	))
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#notify-table tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent))`))
	must(err)
	day := yesterday.Format(time.DateOnly)
	want := map[string][]string{ // subscriber: last report, status, rows, error
		"cert-fr": {day, "⚠ failed", "2", "550 5.1.1 mailbox unavailable"},
		"isp-de":  {day, "sent", "6", ""},
		"isp-us":  {day, "retrying", "7", "next attempt " + apitest.Now.Add(time.Hour).Format("2006-01-02 15:04") + " UTC; 451 4.3.0 try again later"},
		"quiet":   {"–", "no report yet", "–", ""},
		"isp-jp":  {day, "⚠ in doubt", "5", notify.InDoubtReason},
	}
	if len(cells) != len(want) {
		t.Fatalf("notifications table: %q", cells)
	}
	for _, row := range cells {
		w, ok := want[row[0]]
		if got := []string{row[5], row[6], row[7], row[10]}; !ok || !slices.Equal(got, w) {
			t.Errorf("notifications row %q: got %q, want %q", row[0], got, w)
		}
	}
	if sent, failed, doubt := text("#n-sent"), text("#n-failed"), text("#n-doubt"); sent != "1" || failed != "2" || doubt != "1" {
		t.Errorf("notifications counts: sent %q, failed %q, in doubt %q", sent, failed, doubt)
	}
	screenshot(t, ctx, "notifications")

	// The other views load too, without errors.
	for _, v := range []string{"geo", "health", "evidence"} {
		must(chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/#"+v),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`body[data-loaded=%q]`, v))),
		))
		screenshot(t, ctx, v)
	}
	must(chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#geo"), chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="geo"]`))))
	rows, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("#geo-country tbody tr")))
	must(err)
	if len(rows) != len(apitest.Countries()) {
		t.Errorf("countries table has %d rows, want %d", len(rows), len(apitest.Countries()))
	}
	if errs := consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
