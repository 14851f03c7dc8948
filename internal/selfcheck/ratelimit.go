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
//
// The client is the address the check answers for, which is only ever the
// TCP peer, the source in a trusted proxy's PROXY header, or the address a
// configured forwarder wrote into X-Forwarded-For: never a value the
// visitor chose (see clientAddr).
type RateLimit struct {
	// Rate is the checks per second a client earns back (default 0.2:
	// one every five seconds).
	Rate float64
	// Burst is the most checks in a row (default 10).
	Burst int
	// MaxClients bounds the memory of the limiter (default 65,536
	// clients). When it is full, the client that was seen least recently
	// is forgotten to make room: one entry, never the whole table.
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

// limiter is the per-client token bucket. One mutex guards the map and
// the recency list; the work under it is a map lookup, some arithmetic and
// a few pointer moves.
//
// Why the least recently seen client goes when the table is full: its
// bucket has had the longest to refill (every bucket refills at the same
// rate), so forgetting it tends to give back the fewest checks. A spent
// bucket is forgotten only after MaxClients other clients have come since;
// an attacker who holds that many addresses (an IPv6 /48 is 65,536 /64s)
// already has a burst for each, and clears no one else's limit wholesale.
// The previous design refused every new client while the table was full,
// which let such an attacker lock everyone else out.
type limiter struct {
	cfg     RateLimit
	mu      sync.Mutex
	buckets map[netip.Prefix]*bucket
	// oldest and newest end the list of buckets by last use.
	oldest, newest *bucket
}

type bucket struct {
	key        netip.Prefix
	tokens     float64
	at         time.Time
	prev, next *bucket // prev is older, next newer
}

func newLimiter(cfg RateLimit) *limiter {
	return &limiter{cfg: cfg.withDefaults(), buckets: map[netip.Prefix]*bucket{}}
}

// clientKey is the bucket of an address: an IPv4 address, or the /64 of
// an IPv6 one (IPv4-mapped addresses count as IPv4; zones are dropped).
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
	b := l.buckets[k]
	if b == nil {
		l.forgetRefilled(now, 2)
		if len(l.buckets) >= l.cfg.MaxClients {
			l.remove(l.oldest)
		}
		b = &bucket{key: k, tokens: burst, at: now}
		l.buckets[k] = b
	} else {
		l.unlink(b)
	}
	l.pushNewest(b)
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(burst, b.tokens+el*l.cfg.Rate)
	}
	if now.After(b.at) {
		b.at = now
	}
	if b.tokens < 1 {
		wait := (1 - b.tokens) / l.cfg.Rate
		return false, time.Duration(wait * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// forgetRefilled drops up to n of the oldest buckets that have refilled
// (forgetting them changes nothing), so that the table shrinks back after
// a crowd has gone. Callers hold l.mu.
func (l *limiter) forgetRefilled(now time.Time, n int) {
	burst := float64(l.cfg.Burst)
	for ; n > 0 && l.oldest != nil; n-- {
		b := l.oldest
		if b.tokens+now.Sub(b.at).Seconds()*l.cfg.Rate < burst {
			return
		}
		l.remove(b)
	}
}

// remove forgets b. Callers hold l.mu.
func (l *limiter) remove(b *bucket) {
	if b == nil {
		return
	}
	l.unlink(b)
	delete(l.buckets, b.key)
}

func (l *limiter) unlink(b *bucket) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		l.oldest = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		l.newest = b.prev
	}
	b.prev, b.next = nil, nil
}

func (l *limiter) pushNewest(b *bucket) {
	b.prev = l.newest
	if l.newest != nil {
		l.newest.next = b
	} else {
		l.oldest = b
	}
	l.newest = b
}

// clients is how many buckets the limiter holds.
func (l *limiter) clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
