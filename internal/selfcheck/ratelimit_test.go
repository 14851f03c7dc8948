package selfcheck

import (
	"fmt"
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
	// Full of busy clients: a new one is admitted, and only the least
	// recently seen client is forgotten to make room.
	if ok, _ := l.allow(netip.MustParseAddr("192.0.2.3"), t0.Add(1600*time.Millisecond)); !ok {
		t.Fatal("a new client refused while the table is full: a full table must not lock newcomers out")
	}
	if n := l.clients(); n != 2 {
		t.Fatalf("%d clients held, MaxClients 2", n)
	}
}

// A full table forgets its least recently seen client, one at a time:
// never the whole table, so a flood of new addresses cannot wipe the
// limits of the clients that are still busy.
func TestLimiterEvictsOldest(t *testing.T) {
	l := newLimiter(RateLimit{Rate: 0.001, Burst: 1, MaxClients: 3})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	at := func(i int) time.Time { return now.Add(time.Duration(i) * time.Millisecond) }
	// Clients 1, 2, 3 each spend their only token.
	for i := 1; i <= 3; i++ {
		if ok, _ := l.allow(addr(i), at(i)); !ok {
			t.Fatalf("client %d refused its first check", i)
		}
	}
	// 1 is seen again (refused): now 2 is the least recently seen.
	if ok, _ := l.allow(addr(1), at(4)); ok {
		t.Fatal("client 1 checked twice with a burst of 1")
	}
	// A flood of new clients: each is admitted and takes the oldest slot.
	for i := 10; i < 1000; i++ {
		a := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		if ok, _ := l.allow(a, at(i)); !ok {
			t.Fatalf("new client %s refused its first check", a)
		}
		if n := l.clients(); n > 3 {
			t.Fatalf("%d clients held, MaxClients 3", n)
		}
	}
	// Order of eviction: with two new clients after 1 was seen again,
	// 2 and 3 went first and 1 stayed; checked on a fresh limiter.
	l = newLimiter(RateLimit{Rate: 0.001, Burst: 1, MaxClients: 3})
	for i := 1; i <= 3; i++ {
		l.allow(addr(i), at(i))
	}
	l.allow(addr(1), at(4))
	l.allow(addr(20), at(5)) // evicts 2
	if ok, _ := l.allow(addr(1), at(6)); ok {
		t.Fatal("client 1's spent bucket was forgotten although it was not the oldest")
	}
	if ok, _ := l.allow(addr(3), at(7)); ok {
		t.Fatal("client 3's spent bucket was forgotten although 2 was older")
	}
	if ok, _ := l.allow(addr(20), at(8)); ok {
		t.Fatal("the newcomer's spent bucket was forgotten")
	}
	if ok, _ := l.allow(addr(2), at(9)); !ok {
		t.Fatal("client 2, the oldest, was not the one forgotten")
	}
}

// Buckets that have refilled are forgotten as new clients arrive, so the
// table shrinks back once a crowd has gone.
func TestLimiterForgetsRefilled(t *testing.T) {
	l := newLimiter(RateLimit{Rate: 1, Burst: 2, MaxClients: 100})
	for i := range 50 {
		l.allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), now)
	}
	later := now.Add(time.Minute)
	for i := range 30 {
		l.allow(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), later)
	}
	// Each newcomer forgets up to two refilled buckets: the 50 are gone.
	if n := l.clients(); n != 30 {
		t.Fatalf("%d clients held after 30 newcomers; want the 30 newcomers only", n)
	}
}

// The bucket is the address answered for: an untrusted peer that rotates
// claimed addresses (X-Forwarded-For and the rest) spends one budget;
// behind a configured forwarder each forwarded client has its own; the
// addresses of one IPv6 /64 share one.
func TestRateLimitKey(t *testing.T) {
	const burst = 3
	f := newFixture(t, func(o *Options) { o.RateLimit = RateLimit{Rate: 0.001, Burst: burst} })
	get := func(remote string, header map[string]string) int {
		req := httptest.NewRequest("GET", APIPath, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return f.do(t, req, remote).Code
	}
	count := func(codes []int) (ok, limited int) {
		for _, c := range codes {
			switch c {
			case 200:
				ok++
			case 429:
				limited++
			}
		}
		return ok, limited
	}
	tests := []struct {
		name    string
		request func(i int) int
		ok      int // of 20
	}{
		{"untrusted peer rotating X-Forwarded-For", func(i int) int {
			a := fmt.Sprintf("198.51.100.%d", i)
			return get("192.0.2.9:1234", map[string]string{"X-Forwarded-For": a, "X-Real-IP": a, "Forwarded": "for=" + a})
		}, burst},
		{"untrusted peer rotating ports", func(i int) int {
			return get(fmt.Sprintf("192.0.2.10:%d", 1000+i), nil)
		}, burst},
		{"one IPv6 /64 rotating addresses", func(i int) int {
			return get(fmt.Sprintf("[2001:db8:1:2::%x]:1234", i+1), nil)
		}, burst},
		{"IPv4-mapped and plain IPv4 are one client", func(i int) int {
			if i%2 == 0 {
				return get("[::ffff:192.0.2.11]:1", nil)
			}
			return get("192.0.2.11:1", nil)
		}, burst},
		{"configured forwarder, one client each", func(i int) int {
			return get("10.1.1.1:80", map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)})
		}, 20},
		{"configured forwarder, one client", func(i int) int {
			return get("10.1.1.2:80", map[string]string{"X-Forwarded-For": "203.0.113.200, 10.9.9.9"})
		}, burst},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var codes []int
			for i := range 20 {
				codes = append(codes, tc.request(i))
			}
			if ok, limited := count(codes); ok != tc.ok || limited != 20-tc.ok {
				t.Fatalf("%d answered, %d rate-limited (%v); want %d answered", ok, limited, codes, tc.ok)
			}
		})
	}
	// Another /64 of the same /48 has its own budget.
	if c := get("[2001:db8:1:3::1]:1234", nil); c != 200 {
		t.Fatalf("another /64: %d", c)
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

// FuzzLimiter drives the limiter with arbitrary clients and clock steps:
// the table never exceeds MaxClients, its recency list holds exactly the
// buckets of its map, newest last, and a new client is never refused.
func FuzzLimiter(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 4, 5, 1, 2, 200, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		l := newLimiter(RateLimit{Rate: 1, Burst: 2, MaxClients: 4})
		at := now
		for i, op := range ops {
			at = at.Add(time.Duration(op>>5) * 300 * time.Millisecond)
			a := netip.AddrFrom4([4]byte{192, 0, 2, op & 0x07})
			if op&0x08 != 0 {
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 7: op & 0x07, 15: byte(i)})
			}
			_, known := l.buckets[clientKey(a)]
			if ok, _ := l.allow(a, at); !ok && !known {
				t.Fatalf("op %d: new client %s refused", i, a)
			}
			if l.newest == nil || l.newest.key != clientKey(a) {
				t.Fatalf("op %d: %s is not the newest", i, a)
			}
			n := 0
			for b := l.oldest; b != nil; b = b.next {
				if l.buckets[b.key] != b || (b.next != nil && b.next.prev != b) {
					t.Fatalf("op %d: the recency list and the map disagree at %s", i, b.key)
				}
				n++
			}
			if n != len(l.buckets) || n > 4 {
				t.Fatalf("op %d: %d in the list, %d in the map, MaxClients 4", i, n, len(l.buckets))
			}
		}
	})
}
