package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/netscope"
)

// inScope is the network token's view: AS64501 (DE) and 2001:db8:1::/48 (JP).
func inScope(ip string) bool {
	n, _ := netscope.ParseNetworks("AS64501,2001:db8:1::/48")
	for _, h := range apitest.Hosts {
		if h.IP == ip {
			return n.Covers(netip.MustParseAddr(ip), h.ASN, h.Country)
		}
	}
	return false
}

func eventRows(t *testing.T, e *env, query, tok string) ([]api.EventRow, string) {
	t.Helper()
	code, body := e.get(t, "/api/v1/events?"+query, tok)
	if code != 200 {
		t.Fatalf("%s: status %d: %s", query, code, body)
	}
	d := decode[struct {
		Rows []api.EventRow `json:"rows"`
		Next string         `json:"next_cursor"`
	}](t, body)
	return d.Rows, d.Next
}

func TestEventsScope(t *testing.T) {
	e := newEnv(t, nil)
	all, _ := eventRows(t, e, "window=24h", "analyst")
	if len(all) != len(apitest.Hosts) {
		t.Fatalf("analyst sees %d rows, want %d (the resolver is not a row)", len(all), len(apitest.Hosts))
	}
	want := 0
	for _, h := range apitest.Hosts {
		if inScope(h.IP) {
			want++
		}
	}
	if want != 11 {
		t.Fatalf("fixture: %d hosts in scope, want 11", want)
	}
	// Attempts to reach others' data: each must return only rows in scope.
	attempts := []struct {
		query   string
		maxRows int
	}{
		{"window=24h", want},
		{"window=30d", 2 * want}, // today and three days ago
		{"window=24h&cidr=203.0.113.0/24", 0},
		{"window=24h&cidr=0.0.0.0/0", 6},
		{"window=24h&cidr=::/0", 5},
		{"window=24h&cidr=::ffff:203.0.113.0/120", 0},
		{"window=24h&cidr=203.0.113.1", 0},
		{"window=24h&asn=64502", 0},
		{"window=24h&asn=AS64501", 6},
		{"window=24h&country=US", 0},
		{"window=24h&country=de", 6},
		{"window=24h&family=zeus", 5},
		{"window=24h&limit=10000", want},
	}
	for _, a := range attempts {
		rows, _ := eventRows(t, e, a.query, "network")
		if len(rows) != a.maxRows {
			t.Errorf("%s: %d rows, want %d", a.query, len(rows), a.maxRows)
		}
		for _, r := range rows {
			if !inScope(r.IP) {
				t.Errorf("%s: leaked %s", a.query, r.IP)
			}
		}
	}
	t.Run("pagination", func(t *testing.T) {
		var got []string
		cur := ""
		for range 20 {
			rows, next := eventRows(t, e, "window=24h&limit=2&cursor="+url.QueryEscape(cur), "network")
			for _, r := range rows {
				got = append(got, r.IP)
			}
			if next == "" {
				break
			}
			cur = next
		}
		if len(got) != want {
			t.Fatalf("paged %d rows %v, want %d", len(got), got, want)
		}
		for _, ip := range got {
			if !inScope(ip) {
				t.Errorf("leaked %s", ip)
			}
		}
	})
	t.Run("guessed cursor", func(t *testing.T) {
		// A cursor crafted from an analyst's page (pointing into the US
		// rows) still yields only the caller's rows.
		_, next := eventRows(t, e, "window=24h&limit=3", "analyst")
		rows, _ := eventRows(t, e, "window=24h&cursor="+url.QueryEscape(next), "network")
		for _, r := range rows {
			if !inScope(r.IP) {
				t.Errorf("leaked %s", r.IP)
			}
		}
		if code, _ := e.get(t, "/api/v1/events?cursor=%21%21", "network"); code != 400 {
			t.Errorf("malformed cursor: %d", code)
		}
	})
	t.Run("csv and jsonl", func(t *testing.T) {
		_, body := e.get(t, "/api/v1/events?window=24h&format=csv", "network")
		recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want+1 || recs[0][1] != "src_ip" {
			t.Fatalf("csv: %d records", len(recs))
		}
		for _, r := range recs[1:] {
			if !inScope(r[1]) {
				t.Errorf("csv leaked %s", r[1])
			}
		}
		_, body = e.get(t, "/api/v1/events?window=24h&format=jsonl", "network")
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if len(lines) != want {
			t.Fatalf("jsonl: %d lines", len(lines))
		}
		for _, l := range lines {
			var r api.EventRow
			if err := json.Unmarshal([]byte(l), &r); err != nil || !inScope(r.IP) {
				t.Errorf("jsonl row %s: %v", l, err)
			}
		}
	})
	t.Run("country token", func(t *testing.T) {
		rows, _ := eventRows(t, e, "window=24h", "network-fr")
		if len(rows) != 2 {
			t.Fatalf("FR token: %d rows", len(rows))
		}
		for _, r := range rows {
			if r.Country != "FR" {
				t.Errorf("FR token saw %s in %s", r.IP, r.Country)
			}
		}
	})
}
