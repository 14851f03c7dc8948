package web

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// trendDoc is what the trend chart draws, read from its ECharts option.
type trendDoc struct {
	Days      []string `json:"days"`
	Values    []int    `json:"values"`
	AreaFrom  string   `json:"area_from"`
	AreaTo    string   `json:"area_to"`
	LinesX    []string `json:"lines_x"`
	LinesY    []int    `json:"lines_y"`
	PointAt   []any    `json:"point_at"`
	PointText string   `json:"point_text"`
	Reduction string   `json:"reduction"`
	Title     string   `json:"title"`
}

const readTrend = `(() => {
  const o = window.__takedown.charts.trend.getOption();
  const s = o.series[0];
  const area = (s.markArea && s.markArea.data && s.markArea.data[0]) || [{}, {}];
  const lines = (s.markLine && s.markLine.data) || [];
  const point = (s.markPoint && s.markPoint.data && s.markPoint.data[0]) || {};
  const fmt = s.markPoint && s.markPoint.label && s.markPoint.label.formatter;
  return {
    days: o.xAxis[0].data, values: s.data,
    area_from: area[0].xAxis || '', area_to: area[1].xAxis || '',
    lines_x: lines.filter((l) => l.xAxis !== undefined).map((l) => String(l.xAxis)),
    lines_y: lines.filter((l) => l.yAxis !== undefined).map((l) => l.yAxis),
    point_at: point.coord || [], point_text: typeof fmt === 'function' ? fmt(point) : '',
    reduction: document.getElementById('trend-reduction').textContent,
    title: document.getElementById('trend-title').textContent,
  };
})()`

// TestBrowserTrend: the overview's trend covers the whole takedown by
// default, from the baseline (before the order) to today, with the
// baseline window, the order's effective day and the reduction since the
// baseline on the chart; a shorter window stays selectable; ASN rows name
// their organisation.
func TestBrowserTrend(t *testing.T) {
	fx := apitest.New(t)
	// The fixture's order took effect on 2026-10-29 (Now less 30 days). A
	// week before it, 40 addresses a day; on the last whole day, 10 of
	// them: down 75 %.
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	var evs []event.Event
	add := func(d time.Time, n int) {
		for i := 1; i <= n; i++ {
			evs = append(evs, event.Event{ID: fmt.Sprintf("t%s-%d", d.Format("0102"), i), Timestamp: d.Add(9 * time.Hour), Protocol: event.ProtoHTTP,
				SrcIP: netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), SrcGeo: "DE", SrcASN: 64506, Family: "rustock", Case: "CASE-1"})
		}
	}
	for d := day("2026-10-20"); d.Before(day("2026-10-27")); d = d.AddDate(0, 0, 1) {
		add(d, 40)
	}
	add(day("2026-11-27"), 10)
	if _, err := fx.Events.WriteBatch(t.Context(), &store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := fx.Events.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, fx, func(o *api.Options) {
		o.Baseline = api.Window{From: day("2026-10-20"), To: day("2026-10-27")}
		o.ASOrg = func(asn uint32) string { return map[uint32]string{64501: "Deutsche Beispiel AG"}[asn] }
	})
	ctx, consoleErrors, _ := startBrowser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.SendKeys(chromedp.ID("user"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "s3cret-admin"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="overview"][data-trend="whole"]`)),
	); err != nil {
		t.Fatal(err)
	}
	read := func() trendDoc {
		t.Helper()
		d, err := chromedp.Run(ctx, chromedp.Evaluate[trendDoc](readTrend))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	whole := read()
	if n := len(whole.Days); n != 40 || whole.Days[0] != "2026-10-20" || whole.Days[n-1] != "2026-11-28" {
		t.Fatalf("whole takedown: %d days %v, want 2026-10-20 (the baseline) to 2026-11-28 (today)", n, whole.Days)
	}
	if whole.Values[0] != 40 || whole.Values[38] != 10 {
		t.Errorf("values %v: want 40 on the first day, 10 on 2026-11-27", whole.Values)
	}
	if whole.AreaFrom != "2026-10-20" || whole.AreaTo != "2026-10-26" {
		t.Errorf("baseline marked from %q to %q, want 2026-10-20 to 2026-10-26", whole.AreaFrom, whole.AreaTo)
	}
	if !slices.Equal(whole.LinesX, []string{"2026-10-29"}) || !slices.Equal(whole.LinesY, []int{40}) {
		t.Errorf("marked lines at days %v and levels %v, want the order's effective day 2026-10-29 and the baseline's 40 a day", whole.LinesX, whole.LinesY)
	}
	if fmt.Sprint(whole.PointAt) != "[2026-11-27 10]" || whole.PointText != "−75.0 %" {
		t.Errorf("reduction drawn at %v as %q, want −75.0 %% at 2026-11-27", whole.PointAt, whole.PointText)
	}
	if want := "−75.0 % since the baseline: 40 addresses a day (mean of 2026-10-20 to 2026-10-26), 10 on 2026-11-27"; whole.Reduction != want {
		t.Errorf("reduction %q, want %q", whole.Reduction, want)
	}
	if !strings.Contains(whole.Title, "since 2026-10-29") {
		t.Errorf("title %q does not name the takedown's first day", whole.Title)
	}
	screenshot(t, ctx, "trend-whole")

	// A shorter window: today and the 29 days before, without the baseline.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById('trend-window'); s.value = '30'; return s.dispatchEvent(new Event('change')); })()`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`body[data-trend="30"]`))); err != nil {
		t.Fatal(err)
	}
	last := read()
	if n := len(last.Days); n != 30 || last.Days[0] != "2026-10-30" || last.Days[n-1] != "2026-11-28" {
		t.Fatalf("last 30 days: %d days %v", n, last.Days)
	}
	if last.AreaFrom != "" || len(last.LinesX)+len(last.LinesY) != 0 || last.PointText != "" || last.Reduction != "The baseline has no whole day in this window." {
		t.Errorf("last 30 days marks a baseline it does not show: %+v", last)
	}

	// ASN rows name the AS organisation the geo data knows.
	asns, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#top-asn tbody tr td:first-child')].map((td) => td.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(asns, "AS64501 Deutsche Beispiel AG") || !slices.Contains(asns, "AS64502") {
		t.Errorf("top ASNs %q: want AS64501 named, AS64502 (unknown to the geo data) by number", asns)
	}
	if errs := consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
