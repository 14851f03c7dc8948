package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/api"
)

// opsRole serves /metrics and /healthz without credentials on
// web.metrics_listen, in every process the App runs (serve, a sensor, a
// collector), with or without a dashboard: a scraper or a service manager
// on a private network watches them all the same way. It is the last role
// to stop, so that the final counters can still be read and /healthz says
// 503 while the others drain.
type opsRole struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// newOps binds web.metrics_listen; nil when it is empty.
func newOps(a *App) (*opsRole, error) {
	cw := a.cfg.Load().Web
	if cw.MetricsListen == "" {
		return nil, nil
	}
	g, ok := a.opts.Registerer.(prometheus.Gatherer)
	if !ok {
		return nil, errors.New("web.metrics_listen: the metrics registerer is not a gatherer")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", api.MetricsHandler(g))
	mux.HandleFunc("GET /healthz", a.healthz)
	log := a.log.With("role", "metrics")
	o := &opsRole{srv: webServer(mux, cw, log), log: log}
	var err error
	if o.ln, err = net.Listen("tcp", cw.MetricsListen); err != nil {
		return nil, fmt.Errorf("web.metrics_listen: %w", err)
	}
	return o, nil
}

// Run serves until ctx ends, then gives requests in flight five seconds.
func (o *opsRole) Run(ctx context.Context) error {
	o.log.Info("metrics and health without credentials", "metrics", "http://"+o.ln.Addr().String()+"/metrics",
		"health", "http://"+o.ln.Addr().String()+"/healthz")
	return serveUntil(ctx, o.srv, o.ln)
}

// Close releases the listener of a role that was never run. It is
// idempotent.
func (o *opsRole) Close() error {
	o.closeOnce.Do(func() {
		if err := o.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			o.closeErr = err
		}
	})
	return o.closeErr
}

// MetricsAddr is the bound address of web.metrics_listen, or nil.
func (a *App) MetricsAddr() net.Addr {
	if a.ops == nil {
		return nil
	}
	return a.ops.ln.Addr()
}

// Run's phases, as /healthz reports them.
const (
	phaseStarting int32 = iota
	phaseRunning
	phaseStopping
)

// health is what /healthz answers from: the phase of Run, the first role
// that stopped while the others ran, and checks of what the roles depend
// on outside the process (a collector's NATS connection).
type health struct {
	phase   atomic.Int32
	stopped atomic.Pointer[string]
	checks  []func() error // added by New only
}

// roleStopped records the first role that returned while the App was
// running: it no longer does its work, whatever the others do.
func (h *health) roleStopped(name string) {
	if h.phase.Load() == phaseRunning {
		h.stopped.CompareAndSwap(nil, &name)
	}
}

// err is nil when every role runs and every check passes.
func (h *health) err() error {
	switch h.phase.Load() {
	case phaseStarting:
		return errors.New("starting")
	case phaseStopping:
		return errors.New("stopping")
	}
	if name := h.stopped.Load(); name != nil {
		return fmt.Errorf("%s stopped", *name)
	}
	for _, check := range h.checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// healthz answers 200 while every role runs, 503 with the reason otherwise
// (starting, stopping, a role stopped, a dependency down).
func (a *App) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := a.health.err(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}
