package stats_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/stats"
)

// TestFormatASOrg: rows grouped by ASN carry the AS organisation that
// NameASNs found, in the table (after the figures), CSV (an org column)
// and JSON (org); an AS without a name and the rest row have none, and
// other groupings neither ask nor change.
func TestFormatASOrg(t *testing.T) {
	u := func(n uint64) *uint64 { return &n }
	p := func(v float64) *float64 { return &v }
	names := map[uint32]string{3320: "Deutsche Telekom AG", 13335: "Cloudflare, Inc.\x1b[31m"} // a control character is not printed
	r := &stats.Result{
		From: time.Date(2011, 9, 6, 0, 0, 0, 0, time.UTC), To: time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC),
		UniqueIPs: 1500, EstimatedHosts: 1400, Estimate: stats.Estimate{Method: "identifiers"},
		Baseline: &stats.Baseline{From: time.Date(2011, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2011, 3, 8, 0, 0, 0, 0, time.UTC), UniqueIPs: 6000},
		By:       stats.ByASN,
		Rows: []stats.Row{
			{Key: "3320", UniqueIPs: 1000, BaselineUniqueIPs: u(4000), ReductionPct: p(75)},
			{Key: "13335", UniqueIPs: 300, BaselineUniqueIPs: u(1200), ReductionPct: p(75)},
			{Key: "64512", UniqueIPs: 150, BaselineUniqueIPs: u(600), ReductionPct: p(75)},
			{Key: "unknown", UniqueIPs: 50, BaselineUniqueIPs: u(200), ReductionPct: p(75)},
		},
	}
	r.NameASNs(func(asn uint32) string { return names[asn] })
	if got := []string{r.Rows[0].Org, r.Rows[1].Org, r.Rows[2].Org, r.Rows[3].Org}; got[0] != "Deutsche Telekom AG" || got[1] != names[13335] || got[2] != "" || got[3] != "" {
		t.Fatalf("orgs %q", got)
	}
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"asn.table", func(b *bytes.Buffer) error { return stats.WriteTable(b, r) }},
		{"asn.csv", func(b *bytes.Buffer) error { return stats.WriteCSV(b, r) }},
		{"asn.json", func(b *bytes.Buffer) error {
			e := json.NewEncoder(b)
			e.SetIndent("", " ")
			return e.Encode(r)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}

	s := &stats.Series{By: stats.ByASN, Every: stats.Daily, Points: []stats.Point{{
		From: r.From, To: r.From.Add(24 * time.Hour), UniqueIPs: 1300,
		Rows: []stats.Row{{Key: "3320", UniqueIPs: 1000}, {Key: "64512", UniqueIPs: 300}},
	}}}
	s.NameASNs(func(asn uint32) string { return names[asn] })
	var b bytes.Buffer
	if err := stats.WriteSeriesCSV(&b, s); err != nil {
		t.Fatal(err)
	}
	want := "from,to,key,unique_ips,estimated_hosts,resolver_ips_excluded,org\n" +
		"2011-09-06T00:00:00Z,2011-09-07T00:00:00Z,all,1300,0,0,\n" +
		"2011-09-06T00:00:00Z,2011-09-07T00:00:00Z,3320,1000,,,Deutsche Telekom AG\n" +
		"2011-09-06T00:00:00Z,2011-09-07T00:00:00Z,64512,300,,,\n"
	if b.String() != want {
		t.Errorf("series CSV:\n%s\nwant:\n%s", b.String(), want)
	}

	// Grouped by country: nothing is asked, the CSV has no org column.
	c := &stats.Result{By: stats.ByCountry, Rows: []stats.Row{{Key: "3320", UniqueIPs: 1}}}
	c.NameASNs(func(uint32) string { t.Fatal("asked for a name of a country row"); return "" })
	b.Reset()
	if err := stats.WriteCSV(&b, c); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("org")) {
		t.Errorf("country CSV has an org column:\n%s", b.Bytes())
	}
}
