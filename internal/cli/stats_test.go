package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/stats/statsfixture"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// statsDataDir stores a three-week fixture population and its order in a
// fresh data dir.
func statsDataDir(t *testing.T) (string, *statsfixture.Fixture) {
	t.Helper()
	c := statsfixture.Default()
	c.Days, c.Machines = 21, 300
	fx := statsfixture.Generate(c)
	dir := t.TempDir()
	ctx := t.Context()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := sqlite.NewEventStore(ctx, db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := es.WriteBatch(ctx, &store.Batch{Events: fx.Events, Received: uint64(len(fx.Events))}); err != nil {
		t.Fatal(err)
	}
	if err := es.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	es.Close()
	o := registry.Order{Case: c.Case, Court: "U.S. District Court, W.D. Wash.", Title: "Microsoft v. John Does 1-11", Family: "rustock",
		Effective: c.Start, Expires: c.Start.AddDate(2, 0, 0)}
	if _, err := db.Import(ctx, o, []registry.Indicator{{Kind: registry.KindDomain, Value: "c2.example"}}, "test", false); err != nil {
		t.Fatal(err)
	}
	return dir, fx
}

func runStats(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	g := &globals{data: dir, stdout: &out, stderr: &out, now: func() time.Time { return time.Date(2011, 4, 20, 12, 0, 0, 0, time.UTC) }}
	root := newRoot(g)
	root.SetArgs(append([]string{"--data", dir}, args...))
	root.SetOut(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestStatsCommand(t *testing.T) {
	dir, fx := statsDataDir(t)
	start := fx.Config.Start
	week := func(i int) (time.Time, time.Time) { return start.AddDate(0, 0, 7*i), start.AddDate(0, 0, 7*i+7) }
	from, to := week(2)
	bf, bt := week(0)
	want, base := fx.Truth(from, to), fx.Truth(bf, bt)

	out, err := runStats(t, dir, "stats", "--from", from.Format(time.DateOnly), "--to", to.Format(time.DateOnly), "--by", "country",
		"--baseline-from", bf.Format(time.DateOnly), "--baseline-to", bt.Format(time.DateOnly), "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r stats.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.UniqueIPs != uint64(want.UniqueIPs) || r.Baseline == nil || r.Baseline.UniqueIPs != uint64(base.UniqueIPs) || r.ResolverIPsExcluded != uint64(want.Resolvers) {
		t.Fatalf("got %+v, want %d (baseline %d)", r, want.UniqueIPs, base.UniqueIPs)
	}
	for _, row := range r.Rows {
		if row.UniqueIPs != uint64(want.ByCountry[row.Key]) || *row.BaselineUniqueIPs != uint64(base.ByCountry[row.Key]) {
			t.Errorf("row %+v, want %d/%d", row, want.ByCountry[row.Key], base.ByCountry[row.Key])
		}
	}

	out, err = runStats(t, dir, "stats", "--from", from.Format(time.DateOnly), "--to", to.Format(time.DateOnly), "--by", "family", "--csv")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, rec := range recs[1:] {
		got[rec[0]] = rec[1]
	}
	if got[statsfixture.IDFamily] != strconv.Itoa(want.ByFamily[statsfixture.IDFamily]) || got["all"] != strconv.Itoa(want.UniqueIPs) {
		t.Errorf("csv %v, want %v total %d", got, want.ByFamily, want.UniqueIPs)
	}

	out, err = runStats(t, dir, "stats", "--from", from.Format(time.DateOnly), "--to", to.Format(time.DateOnly), "--by", "country", "--top", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, stats.Thousands(uint64(want.UniqueIPs))) || !strings.Contains(out, "other") || !strings.Contains(out, "COUNTRY") {
		t.Errorf("table:\n%s", out)
	}

	out, err = runStats(t, dir, "stats", "series", "--every", "week", "--from", start.Format(time.DateOnly), "--to", start.AddDate(0, 0, 21).Format(time.DateOnly), "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var s stats.Series
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Points) != 3 {
		t.Fatalf("%d points", len(s.Points))
	}
	for i, p := range s.Points {
		f, e := week(i)
		if w := fx.Truth(f, e); p.UniqueIPs != uint64(w.UniqueIPs) {
			t.Errorf("week %d: %d, want %d", i, p.UniqueIPs, w.UniqueIPs)
		}
	}

	for _, bad := range [][]string{
		{"stats", "--by", "city"},
		{"stats", "--from", "yesterday"},
		{"stats", "--from", "2011-04-02", "--to", "2011-04-01"},
		{"stats", "--baseline-from", "2011-03-16"},
		{"stats", "--json", "--csv"},
		{"stats", "series", "--every", "month"},
		{"report", "status", "-o", filepath.Join(dir, "r.html")},
	} {
		if _, err := runStats(t, dir, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		} else if _, ok := err.(*UsageError); !ok {
			t.Errorf("%v: %T %v, want a usage error", bad, err, err)
		}
	}
}

func TestReportStatus(t *testing.T) {
	dir, fx := statsDataDir(t)
	at := fx.Config.Start.AddDate(0, 0, 20)
	html := filepath.Join(t.TempDir(), "status.html")
	out, err := runStats(t, dir, "report", "status", "--case", fx.Config.Case, "--at", at.Format(time.DateOnly), "-o", html)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	want := fx.Truth(at.AddDate(0, 0, -6), at.AddDate(0, 0, 1))
	base := fx.Truth(fx.Config.Start, fx.Config.Start.AddDate(0, 0, 7))
	red := stats.ReductionPct(uint64(base.UniqueIPs), uint64(want.UniqueIPs))
	for _, s := range []string{
		"Microsoft v. John Does 1-11", "1 domains", stats.Thousands(uint64(want.UniqueIPs)), stats.Thousands(uint64(base.UniqueIPs)),
		strconv.FormatFloat(*red, 'f', 1, 64) + "%", "<svg", "<polyline", ">US<",
	} {
		if !strings.Contains(page, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	for _, s := range []string{"http://", "https://", "src=", "198.51.100"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), s) {
			t.Errorf("report is not self-contained or shows an address: %q", s)
		}
	}
	t.Run("pdf", func(t *testing.T) {
		testtool.Need(t, "chromium", "chromium")
		pdf := filepath.Join(t.TempDir(), "status.pdf")
		out, err := runStats(t, dir, "report", "status", "--case", fx.Config.Case, "--at", at.Format(time.DateOnly), "-o", html, "--pdf", pdf)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		b, err := os.ReadFile(pdf)
		if err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) {
			t.Fatalf("not a PDF: %v %q", err, b[:min(len(b), 16)])
		}
	})
}
