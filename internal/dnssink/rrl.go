package dnssink

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RRL configures response rate limiting: a token bucket per client block
// (/24 IPv4, /56 IPv6) and kind of response, as BIND and NSD key them (see
// rrlClass), so the sinkhole cannot be used to reflect traffic at a spoofed
// victim. It applies to UDP only; TCP proves the source address.
type RRL struct {
	// Disabled turns rate limiting off (it is on by default).
	Disabled bool
	// ResponsesPerSecond per block and response; default 200 (NSD's).
	ResponsesPerSecond int
	// Window is how long a block's excess is remembered; default 15s.
	Window time.Duration
	// Slip: every Slip-th limited response is sent truncated (TC=1, so a
	// real resolver retries over TCP) and the others are dropped; 1 sends
	// every one truncated. 0 means the default 2; a negative value never
	// slips: every limited response is dropped (BIND's and NSD's slip 0).
	Slip int
	// IPv4Prefix and IPv6Prefix are the client block sizes; default 24, 56.
	IPv4Prefix, IPv6Prefix int
	// TableSize bounds the buckets remembered (BIND's max-table-size,
	// NSD's rrl-size); default 262144, about 12 MB when full. When it is
	// full a new bucket replaces an old one that carries the least state
	// (see limiter.victim); the table is never cleared wholesale.
	TableSize int
	// Exempt clients are never limited (the operator's own resolvers).
	Exempt []netip.Prefix
}

// DefaultRRLTableSize is RRL.TableSize's default.
const DefaultRRLTableSize = 1 << 18

// rrlVerdict is what the limiter decided for one response.
type rrlVerdict uint8

const (
	rrlPass rrlVerdict = iota
	rrlDrop
	rrlSlip
)

// Kinds of response, as BIND and NSD tell them apart for rate limiting.
const (
	rrlAnswer uint64 = iota + 1 // NOERROR with records
	rrlEmpty                    // NODATA and NXDOMAIN
	rrlError                    // REFUSED, FORMERR, NOTIMP, BADVERS …
)

// rrlClass is what a response is charged to besides the client block:
//
//   - an answer (NOERROR with records) by zone and query type. A seized
//     domain answers every name below it alike, as a wildcard does, and
//     BIND and NSD count wildcard answers by the wildcard's owner, so a
//     name counts as its zone: spraying random subdomains buys nothing.
//     Only A, AAAA, ANY and, at the apex, SOA and NS carry records, so a
//     client block gets at most five budgets per zone.
//   - NODATA and NXDOMAIN by zone alone, whatever the query type (BIND
//     counts them by the SOA's owner, the zone), so spraying query types
//     buys nothing either.
//   - errors (REFUSED for names not seized, and malformed queries) by the
//     client block alone, whatever the name or type, as BIND does.
func rrlClass(rcode int, z *zone, qtype uint16, answered bool) uint64 {
	switch {
	case z == nil || (rcode != rcodeNoError && rcode != rcodeNXDomain):
		return rrlError << 56
	case rcode == rcodeNoError && answered:
		return rrlAnswer<<56 | uint64(z.id)<<16 | uint64(qtype)
	default:
		return rrlEmpty<<56 | uint64(z.id)<<16
	}
}

const rrlShards = 64

// limiter is a sharded table of token buckets keyed by a hash of (client
// block, class). Its memory is bounded: each shard holds at most perShard
// buckets in a slice it reuses, so that charging a response never
// allocates once the table has grown.
type limiter struct {
	rate     float64 // tokens per second
	debt     float64 // most negative balance: rate × window
	slip     int     // 0: never
	v4, v6   int
	exempt   []netip.Prefix
	seed     maphash.Seed
	perShard int
	evicted  atomic.Uint64 // buckets replaced in a full shard
	shards   [rrlShards]rrlShard
}

// rrlShard is one lock's worth of buckets, in a list from the most
// recently used (head) to the least (tail), linked by slice index.
type rrlShard struct {
	mu         sync.Mutex
	index      map[uint64]int32
	b          []bucket
	head, tail int32    // -1 when empty
	_          [32]byte // keep shards on separate cache lines
}

type bucket struct {
	key        uint64
	last       int64 // unix nanoseconds
	tokens     float64
	slips      uint32
	prev, next int32
}

// evictScan is how many of a full shard's least recently used buckets are
// looked at to pick the one to replace.
const evictScan = 16

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
	switch {
	case o.Slip == 0:
		o.Slip = 2
	case o.Slip < 0:
		o.Slip = 0
	}
	if o.IPv4Prefix <= 0 || o.IPv4Prefix > 32 {
		o.IPv4Prefix = 24
	}
	if o.IPv6Prefix <= 0 || o.IPv6Prefix > 128 {
		o.IPv6Prefix = 56
	}
	if o.TableSize <= 0 {
		o.TableSize = DefaultRRLTableSize
	}
	l := &limiter{rate: float64(o.ResponsesPerSecond), slip: o.Slip, v4: o.IPv4Prefix, v6: o.IPv6Prefix,
		exempt: o.Exempt, seed: maphash.MakeSeed(), perShard: max(1, o.TableSize/rrlShards)}
	l.debt = -l.rate * o.Window.Seconds()
	for i := range l.shards {
		l.shards[i].index = map[uint64]int32{}
		l.shards[i].head, l.shards[i].tail = -1, -1
	}
	return l
}

// check charges one response of class (see rrlClass) to client's block.
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
	var b *bucket
	if i, ok := sh.index[h]; ok {
		sh.touch(i)
		b = &sh.b[i]
		if elapsed := float64(now-b.last) / 1e9; elapsed > 0 {
			b.tokens = min(l.rate, b.tokens+elapsed*l.rate)
			b.last = now
		}
	} else {
		b = &sh.b[l.add(sh, h, now)]
	}
	b.tokens--
	if b.tokens >= 0 {
		return rrlPass
	}
	b.tokens = max(b.tokens, l.debt)
	if l.slip > 0 {
		b.slips++
		if b.slips%uint32(l.slip) == 0 {
			return rrlSlip
		}
	}
	return rrlDrop
}

// add makes a full bucket for key at the head of sh and returns its index:
// a new slot while the shard has room, else the slot of l.victim.
func (l *limiter) add(sh *rrlShard, key uint64, now int64) int32 {
	var i int32
	if len(sh.b) < l.perShard {
		i = int32(len(sh.b))
		sh.b = append(sh.b, bucket{})
	} else {
		i = l.victim(sh, now)
		delete(sh.index, sh.b[i].key)
		sh.unlink(i)
		l.evicted.Add(1)
	}
	sh.b[i] = bucket{key: key, tokens: l.rate, last: now, prev: -1, next: -1}
	sh.index[key] = i
	sh.pushFront(i)
	return i
}

// victim picks the bucket of a full shard to replace: among the evictScan
// least recently used, the oldest that has refilled (it holds no state: a
// new bucket would be the same), else the one with the most tokens. A
// bucket in debt, a limit being enforced, so outlives a flood of one-off
// keys however many there are: to push it out, an attacker must put
// evictScan buckets deeper in debt, paying for each in responses limited.
func (l *limiter) victim(sh *rrlShard, now int64) int32 {
	best, bestTokens := sh.tail, 0.0
	i := sh.tail
	for n := 0; n < evictScan && i >= 0; n++ {
		b := &sh.b[i]
		t := b.tokens + float64(now-b.last)/1e9*l.rate
		if t >= l.rate {
			return i
		}
		if n == 0 || t > bestTokens {
			best, bestTokens = i, t
		}
		i = b.prev
	}
	return best
}

func (sh *rrlShard) pushFront(i int32) {
	sh.b[i].prev, sh.b[i].next = -1, sh.head
	if sh.head >= 0 {
		sh.b[sh.head].prev = i
	}
	sh.head = i
	if sh.tail < 0 {
		sh.tail = i
	}
}

func (sh *rrlShard) unlink(i int32) {
	b := &sh.b[i]
	if b.prev >= 0 {
		sh.b[b.prev].next = b.next
	} else {
		sh.head = b.next
	}
	if b.next >= 0 {
		sh.b[b.next].prev = b.prev
	} else {
		sh.tail = b.prev
	}
	b.prev, b.next = -1, -1
}

// touch makes i the most recently used bucket.
func (sh *rrlShard) touch(i int32) {
	if sh.head == i {
		return
	}
	sh.unlink(i)
	sh.pushFront(i)
}
