package web

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// throttle limits failed logins per client network: after max failures
// within window, logins from that network are refused until the window
// ends. A client network is an IPv4 address or an IPv6 /64 (one
// subscriber's allocation: rotating addresses inside it changes nothing).
//
// A failure is counted when the attempt is reserved, before the password
// is hashed, so N parallel guesses cannot all pass the check: at most max
// of them are ever hashed per window. A reservation whose password was
// never checked (the server was busy) is released; a right password
// forgets the network's failures.
//
// Memory is bounded by limit entries. When full, expired entries go first,
// then the oldest entry that is not locked out, and only when every entry
// is locked out the oldest of them: a flood of new addresses never clears
// the table, and never lifts a lockout while cheaper entries remain.
type throttle struct {
	max    int
	window time.Duration
	limit  int
	now    func() time.Time

	mu      sync.Mutex // guards clients, order, evicted
	clients map[netip.Prefix]*failures
	order   list.List // of *failures, oldest first (by the start of their window)
	evicted uint64
}

type failures struct {
	key   netip.Prefix
	n     int
	until time.Time
	elem  *list.Element
}

// maxClients is how many client networks the throttle tracks.
const maxClients = 10000

func newThrottle(max int, window time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, window: window, limit: maxClients, now: now, clients: map[netip.Prefix]*failures{}}
}

// clientKey is the network the throttle counts addr's failures against:
// the IPv4 address, or the IPv6 /64. addr is an address or address:port;
// anything that does not parse shares one key (the zero Prefix).
func clientKey(addr string) netip.Prefix {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// reserve counts one failed login for key before its password is checked.
// It returns false, and how long the lockout still lasts, when key has no
// failures left.
func (t *throttle) reserve(key netip.Prefix) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f, ok := t.clients[key]
	if ok && !now.Before(f.until) {
		t.remove(f)
		ok = false
	}
	if !ok {
		t.makeRoom(now)
		f = &failures{key: key, until: now.Add(t.window)}
		f.elem = t.order.PushBack(f)
		t.clients[key] = f
	}
	if f.n >= t.max {
		return false, f.until.Sub(now)
	}
	f.n++
	return true, 0
}

// release gives back a reservation whose password was never checked.
func (t *throttle) release(key netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.clients[key]
	if !ok || f.n == 0 {
		return
	}
	f.n--
	if f.n == 0 {
		t.remove(f)
	}
}

// succeed forgets key's failures.
func (t *throttle) succeed(key netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.clients[key]; ok {
		t.remove(f)
	}
}

// size returns how many networks are tracked and how many entries were
// evicted to make room.
func (t *throttle) size() (n int, evicted uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.clients), t.evicted
}

func (t *throttle) remove(f *failures) {
	t.order.Remove(f.elem)
	delete(t.clients, f.key)
}

// makeRoom frees one entry when the table is full: an expired one, else
// the oldest that is not locked out, else the oldest. Entries are in the
// order their windows started, so the expired ones are at the front.
func (t *throttle) makeRoom(now time.Time) {
	if len(t.clients) < t.limit {
		return
	}
	for e := t.order.Front(); e != nil; e = t.order.Front() {
		f := e.Value.(*failures)
		if now.Before(f.until) {
			break
		}
		t.remove(f)
	}
	if len(t.clients) < t.limit {
		return
	}
	t.evicted++
	// Locked-out entries cost an attacker max hashed guesses each, and the
	// hash semaphore bounds those globally: a scan past them is short.
	for e := t.order.Front(); e != nil; e = e.Next() {
		if f := e.Value.(*failures); f.n < t.max {
			t.remove(f)
			return
		}
	}
	t.remove(t.order.Front().Value.(*failures))
}
