// Package dnssink is the authoritative DNS server for seized names: every
// active domain indicator (the name and all its subdomains) and host
// indicator (exactly that name) answers A and AAAA with the sinkhole
// addresses, SOA and NS at the apex, NODATA otherwise; everything else is
// REFUSED. It never recurses, forwards or relays. Every query becomes an
// event, handed off without ever blocking the answer.
//
// It is not a general DNS server. The answer path is one designed function
// rather than a chain of handlers (house style, rule 2) because it is the
// hottest path of the product: it parses only the question from the wire,
// answers from prebuilt templates and does not allocate for the common case.
// Anything unusual (compressed questions, EDNS options, several additional
// records) goes through miekg/dns and then the same answer builder.
package dnssink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/sockdrop"
)

// Addrs are sinkhole addresses: what seized names resolve to.
type Addrs struct {
	A    []netip.Addr
	AAAA []netip.Addr
}

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	// Listen addresses (host:port); the server answers on UDP and TCP on
	// each. Port 0 picks a free port, the same for UDP and TCP.
	Listen []string
	// Registry is the registry watcher the server reads its seized names
	// from (the app's, shared with the connection sinkhole). When nil, the
	// server watches Source itself, polling every PollInterval.
	Registry Registry
	// Source gives the active indicators; required when Registry is nil.
	Source registry.Source
	// Events receives one event per query; nil discards them.
	Events event.Handoff
	// Sensor names this server in events.
	Sensor string
	// Sinkhole is the global answer; PerCase overrides it for a case.
	Sinkhole Addrs
	PerCase  map[string]Addrs
	// TTL of answers, default 300 seconds.
	TTL uint32
	// NS names served at every apex (and the SOA MNAME is the first);
	// default ns1.sinkhole.invalid.
	NS []string
	// SOAContact is the SOA RNAME, as a name or a mail address; default
	// hostmaster.<NS[0]>.
	SOAContact string
	// UDPSize is the EDNS UDP payload size advertised and used, default 1232.
	UDPSize uint16
	// RRL is response rate limiting, on by default.
	RRL RRL
	// TrustedProxies may send PROXY protocol v2 headers (UDP) and v1 or v2
	// (TCP); nil trusts nobody.
	TrustedProxies *proxyproto.Trust
	// TCPIdleTimeout closes a TCP connection that sends nothing for this
	// long, default 10 seconds.
	TCPIdleTimeout time.Duration
	// TCPMaxConns caps open TCP connections, default 1024; connections
	// beyond it are closed at once (and counted).
	TCPMaxConns int
	// TCPPerSource caps open TCP connections from one source (an IPv4
	// address, an IPv6 /64; behind a trusted proxy, the PROXY header's
	// source), default DefaultTCPPerSource; connections beyond it are
	// closed at once (and counted), so that one source cannot take the
	// TCPMaxConns that every resolver shares.
	TCPPerSource int
	// UDPWorkers is the number of UDP sockets (SO_REUSEPORT) per listen
	// address, each with its own goroutine; default GOMAXPROCS.
	UDPWorkers int
	// PollInterval is how often the registry serial is polled, default 1s
	// (only without Registry: a shared watcher has its own interval).
	PollInterval time.Duration
	// Logger, nil for none.
	Logger *slog.Logger
	// Registerer receives the takedown_dns_* metrics; nil for none.
	Registerer prometheus.Registerer
	// Now is the clock (a test seam); nil for time.Now.
	Now func() time.Time
}

// Registry is what the server reads of a registry watcher: the snapshot in
// force and a notification of each new one. *registry.Watcher implements
// it.
type Registry interface {
	Load() *registry.Snapshot
	Subscribe() (<-chan struct{}, func())
}

var _ Registry = (*registry.Watcher)(nil)

// Server is the DNS sinkhole. New binds its sockets and loads the registry;
// Run serves until its context ends.
//
// Locks: reloadMu and connsMu are never held together (connsMu also
// guards perSource); reloadMu orders every swap of the answer data (a
// registry snapshot followed, a reload committed); the answer path
// takes none (it reads the snapshot through an atomic pointer), except the
// rate limiter's per-shard lock, taken alone.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	// What a reload (Stage, Commit) changes, each swapped whole; the
	// answer path reads them through atomic pointers.
	cfg          atomic.Pointer[zoneConfig]
	rrl          atomic.Pointer[limiter] // nil: rate limiting off
	rrlOpts      RRL                     // the limiter's options; under reloadMu
	trust        atomic.Pointer[proxyproto.Trust]
	tcpPerSource atomic.Int32

	reg Registry          // the registry snapshots followed
	own *registry.Watcher // the watcher of Options.Source when no Registry was given; Run runs it

	snap snapshotPtr

	udp []*net.UDPConn
	tcp []*net.TCPListener

	reloadMu sync.Mutex // serialises rebuilds

	connsMu   sync.Mutex // guards conns and perSource
	conns     map[net.Conn]struct{}
	perSource map[netip.Addr]int32 // open TCP connections per tcpSource

	tcpCounters *counters
	workerPool  sync.Pool // *worker for TCP messages
}

// New validates opts, binds every listen address on UDP and TCP and builds
// the answer data from the registry's snapshot. The caller must call Run
// (which closes the sockets when it returns) or Close.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Source == nil && opts.Registry == nil {
		return nil, errors.New("dns sinkhole needs a registry source")
	}
	if len(opts.Listen) == 0 {
		return nil, errors.New("dns sinkhole needs at least one listen address")
	}
	if opts.UDPSize == 0 {
		opts.UDPSize = 1232
	}
	if opts.UDPSize < minUDPSize {
		return nil, fmt.Errorf("dns sinkhole: udp size %d is below 512", opts.UDPSize)
	}
	if opts.TCPIdleTimeout <= 0 {
		opts.TCPIdleTimeout = 10 * time.Second
	}
	if opts.TCPMaxConns <= 0 {
		opts.TCPMaxConns = 1024
	}
	if opts.UDPWorkers <= 0 {
		opts.UDPWorkers = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(),
		conns:   map[net.Conn]struct{}{},

		perSource: map[netip.Addr]int32{},
	}
	st, err := s.settings(opts.settings())
	if err != nil {
		return nil, err
	}
	s.apply(st)
	s.metrics.rrl = &s.rrl
	s.tcpCounters = s.metrics.newShard()
	s.workerPool.New = func() any { return s.newWorker(s.tcpCounters) }
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.metrics); err != nil {
			return nil, fmt.Errorf("dns sinkhole metrics: %w", err)
		}
	}
	s.reg = opts.Registry
	if s.reg == nil {
		w, err := registry.NewWatcher(ctx, registry.WatcherOptions{Source: opts.Source, Poll: opts.PollInterval,
			Logger: s.log, Now: opts.Now})
		if err != nil {
			return nil, fmt.Errorf("dns sinkhole: loading the registry: %w", err)
		}
		s.own, s.reg = w, w
	}
	if err := s.rebuild(); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// listen binds UDPWorkers UDP sockets and one TCP listener per address.
func (s *Server) listen() error {
	for _, addr := range s.opts.Listen {
		var lastErr error
		// With port 0, retry a few times: the port picked for UDP may be
		// taken for TCP.
		for range 10 {
			lastErr = s.listenOne(addr)
			if lastErr == nil || !strings.HasSuffix(addr, ":0") {
				break
			}
		}
		if lastErr != nil {
			return lastErr
		}
	}
	cs := slices.Clone(s.udp)
	s.metrics.udpConns.Store(&cs)
	return nil
}

func (s *Server) listenOne(addr string) error {
	lc := net.ListenConfig{Control: reusePort}
	ctx := context.Background()
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("dns sinkhole: listen udp %s: %w", addr, err)
	}
	first := pc.(*net.UDPConn)
	bound := first.LocalAddr().String()
	conns := []*net.UDPConn{first}
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for i := 1; i < s.opts.UDPWorkers && reusePortWorks; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", bound)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns sinkhole: listen udp %s (socket %d): %w", bound, i+1, err)
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	l, err := net.Listen("tcp", bound)
	if err != nil {
		closeAll()
		return fmt.Errorf("dns sinkhole: listen tcp %s: %w", bound, err)
	}
	s.udp = append(s.udp, conns...)
	s.tcp = append(s.tcp, l.(*net.TCPListener))
	return nil
}

// UDPAddrs returns the bound UDP addresses, one per listen address.
func (s *Server) UDPAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	seen := map[netip.AddrPort]bool{}
	for _, c := range s.udp {
		a := c.LocalAddr().(*net.UDPAddr).AddrPort()
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// TCPAddrs returns the bound TCP addresses, one per listen address.
func (s *Server) TCPAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.tcp))
	for i, l := range s.tcp {
		out[i] = l.Addr().(*net.TCPAddr).AddrPort()
	}
	return out
}

// Addr returns the first bound address (UDP and TCP share it), handy for
// tests and the demo.
func (s *Server) Addr() netip.AddrPort { return s.TCPAddrs()[0] }

// Stats returns a snapshot of the server's counters (the values its
// metrics export).
func (s *Server) Stats() Stats {
	_, st := s.metrics.sum()
	return st
}

// Close releases the sockets of a server that was never run; Run calls it
// as it stops. It is idempotent (a socket closed twice is not an error
// here).
func (s *Server) Close() error {
	if cs := s.metrics.udpConns.Swap(nil); cs != nil {
		s.metrics.udpDropsClosed.Add(sockdrop.Sum(*cs))
	}
	for _, c := range s.udp {
		c.Close()
	}
	for _, l := range s.tcp {
		l.Close()
	}
	return nil
}

// Run serves until ctx ends, then closes the sockets and open TCP
// connections, waits for every goroutine it started and returns nil.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range s.udp {
		w := s.newWorker(s.metrics.newShard())
		wg.Go(func() { s.serveUDP(c, w) })
	}
	for _, l := range s.tcp {
		wg.Go(func() { s.serveTCP(ctx, l, &wg) })
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watch sync.WaitGroup
	updates, unsubscribe := s.reg.Subscribe()
	defer unsubscribe()
	watch.Go(func() { s.follow(watchCtx, updates) })
	if s.own != nil {
		watch.Go(func() { _ = s.own.Run(watchCtx) })
	}
	s.log.Info("dns sinkhole serving", "udp", s.UDPAddrs(), "tcp", s.TCPAddrs(), "zones", s.metrics.zones.Load())

	<-ctx.Done()
	stopWatch()
	watch.Wait()
	s.Close()
	s.connsMu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.connsMu.Unlock()
	wg.Wait()
	s.log.Info("dns sinkhole stopped")
	return nil
}

// Reload re-reads the registry now (a server watching its own Source) or
// takes the shared watcher's snapshot in force, and swaps the answer data;
// on failure the previous data stays.
func (s *Server) Reload(ctx context.Context) error {
	if s.own != nil {
		if err := s.own.Refresh(ctx); err != nil {
			s.metrics.reloads.Add(1)
			s.metrics.reloadFails.Add(1)
			s.metrics.lastReloadOK.Store(false)
			return fmt.Errorf("dns sinkhole: loading the registry: %w", err)
		}
	}
	return s.rebuild()
}

// Settings are what a configuration reload may change on a running
// Server: the answers, rate limiting, trust and limits. Zero values take
// Options' defaults.
type Settings struct {
	Sinkhole       Addrs
	PerCase        map[string]Addrs
	TTL            uint32
	NS             []string
	SOAContact     string
	RRL            RRL
	TrustedProxies *proxyproto.Trust
	TCPPerSource   int
	PollInterval   time.Duration
}

func (o *Options) settings() Settings {
	return Settings{Sinkhole: o.Sinkhole, PerCase: o.PerCase, TTL: o.TTL, NS: o.NS, SOAContact: o.SOAContact, RRL: o.RRL,
		TrustedProxies: o.TrustedProxies, TCPPerSource: o.TCPPerSource, PollInterval: o.PollInterval}
}

// Staged is a Server's next state, built by Stage and put in force by
// Commit; dropping it releases it.
type Staged struct {
	cfg     *zoneConfig
	snap    *snapshot // nil: built at apply (New)
	reg     *registry.Snapshot
	rrlOpts RRL
	rrl     *limiter
	keepRRL bool // the limiter's options did not change: keep its state
	trust   *proxyproto.Trust
	perSrc  int32
	poll    time.Duration
}

// settings checks st and builds what does not need the registry.
func (s *Server) settings(st Settings) (*Staged, error) {
	if st.TTL == 0 {
		st.TTL = 300
	}
	if len(st.NS) == 0 {
		st.NS = []string{"ns1.sinkhole.invalid"}
	}
	if st.SOAContact == "" {
		st.SOAContact = "hostmaster." + strings.TrimSuffix(st.NS[0], ".")
	}
	if st.TCPPerSource <= 0 {
		st.TCPPerSource = DefaultTCPPerSource
	}
	if st.PollInterval <= 0 {
		st.PollInterval = time.Second
	}
	contact := st.SOAContact
	if at := strings.IndexByte(contact, '@'); at >= 0 {
		// RFC 1035 mailbox: the local part becomes the first label.
		contact = strings.ReplaceAll(contact[:at], ".", `\.`) + "." + contact[at+1:]
	}
	cfg := &zoneConfig{ttl: st.TTL, ns: st.NS, contact: contact, sinkhole: st.Sinkhole, perCase: st.PerCase,
		udpSize: s.opts.UDPSize, negTTLSOA: st.TTL, refresh: 3600, retry: 600, expireSecs: 1209600}
	// The names must pack: check them once here rather than at every load.
	if _, err := buildSnapshot(&registry.ActiveSet{}, cfg); err != nil {
		return nil, fmt.Errorf("dns sinkhole: %w", err)
	}
	out := &Staged{cfg: cfg, rrlOpts: st.RRL, trust: st.TrustedProxies, perSrc: int32(min(st.TCPPerSource, 1<<30)), poll: st.PollInterval}
	return out, nil
}

// Stage builds the state st describes, the answer data from the registry
// snapshot reg included, without putting it in force. A nil reg is the
// snapshot in force, read again first by a server that watches its own
// Source. A rate limiter whose options did not change keeps its state
// across the Commit.
func (s *Server) Stage(ctx context.Context, st Settings, reg *registry.Snapshot) (*Staged, error) {
	out, err := s.settings(st)
	if err != nil {
		return nil, err
	}
	if reg == nil && s.own != nil {
		if reg, err = s.own.Read(ctx); err != nil {
			return nil, fmt.Errorf("dns sinkhole: loading the registry: %w", err)
		}
	}
	if reg == nil {
		reg = s.reg.Load()
	}
	out.reg = reg
	if out.snap, err = buildFrom(reg, out.cfg); err != nil {
		return nil, fmt.Errorf("dns sinkhole: %w", err)
	}
	s.reloadMu.Lock()
	out.keepRRL = reflect.DeepEqual(out.rrlOpts, s.rrlOpts)
	s.reloadMu.Unlock()
	if !out.keepRRL {
		out.rrl = newLimiter(out.rrlOpts)
	}
	return out, nil
}

// Commit puts what Stage built in force, all at once for every later
// query. A query already being answered finishes with the old state. When
// the registry published a newer snapshot since Stage, the answer data is
// rebuilt from it with the staged settings, so a commit never goes back.
func (s *Server) Commit(st *Staged) {
	if s.own != nil && st.reg != nil {
		s.own.Publish(st.reg) // kept only if nothing newer was read since
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if cur := s.reg.Load(); st.reg != nil && cur != st.reg && cur.At.After(st.reg.At) {
		if snap, err := buildFrom(cur, st.cfg); err == nil {
			st.snap = snap
		}
	}
	s.apply(st)
}

// apply swaps st in; reloadMu is held (or s is not yet shared).
func (s *Server) apply(st *Staged) {
	s.cfg.Store(st.cfg)
	if st.snap != nil {
		s.storeSnap(st.snap)
	}
	if !st.keepRRL {
		if st.rrl == nil {
			st.rrl = newLimiter(st.rrlOpts)
		}
		if old := s.rrl.Swap(st.rrl); old != nil {
			s.metrics.rrlEvictedBefore.Add(old.evicted.Load())
		}
		s.rrlOpts = st.rrlOpts
	}
	s.trust.Store(st.trust)
	s.tcpPerSource.Store(st.perSrc)
	if s.own != nil {
		s.own.SetPoll(st.poll)
	}
}

// rebuild builds the answer data from the registry snapshot in force with
// the settings in force, and swaps it in; on failure the previous data
// stays.
func (s *Server) rebuild() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.metrics.reloads.Add(1)
	snap, err := buildFrom(s.reg.Load(), s.cfg.Load())
	if err != nil {
		s.metrics.reloadFails.Add(1)
		s.metrics.lastReloadOK.Store(false)
		return fmt.Errorf("dns sinkhole: building the answer data: %w", err)
	}
	s.storeSnap(snap)
	return nil
}

// buildFrom is buildSnapshot of a registry snapshot, remembering it.
func buildFrom(reg *registry.Snapshot, c *zoneConfig) (*snapshot, error) {
	snap, err := buildSnapshot(reg.Set, c)
	if err != nil {
		return nil, err
	}
	snap.from = reg
	return snap, nil
}

// storeSnap puts snap in force; reloadMu is held.
func (s *Server) storeSnap(snap *snapshot) {
	old := s.snap.Load()
	s.snap.Store(snap)
	s.metrics.zones.Store(int64(snap.zones))
	s.metrics.serial.Store(snap.serial)
	s.metrics.lastReloadOK.Store(true)
	if old == nil || old.serial != snap.serial || old.zones != snap.zones {
		s.log.Info("dns sinkhole data loaded", "serial", snap.serial, "zones", snap.zones, "next_change", snap.next)
	}
}

// follow rebuilds the answer data whenever the registry publishes a new
// snapshot (the watcher times expiries and starts to their instants; the
// answer path also skips an entry past its expiry before the rebuild). A
// failed build keeps the previous data and is retried at the next
// publication.
func (s *Server) follow(ctx context.Context, updates <-chan struct{}) {
	for {
		// A snapshot published before the subscription is caught here.
		if s.snap.Load().from != s.reg.Load() {
			if err := s.rebuild(); err != nil {
				s.log.Error("dns sinkhole: rebuild failed, keeping the previous data", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-updates:
		}
	}
}
