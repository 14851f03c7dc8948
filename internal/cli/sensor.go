package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/budget"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/natsbus"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// newSensorCmd is `takedown sensor`: the sinkhole listeners of the config,
// publishing every event to a NATS JetStream stream instead of storing it.
func newSensorCmd(g *globals) *cobra.Command {
	var url, name string
	cmd := &cobra.Command{
		Use:   "sensor --nats URL",
		Short: "Run the sinkhole listeners and publish their events to NATS JetStream (for collectors to store)",
		Long: `A sensor runs the DNS and connection sinkholes of its configuration and
publishes every event to the JetStream stream TAKEDOWN_EVENTS, creating it if
missing. With --db postgres://… it follows the deployment's one registry:
every change reaches it at once (LISTEN/NOTIFY), and it keeps a copy in its
data dir (registry-mirror.json) from which it serves, an order's expiry
included, while PostgreSQL is unreachable, and starts when it is. Without
--db it reads the registry in its own data dir. Collectors store the events.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				return usagef("--nats URL is required")
			}
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			log := g.logger(c)
			reg, closeReg, err := g.sensorRegistry(ctx, c, log)
			if err != nil {
				return err
			}
			defer closeReg()
			nc, js, err := natsbus.Connect(url)
			if err != nil {
				return err
			}
			defer nc.Close()
			if _, err := natsbus.EnsureStream(ctx, js, natsbus.StreamOptions{}); err != nil {
				return err
			}
			if name == "" {
				name = hostname()
			}
			natsUp := func() error {
				if !nc.IsConnected() {
					return errors.New("the NATS connection is down: events wait in the queue")
				}
				return nil
			}
			a, err := app.New(ctx, app.Options{Config: c, Registry: reg, Logger: log, Sensor: name, Registerer: prometheus.NewRegistry(),
				HealthChecks: []func() error{natsUp},
				Forward: func(q *event.Queue) (func(context.Context) error, error) {
					sb := c.Pipeline.SourceBudget
					p, err := natsbus.NewPublisher(natsbus.PublisherOptions{JS: js, Queue: q, Sensor: name, Logger: log.With("role", "publisher"),
						Budget: budget.Options{Rate: sb.Rate, Burst: sb.Burst, SummaryEvery: sb.SummaryEvery.D()}})
					if err != nil {
						return nil, err
					}
					return p.Run, nil
				}})
			if err != nil {
				return err
			}
			for kind, addrs := range a.Addrs() {
				for _, ad := range addrs {
					log.Info("listening", "kind", kind, "addr", ad.String())
				}
			}
			log.Info("sensor publishing", "nats", redactDSN(url), "sensor", name)
			// SIGHUP reloads as serve does (the listeners' rules, the
			// registry, DNS settings…).
			defer reloadOnHUP(ctx, a, g, c, loadOr(g.configPath, config.Default()))()
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&url, "nats", "", "NATS server URL(s), comma separated")
	cmd.Flags().StringVar(&name, "sensor", "", "this sensor's name in events (default: the host name)")
	return cmd
}

// newCollectorCmd is `takedown collector`: consume the stream, enrich,
// classify and store, acknowledging after the store commit. The App runs
// it (app.CollectOptions); this command only opens the configured store.
func newCollectorCmd(g *globals) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "collector --nats URL [--db postgres://…]",
		Short: "Store the events that sensors publish to NATS JetStream (acknowledged after the store commit)",
		Long: `A collector consumes the stream TAKEDOWN_EVENTS with a durable consumer
shared by every collector, enriches and classifies each event, stores it, and
acknowledges it only after the store committed. Event IDs make a redelivery
harmless. Events go to the configured store, whose registry classifies them:
with --db postgres://… several collectors share one PostgreSQL; otherwise the
SQLite store in the data dir. With web.metrics_listen set it serves /metrics
and /healthz there; SIGHUP reloads the configuration and the registry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				return usagef("--nats URL is required")
			}
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			log, level := g.leveledLogger(c)
			setGC(collectorGCPercent)
			// What the file said of data and db at start, for reloads (as
			// serve).
			file0 := loadOr(g.configPath, config.Default())
			st, err := g.openStore(ctx, c)
			if err != nil {
				return err
			}
			defer st.Close()
			es, err := st.eventStore(ctx, sqlite.EventStoreOptions{})
			if err != nil {
				return err
			}
			defer es.Close()
			a, err := app.New(ctx, app.Options{Config: c, Registry: st.Store, Events: es, Logger: log, LogLevel: level,
				Registerer: prometheus.NewRegistry(), Collect: &app.CollectOptions{NATS: url}})
			if err != nil {
				return err
			}
			log.Info("collector consuming", "nats", redactDSN(url), "store", redactDSN(c.DB))
			defer reloadOnHUP(ctx, a, g, c, file0)()
			if err := a.Run(ctx); err != nil {
				return fmt.Errorf("collector: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "nats", "", "NATS server URL(s), comma separated")
	return cmd
}

// collectorGCPercent is a collector's garbage collection target, unless
// GOGC says otherwise. Its live heap is small (a batch of events, the
// geo databases, string caches), and at Go's default of 100 the collector
// spent a fifth of its CPU collecting garbage (bench/collectors_postgres).
// 400 lets the heap grow to five times the live data between collections:
// measured at 400,000 events, the collectors' CPU fell from 13.2 to 11.0
// core-seconds and two collectors stored 27,900 events/s instead of 25,700,
// for tens of MiB more memory.
const collectorGCPercent = 400

// setGC sets the process's garbage collection target, unless GOGC does.
func setGC(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}

// RegistryMirrorFile is a sensor's copy of the shared registry in its data
// dir (registry.Mirror).
const RegistryMirrorFile = "registry-mirror.json"

// sensorRegistry is the registry a sensor serves: on PostgreSQL a mirror
// of the shared one, kept in the data dir, which lets the sensor start and
// serve while the database is unreachable; otherwise the data dir's store.
func (g *globals) sensorRegistry(ctx context.Context, c *config.Config, log *slog.Logger) (registry.Source, func(), error) {
	if !isPostgres(c.DB) {
		st, err := g.openStore(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		return st.Store, func() { st.Close() }, nil
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	pg, err := postgres.Connect(c.DB)
	if err != nil {
		return nil, nil, err
	}
	m, err := registry.NewMirror(ctx, pg, filepath.Join(c.Data, RegistryMirrorFile), log.With("role", "registry"))
	if err != nil {
		pg.Close()
		return nil, nil, err
	}
	return m, func() { pg.Close() }, nil
}
