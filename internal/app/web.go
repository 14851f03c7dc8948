package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/token"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/web"
	"github.com/takedown/takedown/internal/web/session"
)

// WebOptions enable the operator dashboard, the REST API and /metrics on
// one listener.
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
func warmStats(log interface {
	Warn(msg string, args ...any)
}, warm func(ctx context.Context, from, to time.Time) error) func(context.Context) error {
	return func(ctx context.Context) error {
		for {
			today := time.Now().UTC().Truncate(24 * time.Hour)
			if err := warm(ctx, today.AddDate(0, 0, -warmDays), today); err != nil && ctx.Err() == nil {
				log.Warn("caching the closed days' figures failed", "err", err)
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

// AccessLogName is the file in the data folder that receives one JSON line
// per read of IP-level data through the API.
const AccessLogName = "api-access.log"

// webRole is the dashboard's HTTP server.
type webRole struct {
	srv    *http.Server
	ln     net.Listener
	access *os.File
}

func newWeb(a *App, o *WebOptions) (*webRole, error) {
	g, ok := a.opts.Registerer.(prometheus.Gatherer)
	if !ok {
		return nil, errors.New("web: the metrics registerer is not a gatherer")
	}
	access, err := os.OpenFile(filepath.Join(a.opts.Config.Data, AccessLogName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("web: access log: %w", err)
	}
	h := api.New(api.Options{Registry: o.Registry, AccessLog: access, Events: o.Events, Stats: o.Stats, Evidence: o.Evidence, Gatherer: g,
		Tokens: o.Tokens, Notify: o.Notify, NotifySchedule: o.NotifySchedule, PublicStats: o.PublicStats, MinCount: o.MinCount, Baseline: o.Baseline,
		Logger: a.log.With("role", "api")})
	d := web.New(web.Options{API: h, Metrics: api.MetricsHandler(g), Users: o.Users, Sessions: o.Sessions, Logger: a.log.With("role", "web")})
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		access.Close()
		return nil, fmt.Errorf("web: %w", err)
	}
	return &webRole{ln: ln, access: access, srv: &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}, nil
}

// Run serves until ctx ends, then gives requests in flight five seconds.
func (w *webRole) Run(ctx context.Context) error {
	defer w.access.Close()
	errc := make(chan error, 1)
	go func() { errc <- w.srv.Serve(w.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Addr is the bound address.
func (w *webRole) Addr() net.Addr { return w.ln.Addr() }
