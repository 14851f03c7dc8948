package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/takedown/takedown/internal/api"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/selfcheck"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// runServe runs the server until SIGINT or SIGTERM; SIGHUP reloads the
// configuration file and the registry.
func runServe(cmd *cobra.Command, g *globals, c *config.Config) error {
	ctx := cmd.Context()
	log, level := g.leveledLogger(c)
	// What the file said of data and db at start: a reload that changes
	// them is refused (the flags' overrides stay as they are).
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
	wo, err := g.webOptions(c, st, es, g.newStatsEngine(c, st), api.Window{}, false)
	if err != nil {
		return err
	}
	lookup, _ := es.(selfcheck.Store)
	ns := st.notify()
	a, err := app.New(ctx, app.Options{Config: c, Registry: st.Store, Events: es, Logger: log, Sensor: hostname(), Web: wo, SelfCheck: lookup,
		Notify: &app.NotifyStores{Store: ns, Source: ns}, EvidenceFollowsStore: st.pg != nil,
		Registerer: prometheus.NewRegistry(), LogLevel: level})
	if err != nil {
		return err
	}
	defer reloadOnHUP(ctx, a, g, c, file0)()
	if ad := a.SelfCheckAddr(); ad != nil {
		log.Info("self-check page", "url", "http://"+ad.String())
	}
	if ad := a.WebAddr(); ad != nil {
		scheme := "http://"
		if c.Web.TLSCert != "" {
			scheme = "https://"
		}
		log.Info("dashboard", "url", scheme+ad.String())
	}
	for kind, addrs := range a.Addrs() {
		for _, ad := range addrs {
			log.Info("listening", "kind", kind, "addr", ad.String())
		}
	}
	if err := a.Run(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// reloadOnHUP reloads a's configuration from the file on every SIGHUP
// until the returned stop is called. file0 is what the file said at start:
// the --data and --db flags still override it.
func reloadOnHUP(ctx context.Context, a *app.App, g *globals, c, file0 *config.Config) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
			}
			// A file that does not parse is a failed reload like any
			// other: counted, logged, the old state kept.
			_ = a.ReloadFrom(context.WithoutCancel(ctx), func() (*config.Config, error) {
				nc, err := config.Load(g.configPath)
				if err != nil {
					return nil, err
				}
				// The --data and --db flags still override the file; a
				// file that names another data dir or store keeps it, so
				// that the reload refuses it by name.
				if nc.Data == file0.Data {
					nc.Data = c.Data
				}
				if nc.DB == file0.DB {
					nc.DB = c.DB
				}
				return nc, nil
			})
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// loadOr loads the file at path, or returns def when it does not load.
func loadOr(path string, def *config.Config) *config.Config {
	if path == "" {
		return def
	}
	c, err := config.Load(path)
	if err != nil {
		return def
	}
	return c
}

// leveledLogger is g.logger with a level that a reload can change.
func (g *globals) leveledLogger(c *config.Config) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	lv.Set(lvl)
	opts := &slog.HandlerOptions{Level: lv}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), lv
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts)), lv
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "takedown"
	}
	return h
}
