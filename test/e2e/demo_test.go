package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type truthPeriod struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	HostsAlive  int       `json:"hosts_alive"`
	UniqueIPs   int       `json:"unique_ips"`
	ResolverIPs int       `json:"resolver_ips"`
	Countries   map[string]struct {
		UniqueIPs int `json:"unique_ips"`
	} `json:"countries"`
	Families map[string]int `json:"families"`
}

type truthFile struct {
	Daily        []truthPeriod `json:"daily"`
	Baseline     *truthPeriod  `json:"baseline"`
	Last         *truthPeriod  `json:"last"`
	ReductionPct float64       `json:"reduction_pct"`
}

type statsDoc struct {
	UniqueIPs      uint64   `json:"unique_ips"`
	EstimatedHosts uint64   `json:"estimated_hosts"`
	ResolverIPs    uint64   `json:"resolver_ips_excluded"`
	ReductionPct   *float64 `json:"reduction_pct"`
	Rows           []struct {
		Key       string `json:"key"`
		UniqueIPs uint64 `json:"unique_ips"`
	} `json:"rows"`
}

func statsJSON(t *testing.T, data string, args ...string) statsDoc {
	t.Helper()
	r := mustRun(t, nil, append([]string{"--data", data, "stats", "--json", "--by", "country"}, args...)...)
	var d statsDoc
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("stats JSON: %v\n%s", err, r.stdout)
	}
	return d
}

func compareCountries(t *testing.T, what string, got statsDoc, want *truthPeriod) {
	t.Helper()
	if int(got.UniqueIPs) != want.UniqueIPs {
		t.Errorf("%s: unique_ips %d; truth %d", what, got.UniqueIPs, want.UniqueIPs)
	}
	seen := map[string]bool{}
	for _, row := range got.Rows {
		seen[row.Key] = true
		if w := want.Countries[row.Key].UniqueIPs; int(row.UniqueIPs) != w {
			t.Errorf("%s: %s has %d unique IPs; truth %d", what, row.Key, row.UniqueIPs, w)
		}
	}
	for cc, w := range want.Countries {
		if w.UniqueIPs > 0 && !seen[cc] {
			t.Errorf("%s: %s missing (truth %d)", what, cc, w.UniqueIPs)
		}
	}
}

// The demo with a fixed seed: stats for the last day and the last seven
// days equal the simulator's ground truth per country, the reduction is
// within 0.1 points and the estimate of hosts within 10%.
func TestDemoMatchesTruth(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	truthPath := filepath.Join(dir, "truth.json")
	r := mustRun(t, nil, "--data", data, "demo", "--headless", "--duration", "60s", "--seed", "7",
		"--bots", "1000", "--history-days", "21", "--rate", "20", "--every", "2s", "--truth", truthPath)
	for _, want := range []string{"http://127.0.0.1:8081", "infected IPs (24h):", "since the takedown", "stopped cleanly"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "events of 21 days stored") {
		t.Fatalf("the history did not finish loading within the run:\n%s", r.stdout)
	}
	b, err := os.ReadFile(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	var truth truthFile
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	if len(truth.Daily) == 0 || truth.Last == nil || truth.Baseline == nil {
		t.Fatalf("truth incomplete: %s", b[:min(len(b), 400)])
	}
	lastDay := truth.Daily[len(truth.Daily)-1]
	day := statsJSON(t, data, "--from", lastDay.From.Format(time.RFC3339), "--to", lastDay.To.Format(time.RFC3339))
	compareCountries(t, "last day", day, &lastDay)
	if int(day.ResolverIPs) != lastDay.ResolverIPs {
		t.Errorf("last day: resolver_ips_excluded %d; truth %d", day.ResolverIPs, lastDay.ResolverIPs)
	}

	week := statsJSON(t, data, "--from", truth.Last.From.Format(time.RFC3339), "--to", truth.Last.To.Format(time.RFC3339),
		"--baseline-from", truth.Baseline.From.Format(time.RFC3339), "--baseline-to", truth.Baseline.To.Format(time.RFC3339))
	compareCountries(t, "last seven days", week, truth.Last)
	if week.ReductionPct == nil || math.Abs(*week.ReductionPct-truth.ReductionPct) > 0.1 {
		t.Errorf("reduction %v; truth %.1f", week.ReductionPct, truth.ReductionPct)
	}
	if e, h := float64(week.EstimatedHosts), float64(truth.Last.HostsAlive); math.Abs(e-h) > 0.1*h {
		t.Errorf("estimated_hosts %.0f; truth %.0f hosts (more than 10%% apart)", e, h)
	}
	compareFamilies(t, data, "last day", &lastDay)
	compareFamilies(t, data, "last seven days", truth.Last)
	checkDemoReports(t, data, r.stdout, truth)
	t.Logf("last day %d IPs, last week %d IPs, %d estimated hosts (truth %d), reduction %.1f%% (truth %.1f%%)",
		day.UniqueIPs, week.UniqueIPs, week.EstimatedHosts, truth.Last.HostsAlive, *week.ReductionPct, truth.ReductionPct)
}

// compareFamilyRows checks a stats document grouped by family against the
// truth's distinct addresses per family.
func compareFamilyRows(t *testing.T, what string, got statsDoc, want *truthPeriod) {
	t.Helper()
	rows := map[string]int{}
	for _, row := range got.Rows {
		rows[row.Key] = int(row.UniqueIPs)
	}
	for fam, n := range want.Families {
		if rows[fam] != n {
			t.Errorf("%s: family %s has %d unique IPs; truth %d", what, fam, rows[fam], n)
		}
	}
	for fam, n := range rows {
		if _, ok := want.Families[fam]; !ok && n > 0 {
			t.Errorf("%s: family %s has %d unique IPs; the truth has none", what, fam, n)
		}
	}
}

// compareFamilies: stats --by family over the period equals the truth's
// distinct addresses per family, and the sample order's DGA family
// (newgoz, issue 19) is there beside Rustock.
func compareFamilies(t *testing.T, data, what string, want *truthPeriod) {
	t.Helper()
	r := mustRun(t, nil, "--data", data, "stats", "--json", "--by", "family",
		"--from", want.From.Format(time.RFC3339), "--to", want.To.Format(time.RFC3339))
	var got statsDoc
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stats JSON: %v\n%s", err, r.stdout)
	}
	compareFamilyRows(t, what, got, want)
	if want.Families["newgoz"] == 0 || want.Families["rustock"] == 0 {
		t.Errorf("%s: truth families %v; the demo should show newgoz (its DGA) and rustock", what, want.Families)
	}
}

// checkDemoReports: once its history is loaded, the demo delivers
// yesterday's reports into the data dir's maildir through the ledger: one
// mail per subscriber, each national CERT's CSV listing exactly the
// addresses the truth has for its country that day.
func checkDemoReports(t *testing.T, data, stdout string, truth truthFile) {
	t.Helper()
	if !strings.Contains(stdout, "notifications for ") {
		t.Fatalf("the demo did not report its notifications:\n%s", stdout)
	}
	var yesterday *truthPeriod
	for i := range truth.Daily {
		if d := truth.Daily[i]; d.To.Equal(time.Now().UTC().Truncate(24 * time.Hour)) {
			yesterday = &truth.Daily[i]
		}
	}
	if yesterday == nil {
		t.Fatal("the truth has no day ending at today's midnight")
	}
	var status struct {
		Deliveries []struct {
			Subscriber string `json:"subscriber"`
			State      string `json:"state"`
			Rows       int    `json:"rows"`
			MessageID  string `json:"message_id"`
		} `json:"deliveries"`
	}
	r := mustRun(t, nil, "--data", data, "notify", "status", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &status); err != nil {
		t.Fatalf("notify status: %v\n%s", err, r.stdout)
	}
	ledger := status.Deliveries
	files, err := filepath.Glob(filepath.Join(data, "mailbox", "new", "*"))
	if err != nil || len(files) != len(ledger) || len(ledger) < 2 {
		t.Fatalf("%d mails in the maildir, %d reports in the ledger (%v)", len(files), len(ledger), err)
	}
	byID := map[string][]string{} // Message-ID: the report CSVs
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		id, csvs := reportCSVs(t, b)
		byID[id] = csvs
	}
	for _, d := range ledger {
		report, ok := byID[d.MessageID]
		if d.State != "sent" || !ok {
			t.Errorf("%s: state %s, mail found %v", d.Subscriber, d.State, ok)
			continue
		}
		cc, isCERT := strings.CutPrefix(d.Subscriber, "cert-")
		if !isCERT {
			continue
		}
		addrs, rows := map[string]bool{}, 0
		for _, c := range report {
			recs, err := csv.NewReader(strings.NewReader(c)).ReadAll()
			if err != nil || len(recs) < 1 {
				t.Fatalf("%s: CSV: %v", d.Subscriber, err)
			}
			col := slices.Index(recs[0], "src_ip")
			if col < 0 {
				t.Fatalf("%s: no src_ip column: %v", d.Subscriber, recs[0])
			}
			for _, rec := range recs[1:] {
				addrs[rec[col]] = true
			}
			rows += len(recs) - 1
		}
		if want := yesterday.Countries[strings.ToUpper(cc)].UniqueIPs; len(addrs) != want || rows != d.Rows {
			t.Errorf("%s: %d addresses in %d rows (ledger %d); truth %d", d.Subscriber, len(addrs), rows, d.Rows, want)
		}
	}
}

// reportCSVs returns a report mail's Message-ID and its CSV attachments.
func reportCSVs(t *testing.T, raw []byte) (string, []string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var out []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(p.FileName(), ".csv") {
			continue
		}
		var r io.Reader = p // quoted-printable is decoded by the reader
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	if len(out) == 0 {
		t.Fatalf("no CSV attachment in %s", m.Header.Get("Message-Id"))
	}
	return m.Header.Get("Message-Id"), out
}
