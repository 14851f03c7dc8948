package selfcheck

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzForwardedFor: whatever a trusted forwarder sends, the address is the
// peer or one of the listed entries, and never a trusted forwarder when an
// untrusted entry is to its right.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"", "192.0.2.1", "192.0.2.1, 10.0.0.2", "[2001:db8::1]:80", " , ,", "::ffff:10.0.0.1", "fe80::1%eth0", "1.2.3.4:99999", strings.Repeat("10.0.0.1,", 40) + "192.0.2.1"} {
		f.Add(s)
	}
	fwd := trust(f, "10.0.0.0/8")
	peer := netip.MustParseAddr("10.9.9.9")
	f.Fuzz(func(t *testing.T, list string) {
		a, err := forwardedFor(list, peer, fwd)
		if err != nil {
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("forwardedFor(%q) = %v", list, a)
		}
		if a != peer && !strings.Contains(list, strings.TrimPrefix(a.String(), "::ffff:")) && !strings.Contains(strings.ToLower(list), a.String()) {
			// The address must come from the list (possibly written in
			// another form: then it parses to the same address).
			found := false
			for _, item := range strings.Split(list, ",") {
				if h, err := parseHop(strings.TrimSpace(item)); err == nil && h == a {
					found = true
				}
			}
			if !found {
				t.Fatalf("forwardedFor(%q) = %v, not in the list", list, a)
			}
		}
	})
}

// FuzzRequestHeaders: no header value makes an untrusted peer's request
// look up anything but the peer, or crash the handler.
func FuzzRequestHeaders(f *testing.F) {
	f.Add("198.51.100.7", "for=198.51.100.7", "de-DE,de;q=0.9", "ip=198.51.100.7")
	f.Add("", "", "*;q=0.5,,;", "x&ip=::1")
	srv := newFixture(f, func(o *Options) { o.RateLimit = RateLimit{Burst: 1 << 30, Rate: 1e9} })
	f.Fuzz(func(t *testing.T, xff, fwd, lang, query string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.RawQuery = query
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("Forwarded", fwd)
		req.Header.Set("X-Real-IP", xff)
		req.Header.Set("Accept-Language", lang)
		srv.store.mu.Lock()
		srv.store.asked = nil
		srv.store.mu.Unlock()
		rec := srv.do(t, req, "192.0.2.9:1")
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		for _, a := range srv.store.Asked() {
			if a != netip.MustParseAddr("192.0.2.9") {
				t.Fatalf("looked up %v", a)
			}
		}
	})
}
