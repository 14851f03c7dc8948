package selfcheck

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// RateLimit bounds the checks one client may make: a token bucket per
// client (an IPv4 address, or an IPv6 /64, since one IPv6 host commonly
// holds a whole /64 and could otherwise rotate through it).
type RateLimit struct {
	// Rate is the checks per second a client earns back (default 0.2:
	// one every five seconds).
	Rate float64
	// Burst is the most checks in a row (default 10).
	Burst int
	// MaxClients bounds the memory of the limiter (default 65,536
	// clients). When that many clients hold partly used buckets, a new
	// client is refused until buckets refill: the store is protected
	// rather than the limit forgotten.
	MaxClients int
}

func (r RateLimit) withDefaults() RateLimit {
	if r.Rate <= 0 {
		r.Rate = 0.2
	}
	if r.Burst <= 0 {
		r.Burst = 10
	}
	if r.MaxClients <= 0 {
		r.MaxClients = 65536
	}
	return r
}

// limiter is the per-client token bucket. One mutex guards the map; the
// work under it is a map lookup and some arithmetic.
type limiter struct {
	cfg     RateLimit
	mu      sync.Mutex
	buckets map[netip.Prefix]bucket
	swept   time.Time // last sweep: at most one a second
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(cfg RateLimit) *limiter {
	return &limiter{cfg: cfg.withDefaults(), buckets: map[netip.Prefix]bucket{}}
}

// clientKey is the bucket of an address.
func clientKey(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// allow takes a token for a at now. When none is left it returns false and
// how long until one is.
func (l *limiter) allow(a netip.Addr, now time.Time) (bool, time.Duration) {
	k := clientKey(a)
	burst := float64(l.cfg.Burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.cfg.MaxClients && now.Sub(l.swept) >= time.Second {
			l.sweep(now)
		}
		if len(l.buckets) >= l.cfg.MaxClients {
			return false, time.Duration(float64(time.Second) / l.cfg.Rate)
		}
		b = bucket{tokens: burst, at: now}
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(burst, b.tokens+el*l.cfg.Rate)
	}
	b.at = now
	if b.tokens < 1 {
		l.buckets[k] = b
		wait := (1 - b.tokens) / l.cfg.Rate
		return false, time.Duration(wait * float64(time.Second))
	}
	b.tokens--
	l.buckets[k] = b
	return true, 0
}

// sweep forgets the buckets that have refilled: forgetting them changes
// nothing. Callers hold l.mu.
func (l *limiter) sweep(now time.Time) {
	l.swept = now
	burst := float64(l.cfg.Burst)
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.cfg.Rate >= burst {
			delete(l.buckets, k)
		}
	}
}
