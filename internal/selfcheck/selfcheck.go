// Package selfcheck is the public self-check page: anyone can learn whether
// the address their own request comes from called the sinkhole in the last
// days, which families, and how to clean the machine. It serves an HTML
// page at / (no JavaScript) and the same answer as JSON at /api/v1/self,
// on its own listener, apart from the operator dashboard.
//
// The address looked up is the TCP peer's; a PROXY v1/v2 header is read
// only from TrustedProxies, X-Forwarded-For only from TrustedForwarders:
// two separate lists, both empty unless configured, since a PROXY header
// and an X-Forwarded-For header are believed for different reasons (see
// docs/selfcheck.md). Nothing else the visitor sends (query strings,
// bodies, cookies, other headers) can choose the address: there is no code
// path that reads one. The rate limit keys on that same address, so a
// visitor cannot buy a fresh budget by claiming another. The visitor is
// never logged; only aggregate counters are kept.
//
// It is not a lookup service for arbitrary addresses, not an operator
// view, and not a place for anything but the visitor's own result.
package selfcheck

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/store"
)

// Store is what the page needs from the event store: the (day, IP, family)
// aggregates of one address for the UTC days in [from, to), with at least
// Day, Family, FirstSeen, LastSeen and Protocols filled.
// *sqlite.EventStore implements it.
type Store interface {
	Lookup(ctx context.Context, addr netip.Addr, from, to time.Time) ([]store.DayIP, error)
}

// Options configure a Server.
type Options struct {
	// Listen is the page's TCP address ("127.0.0.1:8082"; port 0 picks
	// one). Empty: no listener, the Server is only an http.Handler.
	Listen string
	// Lookup is the event store.
	Lookup Store
	// Days is how many UTC days back, today included, are checked
	// (default 14).
	Days int
	// TrustedProxies may send a PROXY v1 or v2 header naming the client;
	// from any other peer no header is read. Nil trusts nobody. It says
	// nothing about X-Forwarded-For.
	TrustedProxies *proxyproto.Trust
	// TrustedForwarders may name the client in X-Forwarded-For (the
	// right-most address not itself a trusted forwarder is taken). It is
	// checked against the connection's address after any trusted PROXY
	// header. From any other peer the header is ignored; X-Real-IP,
	// Forwarded and the rest always are. Nil (the default) trusts nobody:
	// list only reverse proxies that overwrite or append the header.
	// SetTrust replaces both lists on a reload.
	TrustedForwarders *proxyproto.Trust
	// RateLimit bounds the checks per client.
	RateLimit RateLimit
	// MaxConcurrent bounds the lookups running at once, whoever asks
	// (default 32): an attacker holding many networks, each within its own
	// rate limit, gets 503 beyond it instead of the store's whole time.
	MaxConcurrent int
	// Catalogue holds the text and clean-up advice (nil: the shipped one).
	Catalogue *Catalogue
	// Registerer receives the metrics (nil: a fresh registry).
	Registerer prometheus.Registerer
	// Logger logs the server's own failures, never a visitor (nil
	// discards).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// ProxyHeaderTimeout bounds the wait for a trusted peer's PROXY
	// header (default 5s).
	ProxyHeaderTimeout time.Duration
}

// Server is the self-check page and its listener.
type Server struct {
	opts Options
	cat  *Catalogue
	log  *slog.Logger
	lim  *limiter
	m    *metrics
	page *template.Template
	mux  *http.ServeMux
	ln   net.Listener // nil without Listen
	srv  *http.Server
	// trust holds the PROXY and X-Forwarded-For trust lists; SetTrust
	// swaps them whole.
	trust atomic.Pointer[trustLists]
	// days is opts.Days, which SetDays changes.
	days atomic.Int32
	// busy holds one token per lookup running (MaxConcurrent).
	busy chan struct{}
}

// trustLists are the two lists that may name a client other than the TCP
// peer.
type trustLists struct {
	proxies, forwarders *proxyproto.Trust
}

var _ http.Handler = (*Server)(nil)

// New builds the page and, when opts.Listen is set, binds its listener (so
// that a port already in use fails at start-up). Run serves it.
func New(opts Options) (*Server, error) {
	if opts.Lookup == nil {
		return nil, errors.New("selfcheck: no store to look addresses up in")
	}
	if opts.Days == 0 {
		opts.Days = 14
	}
	if opts.Days < 1 || opts.Days > 366 {
		return nil, fmt.Errorf("selfcheck: days %d is not between 1 and 366", opts.Days)
	}
	if opts.Catalogue == nil {
		opts.Catalogue = DefaultCatalogue()
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 32
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProxyHeaderTimeout <= 0 {
		opts.ProxyHeaderTimeout = 5 * time.Second
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("selfcheck metrics: %w", err)
	}
	s := &Server{opts: opts, cat: opts.Catalogue, log: opts.Logger, lim: newLimiter(opts.RateLimit), m: m, page: pageTemplate,
		busy: make(chan struct{}, opts.MaxConcurrent)}
	s.routes()
	s.SetTrust(opts.TrustedProxies, opts.TrustedForwarders)
	s.days.Store(int32(opts.Days))
	if opts.Listen == "" {
		return s, nil
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("selfcheck: %w", err)
	}
	s.ln = &proxyListener{Listener: ln, trust: func() *proxyproto.Trust { return s.trust.Load().proxies }, timeout: opts.ProxyHeaderTimeout,
		refused: func() { m.refuse(reasonProxy) }}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		// net/http's own log lines name client addresses: the page logs
		// no visitor, so they are dropped.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return s, nil
}

// SetTrust replaces both trust lists at once (a configuration reload).
// A connection already accepted keeps the PROXY decision made when it
// was; every request after the call reads X-Forwarded-For by the new
// forwarders list. Nil trusts nobody.
func (s *Server) SetTrust(proxies, forwarders *proxyproto.Trust) {
	s.trust.Store(&trustLists{proxies: proxies, forwarders: forwarders})
}

// SetDays changes how many UTC days back, today included, every later
// request checks (a configuration reload).
func (s *Server) SetDays(days int) error {
	if days < 1 || days > 366 {
		return fmt.Errorf("selfcheck: days %d is not between 1 and 366", days)
	}
	s.days.Store(int32(days))
	return nil
}

// Stats returns a snapshot of the page's counters (the values its metrics
// export).
func (s *Server) Stats() Stats { return s.m.stats() }

// Addr is the bound address, or nil without a listener.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close releases the listener of a page that was never run (Run releases
// it as it stops). It is idempotent.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("selfcheck: %w", err)
	}
	return nil
}

// Run serves until ctx ends, then gives requests in flight five seconds.
// Run with an already cancelled context just closes the listener.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("selfcheck: no listen address")
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("selfcheck: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("selfcheck shutdown: %w", err)
	}
	return nil
}
