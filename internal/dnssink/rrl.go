package dnssink

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// RRL configures response rate limiting: a token bucket per client block
// (/24 IPv4, /56 IPv6) and response, as BIND and NSD do, so the sinkhole
// cannot be used to reflect traffic at a spoofed victim. It applies to UDP
// only; TCP proves the source address.
type RRL struct {
	// Disabled turns rate limiting off (it is on by default).
	Disabled bool
	// ResponsesPerSecond per block and response; default 200 (NSD's).
	ResponsesPerSecond int
	// Window is how long a block's excess is remembered; default 15s.
	Window time.Duration
	// Slip: every Slip-th limited response is sent truncated (TC=1, so a
	// real resolver retries over TCP) and the others are dropped. 0 means
	// the default 2; a negative value drops them all.
	Slip int
	// IPv4Prefix and IPv6Prefix are the client block sizes; default 24, 56.
	IPv4Prefix, IPv6Prefix int
	// Exempt clients are never limited (the operator's own resolvers).
	Exempt []netip.Prefix
}

// rrlVerdict is what the limiter decided for one response.
type rrlVerdict uint8

const (
	rrlPass rrlVerdict = iota
	rrlDrop
	rrlSlip
)

const rrlShards = 64

// limiter is a sharded table of token buckets keyed by a hash of (client
// block, response). Its memory is bounded: each shard holds at most
// maxPerShard buckets and forgets idle ones when it is full.
type limiter struct {
	rate       float64 // tokens per second
	debt       float64 // most negative balance: rate × window
	slip       int
	v4, v6     int
	exempt     []netip.Prefix
	seed       maphash.Seed
	shards     [rrlShards]rrlShard
	maxPerShrd int
}

type rrlShard struct {
	mu sync.Mutex
	m  map[uint64]*bucket
	_  [40]byte // keep shards on separate cache lines
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds
	slips  int
}

func newLimiter(o RRL) *limiter {
	if o.Disabled {
		return nil
	}
	if o.ResponsesPerSecond <= 0 {
		o.ResponsesPerSecond = 200
	}
	if o.Window <= 0 {
		o.Window = 15 * time.Second
	}
	if o.Slip == 0 {
		o.Slip = 2
	}
	if o.IPv4Prefix <= 0 || o.IPv4Prefix > 32 {
		o.IPv4Prefix = 24
	}
	if o.IPv6Prefix <= 0 || o.IPv6Prefix > 128 {
		o.IPv6Prefix = 56
	}
	l := &limiter{rate: float64(o.ResponsesPerSecond), slip: o.Slip, v4: o.IPv4Prefix, v6: o.IPv6Prefix,
		exempt: o.Exempt, seed: maphash.MakeSeed(), maxPerShrd: 4096}
	l.debt = -l.rate * o.Window.Seconds()
	for i := range l.shards {
		l.shards[i].m = map[uint64]*bucket{}
	}
	return l
}

// check charges one response identified by class (zone, type and kind of
// answer) to client's block.
func (l *limiter) check(client netip.Addr, class uint64, now int64) rrlVerdict {
	client = client.Unmap()
	for _, p := range l.exempt {
		if p.Contains(client) {
			return rrlPass
		}
	}
	var key [16 + 8]byte
	if client.Is4() {
		p, _ := client.Prefix(l.v4)
		a := p.Addr().As4()
		copy(key[:], a[:])
	} else {
		p, _ := client.Prefix(l.v6)
		a := p.Addr().As16()
		copy(key[:], a[:])
		key[15] ^= 0x6 // v4 and v6 blocks never share a bucket
	}
	binary.LittleEndian.PutUint64(key[16:], class)
	h := maphash.Bytes(l.seed, key[:])
	sh := &l.shards[h%rrlShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.m[h]
	if b == nil {
		if len(sh.m) >= l.maxPerShrd {
			l.evict(sh, now)
		}
		b = &bucket{tokens: l.rate, last: now}
		sh.m[h] = b
	}
	elapsed := float64(now-b.last) / 1e9
	if elapsed > 0 {
		b.tokens = min(l.rate, b.tokens+elapsed*l.rate)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return rrlPass
	}
	b.tokens = max(b.tokens, l.debt)
	if l.slip > 0 {
		b.slips++
		if b.slips%l.slip == 0 {
			return rrlSlip
		}
	}
	return rrlDrop
}

// evict forgets buckets that are full again (idle for a second or more),
// or, when none are, the whole shard: a flood of distinct keys costs
// limiting accuracy, never unbounded memory.
func (l *limiter) evict(sh *rrlShard, now int64) {
	for k, b := range sh.m {
		if b.tokens+float64(now-b.last)/1e9*l.rate >= l.rate {
			delete(sh.m, k)
		}
	}
	if len(sh.m) >= l.maxPerShrd {
		clear(sh.m)
	}
}
