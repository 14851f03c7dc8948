package web

import (
	"net"
	"sync"
	"time"
)

// throttle limits failed logins per client address: after max failures
// within window, logins from that address are refused until the window
// ends. Memory is bounded: past maxClients addresses it forgets the
// oldest windows first (by clearing expired ones, then everything).
type throttle struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex // guards clients
	clients map[string]*failures
}

type failures struct {
	n     int
	until time.Time
}

const maxClients = 10000

func newThrottle(max int, window time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, window: window, now: now, clients: map[string]*failures{}}
}

func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// blocked reports whether addr has used up its failures.
func (t *throttle) blocked(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.clients[clientKey(addr)]
	if !ok {
		return false
	}
	if !t.now().Before(f.until) {
		delete(t.clients, clientKey(addr))
		return false
	}
	return f.n >= t.max
}

// fail records a failed login from addr.
func (t *throttle) fail(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	k := clientKey(addr)
	f, ok := t.clients[k]
	if !ok || !now.Before(f.until) {
		if len(t.clients) >= maxClients {
			for k, f := range t.clients {
				if !now.Before(f.until) {
					delete(t.clients, k)
				}
			}
			if len(t.clients) >= maxClients {
				clear(t.clients)
			}
		}
		f = &failures{until: now.Add(t.window)}
		t.clients[k] = f
	}
	f.n++
}

// succeed forgets addr's failures.
func (t *throttle) succeed(addr string) {
	t.mu.Lock()
	delete(t.clients, clientKey(addr))
	t.mu.Unlock()
}
