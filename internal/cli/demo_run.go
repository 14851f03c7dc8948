package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/demo"
	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/simulate"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// demoFlags are the live part of the demo.
type demoFlags struct {
	historyDays   int
	bots          int
	seed          uint64
	rate          float64
	beaconsPerDay int
	headless      bool
	duration      time.Duration
	every         time.Duration
	truth         string
}

// The demo's addresses (PRODUCT.md; all loopback).
const (
	demoDNS       = "127.0.0.1:5353"
	demoHTTP      = "127.0.0.1:8080"
	demoHTTPS     = "127.0.0.1:8443"
	demoTCP       = "127.0.0.1:8025"
	demoUDP       = "127.0.0.1:8025"
	demoDashboard = "127.0.0.1:8081"
	demoSelfCheck = "127.0.0.1:8082"
)

// demoConfig is the configuration the demo runs with.
func demoConfig(c *config.Config) *config.Config {
	d := *c
	d.DNS.Listen = []string{demoDNS}
	d.Sinkhole.A, d.Sinkhole.AAAA = []string{"127.0.0.1"}, []string{"::1"}
	d.Listeners = []config.Listener{
		{Kind: "http", Listen: demoHTTP}, {Kind: "https", Listen: demoHTTPS},
		{Kind: "tcp", Listen: demoTCP}, {Kind: "udp", Listen: demoUDP},
	}
	return &d
}

// historyMarker records which simulated history a data dir holds, so that
// a second run of the demo does not load it again.
type historyMarker struct {
	Seed   uint64    `json:"seed"`
	Bots   int       `json:"bots"`
	Start  time.Time `json:"start"`
	Days   int       `json:"days"`
	Events int64     `json:"events"`
}

// runDemoLive loads the simulated history (once), starts every role and
// the simulator's live beacons, and prints a headline every few seconds
// until ctx ends or --duration passes.
func runDemoLive(ctx context.Context, g *globals, c *config.Config, st *sqlite.DB, f demoFlags, order registry.Order) error {
	log := g.logger(c)
	es, err := sqlite.NewEventStore(ctx, st, sqlite.EventStoreOptions{})
	if err != nil {
		return err
	}
	defer es.Close()

	set, err := st.Active(ctx, g.now(), demo.Case)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range set.Entries {
		if e.Kind == registry.KindDomain || e.Kind == registry.KindHost {
			names = append(names, e.Value)
		}
	}
	today := g.now().UTC().Truncate(24 * time.Hour)
	opts := simulate.DefaultOptions(g.now())
	opts.Seed, opts.Bots, opts.Days = f.seed, f.bots, f.historyDays
	opts.Start = order.Effective.UTC().Truncate(24 * time.Hour)
	opts.Days = int(today.Sub(opts.Start).Hours() / 24)
	opts.Domains, opts.Case, opts.Family = names, demo.Case, "rustock"
	// The sample order's generator: a quarter of the bots call the day's
	// generated names, which the dashboard counts under their family.
	dga, generated, err := registryDGA(ctx, st, g.now(), demo.Case)
	if err != nil {
		return err
	}
	opts.Domains, opts.DGA = withoutGenerated(names, generated), dga
	opts.BeaconsPerDay = f.beaconsPerDay
	opts.Logger = log.With("role", "simulator")
	sim, err := simulate.New(opts)
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	if f.truth != "" {
		if err := writeFileAtomic(f.truth, sim.WriteTruth); err != nil {
			return fmt.Errorf("--truth: %w", err)
		}
	}
	dc := demoConfig(c)
	reg := prometheus.NewRegistry()
	dc.Web.Listen = demoDashboard
	dc.SelfCheck.Listen = demoSelfCheck
	baseline := [2]time.Time{opts.Start, opts.Start.AddDate(0, 0, 7)}
	// One engine for the dashboard and the headline: they share day builds.
	sts := sqliteStores(st)
	engine := g.newStatsEngine(c, sts)
	wo, err := g.webOptions(dc, sts, es, engine, api.Window{From: baseline[0], To: baseline[1]}, true)
	if err != nil {
		return err
	}
	// The history is still loading: caching days now would only be redone.
	wo.Warm = nil
	wo.NotifySchedule = api.NotifySchedule{Note: demoNotifyNote}
	a, err := app.New(ctx, app.Options{Config: dc, Registry: st, Events: es, Logger: log, Registerer: reg,
		Sensor: "demo", TrustProxyFromLoopback: true, Web: wo, SelfCheck: es})
	if err != nil {
		return fmt.Errorf("start the sinkhole (are the demo ports %s, %s, %s, %s, %s, %s free?): %w", demoDNS, demoHTTP, demoHTTPS, demoTCP, demoDashboard, demoSelfCheck, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if f.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, f.duration)
		defer cancel()
	}
	appDone := make(chan error, 1)
	go func() { appDone <- a.Run(runCtx) }()

	// The simulated history loads while the sinkhole and the dashboard
	// already serve.
	historyDone := make(chan error, 1)
	historyReady := make(chan struct{})
	go func() { historyDone <- loadHistory(runCtx, g, c, st, es, sim, f, historyReady, a.Recorded) }()

	w := g.stdout
	fmt.Fprintf(w, "\nthe takedown is live (all loopback):\n")
	fmt.Fprintf(w, "  dashboard, REST API, /metrics   http://%s\n", demoDashboard)
	fmt.Fprintf(w, "  public self-check               http://%s\n", demoSelfCheck)
	fmt.Fprintf(w, "  DNS    %s (udp, tcp)   dig @127.0.0.1 -p 5353 %s\n", demoDNS, names[0])
	fmt.Fprintf(w, "  HTTP   http://%s      curl -H 'Host: %s' http://%s/login.php\n", demoHTTP, names[0], demoHTTP)
	fmt.Fprintf(w, "  HTTPS  https://%s     (certificates from the sinkhole CA in %s)\n", demoHTTPS, filepath.Join(c.Data, "connsink-ca"))
	fmt.Fprintf(w, "  TCP and UDP catch-all %s\n", demoTCP)
	fmt.Fprintf(w, "  stats  takedown stats --data %s --by country\n", c.Data)
	if f.headless {
		fmt.Fprintf(w, "running headless for %s; ", f.duration)
	}
	fmt.Fprintf(w, "the simulator beacons at %.0f/s; Ctrl-C stops\n\n", f.rate)

	simDone := make(chan *simulate.LiveReport, 1)
	go func() {
		rep, err := sim.RunLive(runCtx, simulate.Targets{HTTP: demoHTTP, HTTPS: demoHTTPS, DNS: demoDNS, Rate: f.rate})
		if err != nil && !errors.Is(err, context.Canceled) && runCtx.Err() == nil {
			log.Error("simulator stopped", "err", err)
		}
		simDone <- rep
	}()

	tick := time.NewTicker(f.every)
	defer tick.Stop()
	loaded := false
	for {
		select {
		case <-historyReady:
			historyReady = nil
			loaded = true
			headline(ctx, w, engine, g.now(), baseline)
			// Yesterday is loaded: its reports to the network owners.
			if err := demoNotify(runCtx, w, c, st, engine, g.yesterday(), log); err != nil && runCtx.Err() == nil {
				log.Error("demo notifications", "err", err)
			}
		case err := <-historyDone:
			historyDone = nil
			if err != nil {
				stop()
				<-simDone
				<-appDone
				return err
			}
			headline(ctx, w, engine, g.now(), baseline)
		case <-runCtx.Done():
			rep := <-simDone
			err := <-appDone
			if historyDone != nil {
				<-historyDone
			}
			if rep != nil {
				fmt.Fprintf(w, "\nsimulator: %d HTTP, %d HTTPS, %d DNS beacons sent, %d failed\n", rep.HTTP, rep.HTTPS, rep.DNS, rep.Failed)
			}
			if loaded {
				headline(context.WithoutCancel(ctx), w, engine, g.now(), baseline)
			}
			fmt.Fprintf(w, "stopped cleanly; the data stays in %s\n", c.Data)
			return err
		case <-tick.C:
			if loaded {
				headline(ctx, w, engine, g.now(), baseline)
			}
		}
	}
}

// loadHistory writes the simulator's past days into the store, once per
// data dir: the same events `takedown simulate --history` writes for
// `takedown events import --format jsonl`, handed to the store directly.
//
// The first week (the baseline) and the last eight days (the headline's
// window) go first, then ready is closed, so the figures are right within
// seconds while the months between are still loading.
func loadHistory(ctx context.Context, g *globals, c *config.Config, st *sqlite.DB, es *sqlite.EventStore, sim *simulate.Sim, f demoFlags, ready chan<- struct{},
	recorded func(context.Context, *store.Batch, store.BatchResult)) error {
	signalled := false
	signal := func() {
		if !signalled {
			signalled = true
			close(ready)
		}
	}
	defer signal()
	markerPath := filepath.Join(c.Data, "demo-history.json")
	want := historyMarker{Seed: f.seed, Bots: f.bots, Start: sim.Start(), Days: sim.Days()}
	if b, err := os.ReadFile(markerPath); err == nil {
		var have historyMarker
		if json.Unmarshal(b, &have) == nil && have.Seed == want.Seed && have.Bots == want.Bots && have.Start.Equal(want.Start) && have.Days >= want.Days {
			fmt.Fprintf(g.stdout, "\nsimulated history already loaded: %d days, %d events\n", have.Days, have.Events)
			signal()
			return nil
		}
	}
	fmt.Fprintf(g.stdout, "\nloading %d days of simulated history (%d infected hosts at the takedown, seed %d)…\n", sim.Days(), f.bots, f.seed)
	prepare, classifyErr, err := historicPrepare(ctx, c, g.logger(c), st, es)
	if err != nil {
		return err
	}
	// The history counts in the health figures under its own name.
	const demoHistoryListener = "demo:history"
	start := time.Now()
	const batchSize = 16384
	batches := make(chan []event.Event, 2)
	var total int64
	writeErr := make(chan error, 1)
	go func() {
		var err error
		for b := range batches {
			if b == nil { // the baseline and the last days are in
				if err == nil {
					err = es.Flush(ctx)
				}
				signal()
				continue
			}
			if err != nil {
				continue
			}
			sb := &store.Batch{Events: b, Received: uint64(len(b)),
				Listeners: []store.ListenerDelta{{Name: demoHistoryListener, Received: uint64(len(b))}}}
			var res store.BatchResult
			if res, err = es.WriteBatch(ctx, sb); err == nil {
				total += int64(len(b))
				recorded(ctx, sb, res) // into the evidence log, like live events
			}
		}
		writeErr <- err
	}()
	batch := make([]event.Event, 0, batchSize)
	lastDay, lastPrint := time.Time{}, time.Now()
	each := func(ev *event.Event) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e := *ev
		if !prepare(&e) {
			return nil
		}
		e.Listener = demoHistoryListener
		batch = append(batch, e)
		if len(batch) == batchSize {
			batches <- batch
			batch = make([]event.Event, 0, batchSize)
		}
		if d := e.Timestamp.Truncate(24 * time.Hour); d != lastDay && time.Since(lastPrint) > 3*time.Second {
			lastDay, lastPrint = d, time.Now()
			fmt.Fprintf(g.stdout, "  history: %s, %d events stored\n", d.Format("2006-01-02"), total)
		}
		return nil
	}
	var genErr error
	for i, r := range historyRanges(sim.Start(), sim.End()) {
		if genErr = sim.EachEvent(r[0], r[1], each); genErr != nil {
			break
		}
		if i == 1 {
			if len(batch) > 0 {
				batches <- batch
				batch = make([]event.Event, 0, batchSize)
			}
			batches <- nil
		}
	}
	if len(batch) > 0 && genErr == nil {
		batches <- batch
	}
	close(batches)
	if err := <-writeErr; err != nil {
		return fmt.Errorf("store history: %w", err)
	}
	if genErr != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("simulate history: %w", genErr)
	}
	if err := es.Flush(ctx); err != nil {
		return err
	}
	if err := classifyErr(); err != nil {
		return err
	}
	want.Events = total
	b, _ := json.Marshal(want)
	if err := os.WriteFile(markerPath, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "  %d events of %d days stored in %s\n", total, sim.Days(), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// headline prints the figure a takedown is judged by.
func headline(ctx context.Context, w interface{ Write([]byte) (int, error) }, e *stats.Engine, now time.Time, baseline [2]time.Time) {
	q := stats.Query{From: now.Add(-24 * time.Hour), To: now, By: stats.Dim("country"), Top: 1,
		BaselineFrom: baseline[0], BaselineTo: baseline[1]}
	r, err := e.Stats(ctx, q)
	if err != nil {
		fmt.Fprintf(w, "%s  stats: %v\n", now.UTC().Format("15:04:05"), err)
		return
	}
	line := fmt.Sprintf("%s UTC  infected IPs (24h): %s", now.UTC().Format("15:04:05"), stats.Thousands(r.UniqueIPs))
	if r.ReductionPct != nil {
		line += fmt.Sprintf(" · down %.1f%% since the takedown", *r.ReductionPct)
	}
	if len(r.Rows) > 0 && r.Rows[0].Key != "other" {
		line += fmt.Sprintf(" · %s %s", countryName(r.Rows[0].Key), stats.Thousands(r.Rows[0].UniqueIPs))
	}
	line += fmt.Sprintf(" · events stored %s\n", stats.Thousands(r.Health.Stored))
	fmt.Fprint(w, line)
}

// historyRanges orders the history [start, end) for loading: the first
// week, the last eight days, then the days between.
func historyRanges(start, end time.Time) [][2]time.Time {
	week := start.AddDate(0, 0, 7)
	if week.After(end) {
		week = end
	}
	last := end.AddDate(0, 0, -8)
	if last.Before(week) {
		last = week
	}
	return [][2]time.Time{{start, week}, {last, end}, {week, last}}
}
