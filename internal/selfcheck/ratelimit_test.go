package selfcheck

import (
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(RateLimit{Rate: 1, Burst: 3, MaxClients: 2})
	a := netip.MustParseAddr("192.0.2.1")
	t0 := now
	for i := range 3 {
		if ok, _ := l.allow(a, t0); !ok {
			t.Fatalf("check %d refused within the burst", i+1)
		}
	}
	ok, wait := l.allow(a, t0)
	if ok || wait != time.Second {
		t.Fatalf("fourth check: ok %v, wait %v", ok, wait)
	}
	if ok, _ := l.allow(a, t0.Add(1500*time.Millisecond)); !ok {
		t.Fatal("no token back after 1.5s at 1/s")
	}
	for i := range 3 {
		if ok, _ := l.allow(netip.MustParseAddr("192.0.2.2"), t0); !ok {
			t.Fatalf("another address shares the bucket (check %d)", i+1)
		}
	}
	// One IPv6 /64 is one client.
	l6 := newLimiter(RateLimit{Rate: 1, Burst: 1})
	if ok, _ := l6.allow(netip.MustParseAddr("2001:db8:1:2::1"), t0); !ok {
		t.Fatal("first IPv6 check refused")
	}
	if ok, _ := l6.allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"), t0); ok {
		t.Fatal("a second address of the same /64 got a fresh bucket")
	}
	if ok, _ := l6.allow(netip.MustParseAddr("2001:db8:1:3::1"), t0); !ok {
		t.Fatal("another /64 shares the bucket")
	}
	// Full of busy clients: a new one waits; once buckets refill, room.
	if ok, _ := l.allow(netip.MustParseAddr("192.0.2.3"), t0.Add(1600*time.Millisecond)); ok {
		t.Fatal("a third client admitted past MaxClients while both buckets are in use")
	}
	if ok, _ := l.allow(netip.MustParseAddr("192.0.2.3"), t0.Add(time.Minute)); !ok {
		t.Fatal("no room after the buckets refilled")
	}
}

func TestRateLimitedResponse(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RateLimit = RateLimit{Rate: 0.1, Burst: 2} })
	codes := []int{}
	var retry string
	for range 3 {
		rec := f.do(t, httptest.NewRequest("GET", APIPath, nil), infected+":1")
		codes = append(codes, rec.Code)
		retry = rec.Header().Get("Retry-After")
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("codes %v", codes)
	}
	if n, err := strconv.Atoi(retry); err != nil || n != 10 {
		t.Fatalf("Retry-After %q, want 10", retry)
	}
	if got := len(f.store.Asked()); got != 2 {
		t.Fatalf("store asked %d times; a refused check must not reach it", got)
	}
	if rec := f.do(t, httptest.NewRequest("GET", APIPath, nil), clean+":1"); rec.Code != 200 {
		t.Fatalf("another address limited too: %d", rec.Code)
	}
	if n := counterValue(t, f.srv.m.refused.WithLabelValues(reasonRateLimited)); n != 1 {
		t.Fatalf("rate-limited counter %v", n)
	}
}
