package cli

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/takedown/takedown/internal/api"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// runServe runs the server until SIGINT or SIGTERM; SIGHUP reloads the
// configuration file and the registry.
func runServe(cmd *cobra.Command, g *globals, c *config.Config) error {
	ctx := cmd.Context()
	log := g.logger(c)
	st, err := g.openStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	es, err := sqlite.NewEventStore(ctx, st, sqlite.EventStoreOptions{})
	if err != nil {
		return err
	}
	defer es.Close()
	wo, err := g.webOptions(c, st, es, g.newStatsEngine(c, st), api.Window{}, false)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, app.Options{Config: c, Registry: st, Events: es, Logger: log, Sensor: hostname(), Web: wo, SelfCheck: es,
		Notify:     &app.NotifyStores{Store: sqlite.NewNotifyStore(st), Source: sqlite.NewNotifyStore(st)},
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			nc, err := config.Load(g.configPath)
			if err != nil {
				log.Error("reload: configuration refused; keeping the old one", "err", err)
				continue
			}
			nc.Data, nc.DB = c.Data, c.DB
			_ = a.Reload(context.WithoutCancel(ctx), nc)
		}
	}()
	if ad := a.SelfCheckAddr(); ad != nil {
		log.Info("self-check page", "url", "http://"+ad.String())
	}
	if ad := a.WebAddr(); ad != nil {
		scheme := "http://"
		if c.Web.TLSCert != "" {
			scheme = "https://"
		}
		log.Info("dashboard", "url", scheme+ad.String())
		if c.Web.MetricsListen != "" {
			log.Info("metrics without credentials", "url", "http://"+c.Web.MetricsListen+"/metrics")
		}
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

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "takedown"
	}
	return h
}
