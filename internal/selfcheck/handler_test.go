package selfcheck

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestAnswer(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name, addr     string
		status         string
		families       []string // family:first:last:days
		resolver       []string
		cleanupName    string // of the first family
		noteSubstrings []string
	}{
		{name: "infected", addr: infected, status: StatusSeen,
			families: []string{"rustock:2011-09-04:2011-09-12:3"}, cleanupName: "Rustock",
			noteSubstrings: []string{"shared"}},
		{name: "second, ipv6, two families", addr: second, status: StatusSeen,
			families: []string{"kelihos:2011-09-13:2011-09-13:1", "unknown:2011-09-11:2011-09-11:1"}, cleanupName: "Botnet malware"},
		{name: "resolver only", addr: resolver, status: StatusResolverOnly,
			resolver: []string{"rustock:2011-09-08:2011-09-08:1"}, noteSubstrings: []string{"resolver"}},
		{name: "not seen", addr: clean, status: StatusNotSeen,
			noteSubstrings: []string{"did not contact", "does not tell you"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", APIPath, nil)
			rec := f.do(t, req, netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 4711).String())
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			a := decodeAnswer(t, rec.Body.String())
			if a.Address != tc.addr || a.Status != tc.status || a.Infected != (tc.status == StatusSeen) {
				t.Fatalf("answer %+v", a)
			}
			if a.Window != (Window{From: "2011-08-31", To: "2011-09-13", Days: 14}) {
				t.Errorf("window %+v", a.Window)
			}
			if got := famStrings(a.Families); !slices.Equal(got, tc.families) {
				t.Errorf("families %v, want %v", got, tc.families)
			}
			if got := famStrings(a.ResolverFamilies); !slices.Equal(got, tc.resolver) {
				t.Errorf("resolver families %v, want %v", got, tc.resolver)
			}
			if tc.cleanupName != "" && (a.Families[0].Cleanup == nil || a.Families[0].Cleanup.Name != tc.cleanupName || len(a.Families[0].Cleanup.Tools) == 0) {
				t.Errorf("cleanup of %s: %+v", a.Families[0].Family, a.Families[0].Cleanup)
			}
			for _, r := range a.ResolverFamilies {
				if r.Cleanup != nil {
					t.Errorf("resolver family %s carries clean-up advice", r.Family)
				}
			}
			notes := strings.Join(a.Notes, " ")
			for _, s := range tc.noteSubstrings {
				if !strings.Contains(notes, s) {
					t.Errorf("notes lack %q: %s", s, notes)
				}
			}
		})
	}
}

func famStrings(fs []Family) []string {
	var out []string
	for _, f := range fs {
		out = append(out, strings.Join([]string{f.Family, f.FirstSeen, f.LastSeen, strconv.Itoa(f.DaysSeen)}, ":"))
	}
	return out
}

// Nothing the visitor sends chooses the address: only the connection's
// remote address, and X-Forwarded-For from a trusted forwarder (10/8 in
// the fixture).
func TestOnlyOwnAddress(t *testing.T) {
	f := newFixture(t, nil)
	other := infected
	tests := []struct {
		name, method, target, remote string
		header                       map[string]string
		body                         string
		want                         string // looked up; "" for none
		status                       int
	}{
		{name: "plain", target: "/", remote: "192.0.2.9:1234", want: "192.0.2.9"},
		{name: "query ip", target: "/?ip=" + other + "&addr=" + other + "&address=" + other, remote: "192.0.2.9:1234", want: "192.0.2.9"},
		{name: "api query", target: APIPath + "?ip=" + other, remote: "192.0.2.9:1234", want: "192.0.2.9"},
		{name: "path suffix", target: APIPath + "/" + other, remote: "192.0.2.9:1234", status: 404},
		{name: "xff untrusted", target: "/", remote: "192.0.2.9:1234", header: map[string]string{"X-Forwarded-For": other}, want: "192.0.2.9"},
		{name: "x-real-ip", target: "/", remote: "192.0.2.9:1234", header: map[string]string{"X-Real-IP": other}, want: "192.0.2.9"},
		{name: "forwarded", target: "/", remote: "192.0.2.9:1234", header: map[string]string{"Forwarded": "for=" + other}, want: "192.0.2.9"},
		{name: "forwarded from trusted", target: "/", remote: "10.1.1.1:80", header: map[string]string{"Forwarded": "for=" + other}, want: "10.1.1.1"},
		{name: "x-real-ip from trusted", target: "/", remote: "10.1.1.1:80", header: map[string]string{"X-Real-IP": other}, want: "10.1.1.1"},
		{name: "client-ip, true-client-ip, cf", target: "/", remote: "192.0.2.9:1234", header: map[string]string{"Client-IP": other, "True-Client-IP": other, "CF-Connecting-IP": other, "X-Client-IP": other}, want: "192.0.2.9"},
		{name: "cookie", target: "/", remote: "192.0.2.9:1234", header: map[string]string{"Cookie": "ip=" + other}, want: "192.0.2.9"},
		{name: "json body on get", target: APIPath, remote: "192.0.2.9:1234", header: map[string]string{"Content-Type": "application/json"}, body: `{"ip":"` + other + `"}`, want: "192.0.2.9"},
		{name: "json post", method: "POST", target: APIPath, remote: "192.0.2.9:1234", header: map[string]string{"Content-Type": "application/json"}, body: `{"ip":"` + other + `"}`, status: 405},
		{name: "form post", method: "POST", target: "/", remote: "192.0.2.9:1234", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "ip=" + other, status: 405},
		{name: "xff trusted", target: "/", remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": other}, want: other},
		{name: "xff trusted, spoofed left entry", target: "/", remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": other + ", 192.0.2.77"}, want: "192.0.2.77"},
		{name: "xff trusted chain", target: "/", remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": other + ", 192.0.2.77, 10.2.2.2"}, want: "192.0.2.77"},
		{name: "xff with port", target: "/", remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": "[2001:db8::9]:443"}, want: "2001:db8::9"},
		{name: "xff garbage from trusted", target: "/", remote: "10.1.1.1:80", header: map[string]string{"X-Forwarded-For": "not-an-address"}, status: 400},
		{name: "ipv4-mapped peer", target: "/", remote: "[::ffff:192.0.2.9]:1234", want: "192.0.2.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.store.asked = nil
			method := tc.method
			if method == "" {
				method = "GET"
			}
			req := httptest.NewRequest(method, tc.target, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := f.do(t, req, tc.remote)
			want := tc.status
			if want == 0 {
				want = 200
			}
			if rec.Code != want {
				t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
			}
			asked := f.store.Asked()
			if tc.want == "" {
				if len(asked) != 0 {
					t.Fatalf("looked up %v", asked)
				}
				return
			}
			if len(asked) != 1 || asked[0] != netip.MustParseAddr(tc.want) {
				t.Fatalf("looked up %v, want %s", asked, tc.want)
			}
			if strings.Contains(rec.Body.String(), other) && tc.want != other {
				t.Fatalf("the answer mentions %s:\n%s", other, rec.Body)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, nil)
	for _, target := range []string{"/", APIPath, "/selfcheck.css", "/nope"} {
		t.Run(target, func(t *testing.T) {
			rec := f.do(t, httptest.NewRequest("GET", target, nil), infected+":1")
			h := rec.Header()
			want := map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
				"X-Content-Type-Options":  "nosniff",
			}
			for k, v := range want {
				if h.Get(k) != v {
					t.Errorf("%s: %q, want %q", k, h.Get(k), v)
				}
			}
			if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("CSP %q", h.Get("Content-Security-Policy"))
			}
			if target != "/selfcheck.css" && h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
			}
			if h.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("CORS allowed: %q", h.Get("Access-Control-Allow-Origin"))
			}
		})
	}
}

func TestPage(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		addr, status string
		want         []string
		not          []string
	}{
		{infected, "seen", []string{"Your address contacted the sinkhole", "Rustock", "2011-09-04", "2011-09-12", "Microsoft Safety Scanner",
			`href="https://learn.microsoft.com/en-us/defender-endpoint/safety-scanner-download"`, "Microsoft Defender Offline", "may be shared"}, []string{"Not seen"}},
		{resolver, "resolver_only", []string{"as a DNS resolver", "2011-09-08"}, []string{"Microsoft Safety Scanner", "contacted the sinkhole"}},
		{clean, "not_seen", []string{"Not seen", "last 14 days", "does not tell you"}, []string{"Rustock"}},
	}
	for _, tc := range tests {
		t.Run(tc.status, func(t *testing.T) {
			rec := f.do(t, httptest.NewRequest("GET", "/", nil), tc.addr+":1")
			body := rec.Body.String()
			if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("status %d, type %s", rec.Code, rec.Header().Get("Content-Type"))
			}
			if !strings.Contains(body, `data-status="`+tc.status+`"`) {
				t.Errorf("no status %s in page", tc.status)
			}
			for _, s := range append(tc.want, tc.addr) {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range append(tc.not, "⟦", "<script") {
				if strings.Contains(body, s) {
					t.Errorf("page has %q", s)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, nil)
	for _, a := range []string{infected, infected, second, resolver, clean} {
		if rec := f.do(t, httptest.NewRequest("GET", APIPath, nil), netip.AddrPortFrom(netip.MustParseAddr(a), 1).String()); rec.Code != 200 {
			t.Fatal(rec.Code)
		}
	}
	m := f.srv.m
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"checks", counterValue(t, m.checks), 5},
		{"rustock", counterValue(t, m.positives.WithLabelValues("rustock")), 2},
		{"kelihos", counterValue(t, m.positives.WithLabelValues("kelihos")), 1},
		{"unknown", counterValue(t, m.positives.WithLabelValues("unknown")), 1},
		{"resolver", counterValue(t, m.resolvers), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// Stats, which the dashboard reads, agrees with the metrics.
	if got, want := f.srv.Stats(), (Stats{Checks: 5, Positive: 4, ResolverOnly: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	// No metric carries an address.
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.Metric {
			for _, l := range mt.Label {
				if _, err := netip.ParseAddr(l.GetValue()); err == nil {
					t.Errorf("%s has an address label %s", mf.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestStoreError(t *testing.T) {
	f := newFixture(t, nil)
	f.store.err = errors.New("disk on fire")
	rec := f.do(t, httptest.NewRequest("GET", APIPath, nil), clean+":1")
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "fire") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if n := counterValue(t, f.srv.m.refused.WithLabelValues(reasonStore)); n != 1 {
		t.Fatalf("store errors %v", n)
	}
	if n := counterValue(t, f.srv.m.checks); n != 0 {
		t.Fatalf("checks %v after a failure", n)
	}
}

func TestLanguage(t *testing.T) {
	f := newFixture(t, nil)
	req := httptest.NewRequest("GET", APIPath, nil)
	req.Header.Set("Accept-Language", "fr-CH, fr;q=0.9, de;q=0.8")
	rec := f.do(t, req, clean+":1")
	if a := decodeAnswer(t, rec.Body.String()); a.Language != "en" {
		t.Fatalf("language %q without a French catalogue", a.Language)
	}
	rec = f.do(t, httptest.NewRequest("GET", "/", nil), clean+":1")
	if !strings.Contains(rec.Body.String(), `<html lang="en">`) {
		t.Fatal("page not marked English")
	}
}

// counterValue reads a counter.
func counterValue(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
