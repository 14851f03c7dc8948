package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/natsbus"
	"github.com/takedown/takedown/internal/pipeline"
)

// CollectOptions make the App a collector (takedown collector): instead
// of listeners and a pipeline it consumes what sensors publish to NATS
// JetStream into Options.Events, acknowledging each batch after its
// commit. The events are enriched by the App's IP databases and
// classified by its registry watcher (the registry in force, as the
// pipeline of serve does), so a reload changes both.
//
// A collector runs no evidence log, no retention, no self-check and no
// reports: they belong to the serve node(s) on the same store (serve
// appends at start what its evidence log lacks).
type CollectOptions struct {
	// NATS is the server URL(s), comma separated. The App connects in New
	// and closes the connection after the consumer's last acknowledgement.
	NATS string
	// Consumer is the durable consumer every collector shares (default
	// natsbus.DefaultConsumer).
	Consumer string
}

// collectRole is the consumer as the App drives it.
type collectRole struct {
	nc  *nats.Conn
	col *natsbus.Collector
}

// Run consumes until ctx ends; the batch being stored is committed and
// acknowledged before it returns.
func (r *collectRole) Run(ctx context.Context) error { return r.col.Run(ctx) }

// newCollect connects to NATS, makes sure the stream exists (a server
// without JetStream fails the start, not the run) and builds the consumer.
func (a *App) newCollect(ctx context.Context) error {
	o := a.opts.Collect
	if o.NATS == "" {
		return errors.New("collector: no NATS URL")
	}
	nc, js, err := natsbus.Connect(o.NATS)
	if err != nil {
		return err
	}
	// Closing flushes what is buffered, the last acknowledgements included.
	a.closers = append(a.closers, func() error { nc.Close(); return nil })
	if _, err := natsbus.EnsureStream(ctx, js, natsbus.StreamOptions{}); err != nil {
		return err
	}
	// The pipeline's preparation (timestamp, enrichment, case), never run
	// as a pipeline: its queue is a placeholder.
	prep, err := pipeline.New(pipeline.Options{Queue: event.NewQueue(1), Store: a.opts.Events, Enricher: a.geo, FillCase: a.fillCase})
	if err != nil {
		return err
	}
	col, err := natsbus.NewCollector(natsbus.CollectorOptions{JS: js, Store: a.opts.Events, Consumer: o.Consumer, Prepare: prep.Prepare,
		Batch: a.cfg.Load().Pipeline.Batch, Logger: a.log.With("role", "collector")})
	if err != nil {
		return err
	}
	cf := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	for _, m := range []prometheus.Collector{
		cf("takedown_collector_events_stored_total", "Events consumed from JetStream and newly stored.", col.Stored),
		cf("takedown_collector_events_duplicate_total", "Events consumed that the store already held (a redelivery).", col.Duplicates),
		cf("takedown_collector_messages_redelivered_total", "Messages JetStream delivered more than once.", col.Redelivered),
		cf("takedown_collector_batches_total", "Batches stored and acknowledged.", col.Batches),
		cf("takedown_collector_batches_refused_total", "Batches the store refused; their messages come back.", col.Refused),
		cf("takedown_collector_messages_terminated_total", "Messages never storable, terminated instead of redelivered.", col.Terminated),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_collector_nats_connected", Help: "1 while the connection to NATS is up."},
			func() float64 {
				if nc.IsConnected() {
					return 1
				}
				return 0
			}),
	} {
		if err := a.opts.Registerer.Register(m); err != nil {
			return err
		}
	}
	// Without NATS the collector does nothing, however well it runs: it is
	// not healthy.
	a.health.checks = append(a.health.checks, func() error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("nats: %s", st)
		}
		return nil
	})
	a.collect = &collectRole{nc: nc, col: col}
	return nil
}
