package api_test

import (
	"bytes"
	"testing"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
	"github.com/takedown/takedown/internal/stats"
)

// TestStatsASOrg: rows grouped by ASN name the AS organisation that
// Options.ASOrg knows, in /stats and /series; rows of an AS it does not
// know, and rows grouped otherwise, have no org.
func TestStatsASOrg(t *testing.T) {
	names := map[uint32]string{64501: "Deutsche Beispiel AG", 64502: "Example Networks, Inc.", 64503: "Exemplo Telecom", 64504: "Rei Networks"}
	var asked []uint32
	e := newEnv(t, func(o *api.Options, _ *apitest.Fixture) {
		o.ASOrg = func(asn uint32) string {
			asked = append(asked, asn)
			return names[asn]
		}
	})
	check := func(what string, rows []stats.Row) {
		t.Helper()
		if len(rows) != 5 {
			t.Fatalf("%s: %d rows, want the fixture's 5 ASNs: %+v", what, len(rows), rows)
		}
		for _, r := range rows {
			want := map[string]string{"64501": names[64501], "64502": names[64502], "64503": names[64503], "64504": names[64504], "64505": ""}[r.Key]
			if r.Org != want {
				t.Errorf("%s: row %s org %q, want %q", what, r.Key, r.Org, want)
			}
		}
	}
	code, body := e.get(t, "/api/v1/stats?by=asn", "analyst")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	check("stats", decode[stats.Result](t, body).Rows)
	if !bytes.Contains(body, []byte(`"org": "Example Networks, Inc."`)) {
		t.Errorf("stats JSON has no org field: %s", body)
	}
	code, body = e.get(t, "/api/v1/series?window=1d&by=asn", "analyst")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	s := decode[stats.Series](t, body)
	if len(s.Points) == 0 {
		t.Fatalf("series without points: %s", body)
	}
	check("series", s.Points[len(s.Points)-1].Rows)

	asked = nil
	_, body = e.get(t, "/api/v1/stats?by=country", "analyst")
	if len(asked) != 0 || bytes.Contains(body, []byte(`"org"`)) {
		t.Errorf("by=country asked for %v and answered %s", asked, body)
	}
}
