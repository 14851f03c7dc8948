// Package connsink is the connection sinkhole: HTTP, HTTPS, TCP and UDP
// listeners on the sinkhole addresses that record every bot that connects
// as one [event.Event] and answer with nothing a bot could take as a
// command: a fixed benign HTTP response, a TLS handshake with a certificate
// minted for whatever name it asked for, silence for TCP and UDP.
//
// It is not a web server, a proxy or an honeypot that talks back: it never
// redirects, echoes, relays or serves content. It is not the event pipeline
// either: events are offered to an [event.Handoff] that never blocks.
//
// Each [Listener] binds in [New] (so [Listener.Addr] works before
// [Listener.Run]) and serves until Run's context ends; [Listener.Close]
// releases one that never ran (or stops one that runs).
//
// Lock order: Listener.mu (connection and per-source counts) is the only
// lock on the connection path; the certificate cache has its own lock,
// never held together with Listener.mu.
package connsink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/sockdrop"
)

// Kind is what a listener speaks.
type Kind string

// The listener kinds.
const (
	KindHTTP  Kind = "http"
	KindHTTPS Kind = "https"
	KindTCP   Kind = "tcp"
	KindUDP   Kind = "udp"
)

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindHTTP, KindHTTPS, KindTCP, KindUDP:
		return k, nil
	}
	return "", fmt.Errorf("unknown listener kind %q (want http, https, tcp or udp)", s)
}

// Limits bound what one listener spends on its clients. Zero fields take
// the values of [DefaultLimits].
type Limits struct {
	ReadHeaderTimeout  time.Duration // from the first byte (or accept) to the end of the request headers
	ReadTimeout        time.Duration // for a request body
	IdleTimeout        time.Duration // between keep-alive requests
	WriteTimeout       time.Duration // for one response
	HandshakeTimeout   time.Duration // TLS handshake
	FirstBytesTimeout  time.Duration // TCP catch-all: how long to wait for the first bytes
	QuietTimeout       time.Duration // TCP catch-all: silence after some bytes that ends the read
	MaxHeaderBytes     int           // request line and headers
	MaxBodyBytes       int           // body bytes read and hashed; longer bodies end the connection
	MaxFirstBytes      int           // TCP catch-all: bytes read before closing
	MaxConns           int           // connections open at once, all sources
	MaxConnsPerSource  int           // connections open at once from one source address
	MaxRequestsPerConn int           // keep-alive requests on one connection
}

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout:  10 * time.Second,
		ReadTimeout:        10 * time.Second,
		IdleTimeout:        30 * time.Second,
		WriteTimeout:       10 * time.Second,
		HandshakeTimeout:   10 * time.Second,
		FirstBytesTimeout:  5 * time.Second,
		QuietTimeout:       500 * time.Millisecond,
		MaxHeaderBytes:     8 << 10,
		MaxBodyBytes:       64 << 10,
		MaxFirstBytes:      4 << 10,
		MaxConns:           20000,
		MaxConnsPerSource:  256,
		MaxRequestsPerConn: 10000,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	set(&l.ReadTimeout, d.ReadTimeout)
	set(&l.IdleTimeout, d.IdleTimeout)
	set(&l.WriteTimeout, d.WriteTimeout)
	set(&l.HandshakeTimeout, d.HandshakeTimeout)
	set(&l.FirstBytesTimeout, d.FirstBytesTimeout)
	set(&l.QuietTimeout, d.QuietTimeout)
	seti(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	seti(&l.MaxBodyBytes, d.MaxBodyBytes)
	seti(&l.MaxFirstBytes, d.MaxFirstBytes)
	seti(&l.MaxConns, d.MaxConns)
	seti(&l.MaxConnsPerSource, d.MaxConnsPerSource)
	seti(&l.MaxRequestsPerConn, d.MaxRequestsPerConn)
	l.MaxHeaderBytes = max(l.MaxHeaderBytes, 256)
	return l
}

// Response is the fixed benign HTTP response. Zero Status means 200.
type Response struct {
	Status int
	Body   []byte
}

// IndicatorFunc tells which seized indicator a host name (or, for TCP and
// UDP, the destination address in text form) belongs to.
type IndicatorFunc func(host string) (family, caseID string, ok bool)

// Options configure one listener.
type Options struct {
	Name   string // for logs and metrics; default "<kind>:<addr>"
	Kind   Kind
	Addr   string // host:port; port 0 picks one (see Listener.Addr)
	Sensor string // copied into every event

	// TrustedProxies are the peers whose PROXY protocol v1/v2 headers are
	// believed. Others' connections are taken at face value.
	TrustedProxies *proxyproto.Trust

	Limits   Limits
	Response Response // http and https

	// DataDir holds the sinkhole CA of https listeners ("connsink-ca/"),
	// created at first use. CertCacheSize bounds the minted leaf
	// certificates kept (default 1024).
	DataDir       string
	CertCacheSize int

	// UDPReply, if set, answers each datagram that is at least as long as
	// it; shorter datagrams get nothing. Default: no answer.
	UDPReply []byte

	Handoff    event.Handoff         // required
	Rules      *classify.Rules       // nil: classify.Default(); swap with SetRules
	Indicator  IndicatorFunc         // optional
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are not registered

	Now func() time.Time // test seam; nil: time.Now
}

// Listener is one sinkhole listener.
type Listener struct {
	opts  Options
	lim   Limits
	name  string
	log   *slog.Logger
	m     *metrics
	rules atomic.Pointer[classify.Rules]
	now   func() time.Time
	ln    net.Listener   // tcp kinds
	pc    net.PacketConn // udp
	local netip.AddrPort
	resp  responses
	certs *certMinter // https

	tlsOnce  sync.Once
	tlsCfg   *tls.Config
	stopping atomic.Bool

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	sources map[netip.Addr]int
	closing bool
	wg      sync.WaitGroup
}

// New validates opts and binds the listener's socket.
func New(opts Options) (*Listener, error) {
	if _, err := ParseKind(string(opts.Kind)); err != nil {
		return nil, err
	}
	if opts.Handoff == nil {
		return nil, errors.New("connsink: no event hand-off")
	}
	l := &Listener{opts: opts, lim: opts.Limits.withDefaults(), now: opts.Now, log: opts.Logger,
		conns: map[net.Conn]struct{}{}, sources: map[netip.Addr]int{}}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	rules := opts.Rules
	if rules == nil {
		rules = classify.Default()
	}
	l.rules.Store(rules)
	var err error
	if l.resp, err = buildResponses(opts.Response); err != nil {
		return nil, err
	}
	if opts.Kind == KindHTTPS {
		if opts.DataDir == "" {
			return nil, errors.New("connsink: https listener needs a data dir for its CA")
		}
		if l.certs, err = newCertMinter(opts.DataDir, opts.CertCacheSize, l.now); err != nil {
			return nil, err
		}
	}
	if opts.Kind == KindUDP {
		l.pc, err = net.ListenPacket("udp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("connsink: listen udp %s: %w", opts.Addr, err)
		}
		// A deep receive queue rides out a stall of the reader; what
		// overflows it anyway is counted (udpdrops.go).
		_ = sockdrop.SetReceiveBuffer(l.pc.(*net.UDPConn), sockdrop.ReceiveBuffer)
		l.local = addrPort(l.pc.LocalAddr())
	} else {
		// No TCP keep-alive probes: idle timeouts bound idle clients, and
		// it saves three setsockopt calls per accepted connection.
		lc := net.ListenConfig{KeepAlive: -1}
		l.ln, err = lc.Listen(context.Background(), "tcp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("connsink: listen tcp %s: %w", opts.Addr, err)
		}
		l.local = addrPort(l.ln.Addr())
	}
	l.name = opts.Name
	if l.name == "" {
		l.name = string(opts.Kind) + ":" + l.local.String()
	}
	l.log = l.log.With("listener", l.name)
	l.m = newMetrics(opts.Registerer, l.name)
	if up, ok := l.pc.(*net.UDPConn); ok {
		l.m.udp.add(l.name, up)
	}
	return l, nil
}

// Stats returns a snapshot of the listener's counters (the values its
// metrics export).
func (l *Listener) Stats() Stats {
	st := l.m.stats()
	if up, ok := l.pc.(*net.UDPConn); ok {
		st.SocketDrops, _ = sockdrop.Drops(up)
	}
	return st
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr {
	if l.pc != nil {
		return l.pc.LocalAddr()
	}
	return l.ln.Addr()
}

// Name is the listener's name in logs and metrics.
func (l *Listener) Name() string { return l.name }

// SetRules swaps the classification rules used for new events (reload).
// A nil r is ignored.
func (l *Listener) SetRules(r *classify.Rules) {
	if r != nil {
		l.rules.Store(r)
	}
}

// CACertPEM returns the sinkhole CA certificate of an https listener, nil
// for other kinds.
func (l *Listener) CACertPEM() []byte {
	if l.certs == nil {
		return nil
	}
	return l.certs.caPEM
}

// Run serves until ctx ends, then closes the socket and every open
// connection and returns once all connection goroutines have finished.
func (l *Listener) Run(ctx context.Context) error {
	l.log.Info("connection sinkhole listening", "kind", string(l.opts.Kind), "addr", l.Addr().String())
	stop := context.AfterFunc(ctx, l.shutdown)
	defer stop()
	var err error
	if l.pc != nil {
		err = l.serveUDP()
	} else {
		err = l.acceptLoop()
	}
	l.shutdown()
	l.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close releases the listener's socket and closes its open connections;
// a Run in progress then returns. It is idempotent and safe whether or not
// Run ever ran; a listener closed before Run serves nothing.
func (l *Listener) Close() error {
	l.shutdown()
	return nil
}

func (l *Listener) shutdown() {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return
	}
	l.closing = true
	l.stopping.Store(true)
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
	}
	if l.pc != nil {
		if up, ok := l.pc.(*net.UDPConn); ok {
			l.m.udp.remove(l.name, up)
		}
		l.pc.Close()
	}
	for _, c := range conns {
		c.Close()
	}
}

func (l *Listener) acceptLoop() error {
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// EMFILE and friends: back off as net/http does.
				backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
				l.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("connsink: accept on %s: %w", l.name, err)
		}
		backoff = 0
		peer := addrPort(c.RemoteAddr())
		l.m.accepted.Inc()
		trusted := l.opts.TrustedProxies.Trusted(peer.Addr())
		if !l.admit(c, peer.Addr(), !trusted) {
			c.Close()
			continue
		}
		l.wg.Add(1)
		go l.serve(c, peer, trusted)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// admit counts c against the global cap and, if perSource, against its
// source's cap; false means c must be closed unserved.
func (l *Listener) admit(c net.Conn, src netip.Addr, perSource bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	if len(l.conns) >= l.lim.MaxConns {
		l.m.rejected.WithLabelValues(l.name, "global_cap").Inc()
		return false
	}
	if perSource && !l.countSourceLocked(src) {
		return false
	}
	l.conns[c] = struct{}{}
	l.m.active.Inc()
	return true
}

// admitSource counts a proxied connection against its real source's cap.
func (l *Listener) admitSource(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.countSourceLocked(src)
}

// countSourceLocked counts one more connection of src unless it is at its
// cap; l.mu is held.
func (l *Listener) countSourceLocked(src netip.Addr) bool {
	if l.sources[src] >= l.lim.MaxConnsPerSource {
		l.m.rejected.WithLabelValues(l.name, "source_cap").Inc()
		return false
	}
	l.sources[src]++
	return true
}

func (l *Listener) release(c net.Conn, src netip.Addr, counted bool) {
	l.mu.Lock()
	delete(l.conns, c)
	if counted {
		if n := l.sources[src] - 1; n > 0 {
			l.sources[src] = n
		} else {
			delete(l.sources, src)
		}
	}
	l.mu.Unlock()
	l.m.active.Dec()
}

// conn is the per-connection state shared by the TCP-based kinds.
type conn struct {
	net.Conn
	l        *Listener
	src, dst netip.AddrPort // after PROXY
	br       *bufioReader   // pooled, nil while idle
	tls      *tls.Conn      // https, after the handshake
	chunk    *[]byte        // pooled; holds pending
	pending  []byte         // bytes read by readFirst, not yet consumed
}

// serve runs one TCP-based connection: PROXY header (trusted peers only),
// then the kind's protocol.
func (l *Listener) serve(c net.Conn, peer netip.AddrPort, trusted bool) {
	defer l.wg.Done()
	cc := &conn{Conn: c, l: l, src: peer, dst: addrPort(c.LocalAddr())}
	counted := !trusted
	defer func() {
		cc.putReader()
		c.Close()
		l.release(c, cc.src.Addr(), counted)
	}()
	if trusted {
		c.SetReadDeadline(l.now().Add(l.lim.ReadHeaderTimeout))
		cc.getReader()
		h, err := proxyproto.Read(cc.br.Reader)
		switch {
		case err == nil && h.Proxied():
			cc.src = h.Src
			if h.Dst.IsValid() {
				cc.dst = h.Dst
			}
		case err == nil, errors.Is(err, proxyproto.ErrNoHeader):
		default:
			l.m.rejected.WithLabelValues(l.name, "proxy_header").Inc()
			l.log.Debug("bad PROXY header", "peer", peer.String(), "err", err)
			return
		}
		if !l.admitSource(cc.src.Addr()) {
			return
		}
		counted = true
	}
	switch l.opts.Kind {
	case KindHTTP:
		if l.serveHTTP(cc, event.ProtoHTTP, nil) == 0 && !l.stopping.Load() {
			// A connection that sent nothing is still a connection seen.
			ev := l.newEvent(event.ProtoHTTP, cc.src, cc.dst)
			l.emit(&ev, &classify.Input{BodyLen: -1})
		}
	case KindHTTPS:
		l.serveHTTPS(cc)
	case KindTCP:
		l.serveTCP(cc)
	}
}

// emit classifies ev (using in, completed here) and offers it.
func (l *Listener) emit(ev *event.Event, in *classify.Input) {
	in.Protocol = ev.Protocol
	in.DstPort = ev.DstPort
	if l.opts.Indicator != nil {
		host := in.Host
		if host == "" {
			host = in.SNI
		}
		if host == "" && ev.DstIP.IsValid() {
			host = ev.DstIP.String()
		}
		if fam, cs, ok := l.opts.Indicator(host); ok {
			in.IndicatorFamily = fam
			ev.Case = cs
		}
	}
	res := l.rules.Load().Match(in)
	ev.Family, ev.Tag, ev.Confidence = res.Family, res.Tag, res.Confidence
	// A datagram's source address is whatever its sender wrote: without a
	// handshake nothing shows that the address belongs to the sender, so
	// a forged datagram could frame a third party as infected. Only a rule
	// whose payload pattern vouches for the source counts it.
	if ev.Protocol == event.ProtoUDP && !res.VerifiesSource {
		ev.Unverified = true
		l.m.unverified.Inc()
	}
	l.m.events.Inc()
	if !l.opts.Handoff.Offer(ev) {
		l.m.dropped.Inc()
	}
}

// newEvent fills the fields every event of this connection shares.
func (l *Listener) newEvent(proto string, src, dst netip.AddrPort) event.Event {
	transport := "tcp"
	if proto == event.ProtoUDP {
		transport = "udp"
	}
	return event.Event{
		Timestamp: l.now().UTC(),
		Sensor:    l.opts.Sensor,
		Protocol:  proto,
		Transport: transport,
		SrcIP:     src.Addr().Unmap(),
		SrcPort:   src.Port(),
		DstIP:     dst.Addr().Unmap(),
		DstPort:   dst.Port(),
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
