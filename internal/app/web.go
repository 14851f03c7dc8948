package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/dnssink"
	"github.com/takedown/takedown/internal/netprefix"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/web"
	"github.com/takedown/takedown/internal/web/session"
)

// WebOptions enable the operator dashboard, the REST API and /metrics on
// one listener (web.listen; HTTPS with web.tls_cert). /metrics without
// credentials on web.metrics_listen is not the dashboard's: every App
// serves it (ops.go). The rest of the web section (trusted proxies,
// cookies, timeouts) is read from the App's configuration.
type WebOptions struct {
	Listen   string
	Registry api.Registry
	Events   api.Events
	Stats    api.Stats
	Evidence api.Evidence // optional
	Tokens   token.Store
	// Notify serves subscribers and the delivery ledger; optional.
	Notify         notify.Store
	NotifySchedule api.NotifySchedule
	Users          web.Users
	// Sessions keeps the dashboard's login sessions; nil: in memory.
	Sessions    session.Store
	PublicStats bool
	MinCount    uint64
	Baseline    api.Window
	// Warm, if set, caches the figures of closed days: the app calls it at
	// start and after every UTC midnight, so no query pays for them.
	Warm func(ctx context.Context, from, to time.Time) error
}

// warmDays is how many closed days the app keeps cached ahead of queries.
const warmDays = 40

// warmStats runs Warm at start and a minute after every UTC midnight.
// What Warm builds (closed days' sets and blocks) is written to the store,
// so the nodes of a shared store build one at a time, under the lease
// "stats-warm" of lease (nil: no lease). A node that finds it taken tries
// again every warmRetry until it gets it; Warm then finds the other node's
// work done and costs little. A node that dies while building leaves the
// work to the next.
func warmStats(log interface {
	Warn(msg string, args ...any)
}, warm func(ctx context.Context, from, to time.Time) error, lease store.Leaser, holder string) func(context.Context) error {
	return func(ctx context.Context) error {
		for {
			today := time.Now().UTC().Truncate(24 * time.Hour)
			for lease != nil {
				now := time.Now()
				ok, err := lease.Lease(ctx, warmLeaseName, holder, now.Add(warmLeaseFor), now)
				if err != nil && ctx.Err() == nil {
					log.Warn("stats: taking the lease to cache the closed days' figures failed", "err", err)
				}
				if ok {
					break
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(warmRetry):
				}
			}
			if err := warm(ctx, today.AddDate(0, 0, -warmDays), today); err != nil && ctx.Err() == nil {
				log.Warn("caching the closed days' figures failed", "err", err)
			}
			if lease != nil {
				if err := lease.ReleaseLease(context.WithoutCancel(ctx), warmLeaseName, holder); err != nil {
					log.Warn("stats: releasing the lease to cache the closed days' figures", "err", err)
				}
			}
			next := today.Add(24*time.Hour + time.Minute)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Until(next)):
			}
		}
	}
}

// The lease of warmStats: held while one node builds (renewed by nobody:
// a build that outlasts it lets another node start one beside it, which
// only costs the work twice), and retried every warmRetry when taken.
const (
	warmLeaseName = "stats-warm"
	warmLeaseFor  = 30 * time.Minute
)

var warmRetry = time.Minute

// AccessLogName is the file in the data folder that receives one JSON line
// per read of IP-level data through the API.
const AccessLogName = "api-access.log"

// webRole is the dashboard's HTTP server.
type webRole struct {
	srv    *http.Server
	ln     net.Listener
	access *os.File
	// api is the REST API, rebuilt by a reload that changes
	// web.public_stats or web.min_count; apiOpts built the one in use.
	api     atomic.Pointer[api.API]
	apiOpts api.Options

	closeOnce sync.Once
	closeErr  error
}

// ServeHTTP serves the REST API in force.
func (w *webRole) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.api.Load().ServeHTTP(rw, r) }

// stageAPI builds the REST API with the policy of web c; nil when it is
// the one in force. A second API on the same registry shares the metrics.
func (w *webRole) stageAPI(c config.Web) *api.API {
	if c.PublicStats == w.apiOpts.PublicStats && c.MinCount == w.apiOpts.MinCount {
		return nil
	}
	o := w.apiOpts
	o.PublicStats, o.MinCount = c.PublicStats, c.MinCount
	return api.New(o)
}

// commitAPI puts h (from stageAPI) in force for every later request.
func (w *webRole) commitAPI(h *api.API, c config.Web) {
	if h == nil {
		return
	}
	w.apiOpts.PublicStats, w.apiOpts.MinCount = c.PublicStats, c.MinCount
	w.api.Store(h)
}

// maxHeaderBytes bounds a request's header block on the dashboard (the
// login form and the API need a few hundred bytes).
const maxHeaderBytes = 64 << 10

// webServer returns an HTTP server for h with the web section's timeouts;
// a zero timeout (a configuration built in code) takes the default.
func webServer(h http.Handler, c config.Web, log *slog.Logger) *http.Server {
	or := func(d config.Duration, def time.Duration) time.Duration {
		if d.D() > 0 {
			return d.D()
		}
		return def
	}
	return &http.Server{Handler: h,
		ReadHeaderTimeout: or(c.ReadHeaderTimeout, 10*time.Second),
		ReadTimeout:       or(c.ReadTimeout, 30*time.Second),
		WriteTimeout:      or(c.WriteTimeout, 2*time.Minute),
		IdleTimeout:       or(c.IdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// parsePrefixes parses addresses and CIDRs (validated at config load).
func parsePrefixes(v []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range v {
		p, err := netprefix.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// counters assembles the dashboard's live counters from the roles' Stats()
// snapshots (the values their metrics export), so the API never reads a
// metric back by name. It runs per request, after New has built the roles.
func (a *App) counters() api.Counters {
	c := api.Counters{EventsReceived: a.queue.Received(), EventsDropped: a.queue.Dropped(), QueueDepth: a.queue.Len()}
	if d, ok := a.dns.(interface{ Stats() dnssink.Stats }); ok {
		st := d.Stats()
		c.DNSQueries, c.RateLimited = st.Queries, st.RRLDropped+st.RRLSlipped
		c.SocketDrops += st.SocketDrops
	}
	for _, l := range a.conns {
		st := l.Stats()
		c.Connections += st.Accepted
		c.SocketDrops += st.SocketDrops
	}
	if a.pipe != nil {
		c.BatchSecondsAvg = a.pipe.Stats().CommitSecondsAvg()
	}
	if a.selfcheck != nil {
		st := a.selfcheck.Stats()
		c.SelfChecks, c.SelfCheckPositive, c.SelfCheckResolvers, c.SelfCheckRefused = st.Checks, st.Positive, st.ResolverOnly, st.Refused
	}
	var m dto.Metric
	if a.lastReloadOK != nil && a.lastReloadOK.Write(&m) == nil {
		ok := m.GetGauge().GetValue() > 0
		c.LastReloadOK = &ok
	}
	return c
}

func newWeb(a *App, o *WebOptions) (*webRole, error) {
	g, ok := a.opts.Registerer.(prometheus.Gatherer)
	if !ok {
		return nil, errors.New("web: the metrics registerer is not a gatherer")
	}
	cw := a.opts.Config.Web
	proxies, err := parsePrefixes(cw.TrustedProxy)
	if err != nil {
		return nil, fmt.Errorf("web.trusted_proxy: %w", err)
	}
	access, err := os.OpenFile(filepath.Join(a.opts.Config.Data, AccessLogName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("web: access log: %w", err)
	}
	// The log names the addresses that were looked up: owner only, also
	// when an older version created it readable.
	if err := access.Chmod(0o600); err != nil {
		access.Close()
		return nil, fmt.Errorf("web: access log: %w", err)
	}
	ao := api.Options{Registry: o.Registry, AccessLog: access, Events: o.Events, Stats: o.Stats, Evidence: o.Evidence, Gatherer: g, Counters: a.counters,
		Tokens: o.Tokens, Notify: o.Notify, NotifySchedule: o.NotifySchedule, PublicStats: o.PublicStats, MinCount: o.MinCount, Baseline: o.Baseline,
		ASOrg: a.geo.ASOrg, Logger: a.log.With("role", "api")}
	w := &webRole{access: access, apiOpts: ao}
	w.api.Store(api.New(ao))
	wlog := a.log.With("role", "web")
	metrics := api.MetricsHandler(g)
	d := web.New(web.Options{API: w, Metrics: metrics, Tokens: o.Tokens, Users: o.Users, Sessions: o.Sessions, Logger: wlog,
		SecureCookies: web.SecureCookies(cw.SecureCookies), TrustedProxies: proxies, Registerer: a.opts.Registerer})
	w.srv = webServer(d, cw, wlog)
	fail := func(err error) (*webRole, error) {
		access.Close()
		return nil, fmt.Errorf("web: %w", err)
	}
	var tlsConf *tls.Config
	if cw.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cw.TLSCert, cw.TLSKey)
		if err != nil {
			return fail(fmt.Errorf("web.tls_cert: %w", err))
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if w.ln, err = net.Listen("tcp", o.Listen); err != nil {
		return fail(err)
	}
	if tlsConf != nil {
		w.ln = tls.NewListener(w.ln, tlsConf)
	}
	return w, nil
}

// Close releases the listener and the access log of a dashboard that was
// never run (Run closes the access log as it returns; the server's Shutdown
// closes the listener). It is idempotent.
func (w *webRole) Close() error {
	w.closeOnce.Do(func() {
		var errs []error
		if err := w.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		if err := w.access.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}

// Run serves until ctx ends, then gives requests in flight five seconds.
func (w *webRole) Run(ctx context.Context) error {
	defer w.access.Close()
	return serveUntil(ctx, w.srv, w.ln)
}

// serveUntil serves ln until ctx ends, then gives requests in flight five
// seconds.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Addr is the bound address.
func (w *webRole) Addr() net.Addr { return w.ln.Addr() }
