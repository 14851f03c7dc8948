// Package app wires takedown's long-running roles together: the registry
// watcher, the DNS and connection sinkholes, the event pipeline and the
// store. It owns the run group, reload and the shutdown order. It is not
// where any role's logic lives.
//
// Shutdown order (written down because it is what keeps "nothing
// acknowledged is lost" true):
//  1. the listeners stop (no new events);
//  2. the pipeline drains the queue and commits its last batch;
//  3. the evidence log writes its last checkpoint (covering every stored
//     event) and closes;
//  4. the store is closed by the caller after Run returns.
//
// A collector (Options.Collect) has no listeners and no queue: when ctx
// ends its consumer stops fetching, its last batch commits and is
// acknowledged, the NATS connection closes (flushing those
// acknowledgements), and the caller then closes the store. In every
// process /metrics and /healthz (web.metrics_listen) stop last.
//
// Lifecycle: New acquires (sockets bound, files and databases opened) and,
// when it fails, releases everything it acquired before returning; Close
// releases everything of an App that is not run, and Run releases it all
// as it returns. Every component's Close is idempotent.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/budget"
	"github.com/takedown/takedown/internal/classify"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/connsink"
	"github.com/takedown/takedown/internal/dnssink"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/geo"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/pipeline"
	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/selfcheck"
	"github.com/takedown/takedown/internal/store"
)

// Options configure an App.
type Options struct {
	Config *config.Config
	// Registry is what the sinkholes and the pipeline's case stage read
	// (a sensor's registry.Mirror, or the store); when it also lists
	// orders (a registry.Store), retention keeps aggregates for the
	// longest order plus a year.
	Registry   registry.Source
	Events     store.EventStore
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil: a fresh registry
	Sensor     string                // copied into every event
	// SelfCheck is the store the public self-check page looks addresses up
	// in; the page runs when it is set and selfcheck.listen is configured.
	SelfCheck selfcheck.Store
	// Notify is where the daily reports read and record; they run when it
	// is set and notify.enabled is configured.
	Notify *NotifyStores
	// Forward, when set, replaces the pipeline: the listeners' events are
	// handed to what it returns (a sensor publishing to NATS JetStream)
	// instead of being stored here. Events may then be nil; the evidence
	// log, retention, self-check and notifications belong to the nodes
	// that serve the store the collectors fill.
	Forward func(q *event.Queue) (run func(context.Context) error, err error)
	// EvidenceFollowsStore says that other processes store events too
	// (collectors, other serve nodes on one PostgreSQL): the evidence log
	// then follows the store, on the one node holding the lease
	// "evidence", instead of taking the batches this process commits
	// (evidence_follow.go).
	EvidenceFollowsStore bool
	// HealthChecks are what the process depends on outside it, which
	// /healthz reports when one fails (a sensor's NATS connection).
	HealthChecks []func() error
	// Collect, when set, makes the App a collector: no listeners and no
	// pipeline; it stores into Events what sensors publish (collect.go).
	Collect *CollectOptions
	// Web, when set, serves the dashboard, the REST API and /metrics.
	Web *WebOptions
	// TrustProxyFromLoopback makes every sinkhole listener believe PROXY
	// headers from loopback peers (the demo: the simulator sends them).
	// The self-check is not one of them: it trusts only what
	// selfcheck.trusted_proxy and selfcheck.trusted_forwarders list.
	TrustProxyFromLoopback bool
	// LogLevel, when set, is the level of Logger's handler: a reload
	// applies log.level to it. Without it log.level needs a restart.
	LogLevel *slog.LevelVar
}

// App is the running server.
type App struct {
	ctx   context.Context // New's, for the roles' constructors
	opts  Options
	log   *slog.Logger
	cfg   atomic.Pointer[config.Config]
	queue *event.Queue
	geo   *geo.DB
	pipe  *pipeline.Pipeline
	conns []*connsink.Listener
	dns   dnsRole
	web   *webRole

	evidence  *evidence.Log
	selfcheck *selfcheck.Server
	notify    *notify.Scheduler
	forward   func(context.Context) error
	collect   *collectRole // a collector's consumer, nil otherwise
	ops       *opsRole     // /metrics and /healthz, nil without web.metrics_listen
	health    health

	// reg is the one registry watcher: the DNS sinkhole, the connection
	// sinkhole and the pipeline's case stage all read its snapshots.
	reg *registry.Watcher
	// stagedReg is the snapshot a reload's registry applier read, for the
	// DNS applier to build from; under reloadMu.
	stagedReg *registry.Snapshot

	// holder names this process in the store's leases (retention, the
	// evidence writer): the sensor name, the pid and a random part, so
	// that two processes on one host never share a lease.
	holder string

	closers   []func() error // what New acquired, in order; Close runs them backwards
	closeOnce sync.Once
	closeErr  error

	reloadMu     sync.Mutex
	failPrepare  func(applier string) error // a test seam: fails an applier's prepare
	reloads      prometheus.Counter
	reloadFails  prometheus.Counter
	lastReloadOK prometheus.Gauge
}

// dnsRole is the DNS sinkhole as the app drives it.
type dnsRole interface {
	Run(ctx context.Context) error
	Reload(ctx context.Context) error
	Stage(ctx context.Context, st dnssink.Settings, reg *registry.Snapshot) (*dnssink.Staged, error)
	Commit(st *dnssink.Staged)
	Close() error
}

// New builds every role the configuration enables and binds their sockets.
func New(ctx context.Context, opts Options) (*App, error) {
	if opts.Config == nil || opts.Registry == nil || (opts.Events == nil && opts.Forward == nil) {
		return nil, errors.New("app needs a config, a registry and an event store (or a forwarder)")
	}
	if opts.Collect != nil && (opts.Events == nil || opts.Forward != nil || opts.Web != nil) {
		return nil, errors.New("a collector needs an event store, and neither forwards nor serves a dashboard")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	c := opts.Config
	a := &App{ctx: ctx, opts: opts, log: opts.Logger}
	if opts.Collect == nil { // a collector has no listeners to queue for
		a.queue = event.NewQueue(c.Pipeline.Queue)
	}
	a.cfg.Store(c)
	a.holder = fmt.Sprintf("%s/%d/%x", opts.Sensor, os.Getpid(), rand.Uint64())
	a.health.checks = append(a.health.checks, opts.HealthChecks...)
	a.reloads = prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_config_reloads_total", Help: "Configuration and registry reloads attempted."})
	a.reloadFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_config_reload_failures_total", Help: "Reloads that failed and kept the old state."})
	a.lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "takedown_config_last_reload_successful", Help: "1 if the last reload succeeded."})
	a.lastReloadOK.Set(1)
	queueDepth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_events_queue_depth", Help: "Events waiting between the listeners and the store."},
		func() float64 { return float64(a.queue.Len()) })
	received := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "takedown_events_received_total", Help: "Events handed over by the listeners."},
		func() float64 { return float64(a.queue.Received()) })
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "takedown_events_queue_dropped_total", Help: "Events refused because the queue was full."},
		func() float64 { return float64(a.queue.Dropped()) })
	metrics := []prometheus.Collector{a.reloads, a.reloadFails, a.lastReloadOK}
	if a.queue != nil {
		metrics = append(metrics, queueDepth, received, dropped)
	}
	for _, m := range metrics {
		if err := opts.Registerer.Register(m); err != nil {
			return nil, err
		}
	}

	var err error
	a.reg, err = registry.NewWatcher(ctx, registry.WatcherOptions{Source: opts.Registry, Poll: c.Registry.Poll.D(), Logger: opts.Logger.With("role", "registry")})
	if err != nil {
		return nil, fmt.Errorf("read the registry: %w", err)
	}
	if err := opts.Registerer.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "takedown_registry_read_failures_total",
		Help: "Polls and reads of the registry that failed; the snapshot in force was kept."}, func() float64 { return float64(a.reg.ReadFailures()) })); err != nil {
		return nil, err
	}

	// From here every component acquired adds its Close to a.closers; on
	// any failure New releases them all, last acquired first.
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	a.geo, err = OpenGeo(c, opts.Logger)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.geo.Close)
	if a.ops, err = newOps(a); err != nil {
		return nil, err
	}
	if a.ops != nil {
		a.closers = append(a.closers, a.ops.Close)
	}
	if opts.Collect != nil {
		if err := a.newCollect(ctx); err != nil {
			return nil, err
		}
		ok = true
		return a, nil
	}
	rules, err := loadRules(c)
	if err != nil {
		return nil, err
	}
	if opts.Forward != nil {
		if a.forward, err = opts.Forward(a.queue); err != nil {
			return nil, err
		}
	} else if err := a.openEvidence(ctx); err != nil {
		return nil, err
	} else if opts.EvidenceFollowsStore {
		// The follower catches up under the writer lease (evidence_follow.go).
	} else if err := a.reconcileEvidence(ctx); err != nil {
		return nil, fmt.Errorf("evidence log: reconcile with the store: %w", err)
	}
	if opts.Forward == nil {
		a.pipe, err = pipeline.New(pipeline.Options{
			Queue: a.queue, Store: opts.Events, Enricher: a.geo, FillCase: a.fillCase, Committed: a.committed,
			BatchSize: c.Pipeline.Batch, Registerer: opts.Registerer, Logger: opts.Logger.With("role", "pipeline"),
			Budget: budget.Options{Rate: c.Pipeline.SourceBudget.Rate, Burst: c.Pipeline.SourceBudget.Burst, SummaryEvery: c.Pipeline.SourceBudget.SummaryEvery.D()},
		})
		if err != nil {
			return nil, err
		}
	}
	for i, lc := range c.Listeners {
		trust, err := a.trust(lc.TrustedProxy)
		if err != nil {
			return nil, fmt.Errorf("listeners[%d]: %w", i, err)
		}
		l, err := connsink.New(connsink.Options{
			Kind: connsink.Kind(lc.Kind), Addr: lc.Listen, Sensor: opts.Sensor, TrustedProxies: trust,
			DataDir: c.Data, Handoff: event.NewProducer(a.queue, lc.Kind+":"+lc.Listen), Rules: rules,
			Indicator: a.caseOf, Logger: opts.Logger.With("role", "listener", "kind", lc.Kind),
			Registerer: opts.Registerer,
		})
		if err != nil {
			return nil, fmt.Errorf("listeners[%d] %s %s: %w", i, lc.Kind, lc.Listen, err)
		}
		a.conns = append(a.conns, l)
		a.closers = append(a.closers, l.Close)
	}
	dns, err := newDNS(a, c)
	if err != nil {
		return nil, err
	}
	if dns != nil { // a nil *Server in the interface would not be nil
		a.dns = dns
		a.closers = append(a.closers, dns.Close)
	}
	if opts.Web != nil {
		if opts.Web.Evidence == nil && a.evidence != nil {
			opts.Web.Evidence = a.evidence
		}
		if a.web, err = newWeb(a, opts.Web); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, a.web.Close)
	}
	if err := a.newSelfCheck(opts.SelfCheck); err != nil {
		return nil, err
	}
	if a.selfcheck != nil {
		a.closers = append(a.closers, a.selfcheck.Close)
	}
	if a.notify, err = a.newNotifyScheduler(c, opts.Notify); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// OpenGeo opens the configured MMDB files, or the bundled data.
func OpenGeo(c *config.Config, log *slog.Logger) (*geo.DB, error) {
	db, err := geo.Open(geoOptions(c, log))
	if err != nil {
		return nil, fmt.Errorf("geo: %w", err)
	}
	return db, nil
}

func loadRules(c *config.Config) (*classify.Rules, error) {
	if c.Pipeline.Rules == "" {
		return classify.Default(), nil
	}
	r, err := classify.Load(c.Pipeline.Rules)
	if err != nil {
		return nil, fmt.Errorf("pipeline.rules: %w", err)
	}
	return r, nil
}

// trust parses a sinkhole listener's trusted PROXY sources, adding
// loopback when the app trusts it. The self-check does not use it: its
// lists are parsed as configured (parseTrust).
func (a *App) trust(list []string) (*proxyproto.Trust, error) {
	if a.opts.TrustProxyFromLoopback {
		list = append(append([]string(nil), list...), "127.0.0.0/8", "::1/128")
	}
	return parseTrust(list)
}

// parseTrust parses a list of trusted addresses and CIDRs; an empty list
// trusts nobody.
func parseTrust(list []string) (*proxyproto.Trust, error) {
	if len(list) == 0 {
		return nil, nil
	}
	return proxyproto.ParseTrust(list)
}

// caseOf tells the connection sinkhole which seized indicator a Host, SNI
// or destination address belongs to (registry.Index.CaseOf).
func (a *App) caseOf(host string) (family, caseID string, ok bool) {
	return a.reg.Load().Index.CaseOf(host)
}

// fillCase is the pipeline's case stage (registry.Index.FillCase).
func (a *App) fillCase(e *event.Event) { a.reg.Load().Index.FillCase(e) }

// Addrs returns the bound addresses of the connection listeners by kind.
func (a *App) Addrs() map[string][]net.Addr {
	out := map[string][]net.Addr{}
	for _, l := range a.conns {
		k := l.Name()
		k, _, _ = strings.Cut(k, ":")
		out[k] = append(out[k], l.Addr())
	}
	return out
}

// SelfCheckAddr is the self-check page's bound address, or nil.
func (a *App) SelfCheckAddr() net.Addr {
	if a.selfcheck == nil {
		return nil
	}
	return a.selfcheck.Addr()
}

// WebAddr is the dashboard's bound address, or nil.
func (a *App) WebAddr() net.Addr {
	if a.web == nil {
		return nil
	}
	return a.web.Addr()
}

// Queue is the hand-off between listeners and the pipeline; nil in a
// collector.
func (a *App) Queue() *event.Queue { return a.queue }

// Pipeline is the running pipeline.
func (a *App) Pipeline() *pipeline.Pipeline { return a.pipe }

// Close releases everything New acquired (sockets, the evidence log's
// files, the IP databases) of an App that is not running; Run does it as
// it returns. It is idempotent and returns the first call's errors.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		for i := len(a.closers) - 1; i >= 0; i-- {
			errs = append(errs, a.closers[i]())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// Run runs every role until ctx ends, then shuts down in the documented
// order. It returns the first role's failure, if any.
func (a *App) Run(ctx context.Context) error {
	lctx, stopListeners := context.WithCancel(ctx)
	defer stopListeners()
	pctx, stopPipeline := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipeline()

	errc := make(chan error, len(a.conns)+12) // room for every role's error: a send never blocks
	var listeners sync.WaitGroup
	start := func(wg *sync.WaitGroup, name string, f func(context.Context) error, c context.Context) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer a.health.roleStopped(name)
			if err := f(c); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				stopListeners()
			}
		}()
	}
	// From here a role that returns before the shutdown is a role that no
	// longer works: /healthz says so.
	a.health.phase.Store(phaseRunning)
	// /metrics and /healthz stop last: the final counters stay readable,
	// and /healthz says 503 while the others drain.
	octx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOps()
	var ops sync.WaitGroup
	if a.ops != nil {
		start(&ops, "metrics", a.ops.Run, octx)
	}
	var pipe sync.WaitGroup
	switch {
	case a.pipe != nil:
		start(&pipe, "pipeline", a.pipe.Run, pctx)
	case a.collect != nil:
		start(&pipe, "collector", a.collect.Run, pctx)
	default:
		start(&pipe, "forward", a.forward, pctx)
	}
	start(&listeners, "geo", a.geo.Run, lctx)
	start(&listeners, "registry", a.reg.Run, lctx)
	for _, l := range a.conns {
		start(&listeners, l.Name(), l.Run, lctx)
	}
	if a.dns != nil {
		start(&listeners, "dns", a.dns.Run, lctx)
	}
	if a.web != nil {
		start(&listeners, "web", a.web.Run, lctx)
		if w := a.opts.Web.Warm; w != nil {
			lease, _ := a.opts.Events.(store.Leaser) // one node at a time, as retention
			start(&listeners, "stats-cache", warmStats(a.log, w, lease, a.holder), lctx)
		}
	}
	if a.selfcheck != nil {
		start(&listeners, "selfcheck", a.selfcheck.Run, lctx)
	}
	if a.opts.Events != nil && a.collect == nil {
		start(&listeners, "retention", a.retention().Run, lctx)
	}
	if a.notify != nil {
		start(&listeners, "notify", runNotify(a.notify), lctx)
	}
	// The evidence log's checkpointer stops after the pipeline has drained,
	// so that its last checkpoint covers every stored event.
	ectx, stopEvidence := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEvidence()
	var evidenceWG sync.WaitGroup
	if a.evidence != nil {
		start(&evidenceWG, "evidence", a.evidence.Run, ectx)
		if a.opts.EvidenceFollowsStore {
			// Stops with the listeners: the checkpointer's last
			// checkpoint then covers what it appended.
			start(&listeners, "evidence-follow", a.followEvidence, lctx)
		}
	}
	<-lctx.Done()
	a.health.phase.Store(phaseStopping)
	a.log.Info("shutting down: stopping listeners")
	listeners.Wait()
	if a.queue != nil {
		a.log.Info("draining the event queue", "waiting", a.queue.Len())
	}
	stopPipeline()
	pipe.Wait()
	if a.evidence != nil {
		stopEvidence()
		evidenceWG.Wait()
		if err := a.evidence.Close(); err != nil {
			errc <- fmt.Errorf("evidence: %w", err)
		}
	}
	stopOps()
	ops.Wait()
	// Every role has stopped: release what is left (the IP databases, a
	// collector's NATS connection; the rest closed as its role stopped,
	// and Close is idempotent).
	if err := a.Close(); err != nil {
		a.log.Warn("releasing the roles' resources", "err", err)
	}
	switch {
	case a.pipe != nil:
		st := a.pipe.Stats()
		a.log.Info("stopped", "received", st.Received, "stored", st.Stored, "dropped", st.Dropped)
	case a.collect != nil:
		col := a.collect.col
		a.log.Info("stopped", "stored", col.Stored(), "duplicates", col.Duplicates(), "redelivered", col.Redelivered())
	default:
		a.log.Info("stopped", "received", a.queue.Received(), "dropped", a.queue.Dropped())
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
