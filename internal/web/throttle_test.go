package web

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func fixedNow() func() time.Time {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { return t0 }
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		same       bool
	}{
		{"ipv6 same /64", "[2001:db8:1:2::1]:4000", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:5000", true},
		{"ipv6 other /64", "[2001:db8:1:2::1]:4000", "[2001:db8:1:3::1]:4000", false},
		{"ipv6 zone ignored", "[fe80::1%eth0]:1", "[fe80::2%eth1]:1", true},
		{"ipv4 per address", "192.0.2.1:1", "192.0.2.2:1", false},
		{"ipv4 ports ignored", "192.0.2.1:1", "192.0.2.1:2", true},
		{"ipv4-mapped is ipv4", "[::ffff:192.0.2.1]:1", "192.0.2.1:9", true},
		{"bare address", "2001:db8::1", "[2001:db8::2]:80", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientKey(tc.a) == clientKey(tc.b); got != tc.same {
				t.Errorf("clientKey(%s)=%v, clientKey(%s)=%v: same %v, want %v", tc.a, clientKey(tc.a), tc.b, clientKey(tc.b), got, tc.same)
			}
		})
	}
}

// Parallel attempts all reserve before any is hashed: exactly max pass.
func TestThrottleReserveIsAtomic(t *testing.T) {
	th := newThrottle(10, 15*time.Minute, fixedNow())
	key := clientKey("192.0.2.1:1")
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if ok, _ := th.reserve(key); ok {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 10 {
		t.Fatalf("%d of 200 parallel attempts passed, want 10", passed.Load())
	}
	if ok, wait := th.reserve(key); ok || wait <= 0 || wait > 15*time.Minute {
		t.Fatalf("after the limit: ok %v, wait %v", ok, wait)
	}
}

func TestThrottleReleaseAndSucceed(t *testing.T) {
	th := newThrottle(2, time.Minute, fixedNow())
	key := clientKey("192.0.2.1:1")
	th.reserve(key)
	th.release(key) // never hashed: not a failure
	if n, _ := th.size(); n != 0 {
		t.Fatalf("a released reservation left %d entries", n)
	}
	th.reserve(key)
	th.reserve(key)
	if ok, _ := th.reserve(key); ok {
		t.Fatal("third failure allowed with max 2")
	}
	th.succeed(key)
	if ok, _ := th.reserve(key); !ok {
		t.Fatal("a success did not forget the failures")
	}
}

func TestThrottleWindowEnds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(1, time.Minute, func() time.Time { return now })
	key := clientKey("192.0.2.1:1")
	th.reserve(key)
	if ok, _ := th.reserve(key); ok {
		t.Fatal("second failure allowed with max 1")
	}
	now = now.Add(time.Minute)
	if ok, _ := th.reserve(key); !ok {
		t.Fatal("still locked out after the window")
	}
}

// A flood of new addresses evicts one entry at a time, never a lockout
// while entries that are not locked out remain, and never everything.
func TestThrottleEvictionKeepsLockouts(t *testing.T) {
	th := newThrottle(3, 15*time.Minute, fixedNow())
	th.limit = 100
	locked := clientKey("198.51.100.7:1")
	for range 3 {
		th.reserve(locked)
	}
	for i := range 10 * th.limit {
		k := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		if ok, _ := th.reserve(k); !ok {
			t.Fatalf("new address %v refused", k)
		}
	}
	if ok, _ := th.reserve(locked); ok {
		t.Fatal("the flood lifted the lockout")
	}
	n, evicted := th.size()
	if n != th.limit || evicted != uint64(10*th.limit-th.limit+1) {
		t.Fatalf("size %d, evicted %d; want %d and %d", n, evicted, th.limit, 10*th.limit-th.limit+1)
	}
	// When every entry is locked out, the oldest goes, one at a time.
	for i := range th.limit {
		k := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), 32)
		for range 3 {
			th.reserve(k)
		}
	}
	if ok, _ := th.reserve(locked); !ok {
		t.Fatal("the oldest lockout should be the one evicted when all are locked out")
	}
	if n, _ := th.size(); n != th.limit {
		t.Fatalf("size %d, want %d", n, th.limit)
	}
}

// The IPv6 key is the /64: rotating the interface identifier changes
// nothing.
func TestThrottleIPv6Rotation(t *testing.T) {
	th := newThrottle(5, 15*time.Minute, fixedNow())
	passed := 0
	for i := range 1000 {
		if ok, _ := th.reserve(clientKey(fmt.Sprintf("[2001:db8:5:6::%x]:443", i+1))); ok {
			passed++
		}
	}
	if passed != 5 {
		t.Fatalf("%d attempts from one /64 passed, want 5", passed)
	}
}

func BenchmarkThrottleFull(b *testing.B) {
	th := newThrottle(10, 15*time.Minute, fixedNow())
	i := 0
	for b.Loop() {
		i++
		th.reserve(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
}
