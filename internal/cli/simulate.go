package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/progress"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/simulate"
)

// simulateFlags are the flags of `takedown simulate`.
type simulateFlags struct {
	dns, http, https     string
	bots, days           int
	churn, nat           float64
	cleanup              string
	seed                 uint64
	truth, history       string
	domains, caseID      string
	start, countries     string
	beaconsPerDay        int
	rate                 float64
	concurrency          int
	duration             time.Duration
	beacons              int64
	dnsShare, httpsShare float64
	json, quiet          bool
}

func newSimulateCmd(g *globals) *cobra.Command {
	var f simulateFlags
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Simulate a Rustock-like botnet: write its history and ground truth, beacon to the sinkhole over loopback",
		Long: `simulate builds a deterministic population of infected hosts (countries,
real address ranges, churn, NAT, resolvers, clean-up) and
  --history FILE   writes its past days as JSON-lines events
                   (for: takedown events import --format jsonl FILE),
  --truth FILE     writes the ground truth per day and 7-day window (JSON),
  --http/--https/--dns ADDR
                   sends live beacons of today's infected hosts to the
                   sinkholes, loopback only, each with a PROXY v2 header
                   carrying the simulated source address.
The seized names come from --domains FILE (one a line) or the registry.
docs/simulator.md describes the model and the files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSimulate(cmd, g, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dns, "dns", "", "DNS sinkhole (UDP) address for live queries, e.g. 127.0.0.1:5353")
	fl.StringVar(&f.http, "http", "", "HTTP sinkhole address for live beacons, e.g. 127.0.0.1:8080")
	fl.StringVar(&f.https, "https", "", "HTTPS sinkhole address for live beacons, e.g. 127.0.0.1:8443")
	fl.IntVar(&f.bots, "bots", simulate.DefaultBots, "infected hosts on day 0")
	fl.IntVar(&f.days, "days", simulate.DefaultDays, "days of history, ending at the start of today (UTC) unless --start")
	fl.Float64Var(&f.churn, "churn", simulate.DefaultChurn, "daily probability that an address changes (within its network)")
	fl.Float64Var(&f.nat, "nat", simulate.DefaultNAT, "fraction of hosts sharing an address behind NAT")
	fl.StringVar(&f.cleanup, "cleanup", "rustock", `daily fraction of hosts cleaned, or "rustock" for the 2011 schedule`)
	fl.Uint64Var(&f.seed, "seed", 1, "random seed: the same flags give the same population, history and truth")
	fl.StringVar(&f.truth, "truth", "", "write the ground truth (JSON) to FILE ('-' for stdout)")
	fl.StringVar(&f.history, "history", "", "write the history (JSON lines) to FILE ('-' for stdout)")
	fl.StringVar(&f.domains, "domains", "", "seized names to call, one a line (default: the registry's names in force)")
	fl.StringVar(&f.caseID, "case", "", "case of the history events (and of the registry names used)")
	fl.StringVar(&f.start, "start", "", "day 0 of the history (TIME; default: today minus --days)")
	fl.StringVar(&f.countries, "countries", "", "country weights, e.g. IN=14,RU=10,US=5.4 (default: Rustock 2011)")
	fl.IntVar(&f.beaconsPerDay, "beacons-per-day", simulate.DefaultBeaconsPerDay, "history beacons per infected host per day")
	fl.Float64Var(&f.httpsShare, "https-share", simulate.DefaultHTTPSShare, "fraction of beacons over HTTPS")
	fl.Float64Var(&f.rate, "rate", 1000, "live beacons per second (0: as fast as the sinkhole takes them)")
	fl.IntVar(&f.concurrency, "concurrency", 64, "live beacons in flight")
	fl.DurationVar(&f.duration, "duration", 0, "stop live beacons after this long (default: until Ctrl-C)")
	fl.Int64Var(&f.beacons, "beacons", 0, "stop live beacons after this many (default: until Ctrl-C)")
	fl.Float64Var(&f.dnsShare, "dns-share", 0.1, "fraction of live beacons that are DNS queries, with --dns and --http/--https")
	fl.BoolVar(&f.json, "json", false, "print the live report as JSON")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress of --history on standard error")
	return cmd
}

func runSimulate(cmd *cobra.Command, g *globals, f *simulateFlags) error {
	ctx := cmd.Context()
	live := f.dns != "" || f.http != "" || f.https != ""
	if !live && f.truth == "" && f.history == "" {
		return usagef("nothing to do: give --history FILE, --truth FILE or a sinkhole address (--http, --https, --dns)")
	}
	targets := simulate.Targets{HTTP: f.http, HTTPS: f.https, DNS: f.dns, Rate: f.rate, Concurrency: f.concurrency,
		Beacons: f.beacons, DNSShare: f.dnsShare}
	// Refuse non-loopback targets before any work.
	for _, t := range []struct{ flag, addr string }{{"--http", f.http}, {"--https", f.https}, {"--dns", f.dns}} {
		if t.addr != "" {
			if _, err := simulate.CheckLoopback(t.flag, t.addr); err != nil {
				return &UsageError{err}
			}
		}
	}
	o := simulate.DefaultOptions(g.now())
	o.Seed, o.Bots, o.Days, o.Churn, o.NAT, o.Now = f.seed, f.bots, f.days, f.churn, f.nat, g.now
	o.BeaconsPerDay, o.HTTPSShare, o.Case = f.beaconsPerDay, f.httpsShare, f.caseID
	if f.httpsShare == 0 {
		o.HTTPSShare = -1 // none
	}
	o.Start = g.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -f.days)
	if f.start != "" {
		t, err := ParseTime(f.start)
		if err != nil {
			return usagef("--start: %w", err)
		}
		o.Start = t
	}
	switch strings.ToLower(f.cleanup) {
	case "rustock", "":
		o.Cleanup = simulate.CleanupRustock
	default:
		v, err := strconv.ParseFloat(f.cleanup, 64)
		if err != nil || v < 0 || v > 1 {
			return usagef("--cleanup %q: want a fraction from 0 to 1, or rustock", f.cleanup)
		}
		o.Cleanup = v
	}
	if f.countries != "" {
		m, err := simulate.ParseCountries(f.countries)
		if err != nil {
			return usagef("--countries: %w", err)
		}
		o.Countries = m
	}
	if f.domains != "" {
		var err error
		if o.Domains, err = readDomains(f.domains, g.stdin); err != nil {
			return err
		}
	}
	c, err := g.config(cmd)
	if err != nil {
		return err
	}
	if f.domains == "" {
		if o.Domains, o.Case, o.DGA, err = registryDomains(ctx, g, c, f.caseID); err != nil {
			return err
		}
	}
	o.Logger = g.logger(c)
	sim, err := simulate.New(o)
	if err != nil {
		return &UsageError{err}
	}
	if f.history != "" {
		var meter *progress.Meter // events (lines) and bytes written, on stderr
		if !f.quiet {
			meter = progress.Start(progress.Options{Out: g.stderr, Label: "simulate --history", Unit: "events"})
		}
		err := writeOut(f.history, g.stdout, func(w io.Writer) error {
			return sim.WriteHistory(progress.Writer{W: w, M: meter}, sim.Start(), sim.End())
		})
		meter.Stop()
		if err != nil {
			return fmt.Errorf("--history: %w", err)
		}
	}
	if f.truth != "" {
		if err := writeOut(f.truth, g.stdout, sim.WriteTruth); err != nil {
			return fmt.Errorf("--truth: %w", err)
		}
	}
	if !live {
		return nil
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	rep, err := sim.RunLive(ctx, targets)
	if err != nil {
		return &UsageError{err}
	}
	if f.json {
		v := map[string]any{"day": rep.Day.Format(time.DateOnly), "http": rep.HTTP, "https": rep.HTTPS, "dns": rep.DNS,
			"failed": rep.Failed, "seconds": rep.Duration.Seconds(), "beacons_per_second": float64(rep.Beacons()) / rep.Duration.Seconds(),
			"unique_ips": rep.UniqueIPs}
		if rep.Err != nil {
			v["first_error"] = rep.Err.Error()
		}
		return writeJSON(g.stdout, v)
	}
	fmt.Fprintf(g.stdout, "live beacons of %s: %d http, %d https, %d dns, %d failed in %s (%.0f/s)\n",
		rep.Day.Format(time.DateOnly), rep.HTTP, rep.HTTPS, rep.DNS, rep.Failed, rep.Duration.Round(time.Millisecond),
		float64(rep.Beacons())/rep.Duration.Seconds())
	if rep.Err != nil {
		fmt.Fprintf(g.stdout, "first failure: %v\n", rep.Err)
	}
	return nil
}

// writeOut writes to path atomically, or to stdout for "-".
func writeOut(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	return writeFileAtomic(path, write)
}

// readDomains reads --domains FILE ('-' is stdin).
func readDomains(path string, stdin io.Reader) ([]string, error) {
	var r io.Reader = stdin
	if path != "-" {
		fh, err := os.Open(path)
		if err != nil {
			return nil, &UsageError{fmt.Errorf("--domains: %w", err)}
		}
		defer fh.Close()
		r = fh
	}
	names, err := simulate.ReadDomains(r, path)
	if err != nil {
		return nil, &UsageError{err}
	}
	return names, nil
}

// registryDomains returns the names in force in the registry (of caseID,
// if given), their case when they all share one, and the DGA family of its
// generators (docs/dga.md): the names generated for today are the family's
// to call, not the fixed names'.
func registryDomains(ctx context.Context, g *globals, c *config.Config, caseID string) ([]string, string, *simulate.DGA, error) {
	st, err := g.openStore(ctx, c)
	if err != nil {
		return nil, "", nil, err
	}
	defer st.Close()
	set, err := st.Active(ctx, g.now(), caseID)
	if err != nil {
		return nil, "", nil, err
	}
	dga, generated, err := registryDGA(ctx, st, g.now(), caseID)
	if err != nil {
		return nil, "", nil, err
	}
	var names []string
	cases := map[string]bool{}
	for _, e := range set.Entries {
		if e.Kind == registry.KindDomain || e.Kind == registry.KindHost {
			names = append(names, e.Value)
			cases[e.Case] = true
		}
	}
	if len(names) == 0 {
		return nil, "", nil, usagef("no seized names in force in the registry of %s: import an order or give --domains FILE", c.Data)
	}
	if caseID == "" && len(cases) == 1 {
		for k := range cases {
			caseID = k
		}
	}
	return withoutGenerated(names, generated), caseID, dga, nil
}
