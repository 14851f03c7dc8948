package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/demo"
	"github.com/takedown/takedown/internal/export"
	"github.com/takedown/takedown/internal/registry"
)

// exportFiles names the file each export format is written to in the demo.
var exportFiles = map[string]string{
	"rpz": "takedown.rpz", "hosts": "hosts", "dnsmasq": "dnsmasq.conf", "unbound": "unbound-local.conf",
	"nftables": "takedown.nft", "suricata": "takedown.rules", "stix": "stix-bundle.json", "csv": "indicators.csv", "json": "indicators.json",
}

func newDemoCmd(g *globals) *cobra.Command {
	var f demoFlags
	var exportsOnly bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the demo: a court order, every export, the sinkhole, the dashboard and a simulated botnet, all on loopback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			fmt.Fprintf(g.stdout, "takedown demo: data dir %s\n", c.Data)
			guard, err := registry.NewGuard(c.Registry.NeverSeize)
			if err != nil {
				return err
			}
			guard.AllowReserved = true // the sample seizes only .example names and documentation addresses
			res, err := registry.ParseFile(demo.SampleOrderFile, bytes.NewReader(demo.SampleOrder()), guard)
			if err != nil {
				return fmt.Errorf("the bundled sample order: %w", err)
			}
			st, err := g.openStore(ctx, c)
			if err != nil {
				return err
			}
			defer st.Close()
			order := demo.Order(g.now(), f.historyDays)
			ir, err := st.Import(ctx, order, res.Indicators, "demo", false)
			if err != nil {
				return err
			}
			sum, _, _, err := st.Order(ctx, demo.Case)
			if err != nil {
				return err
			}
			state := "already in the registry"
			if ir.Created {
				state = "imported"
			}
			fmt.Fprintf(g.stdout, "court order %s %s: %s\n  %s\n  in force %s to %s (UTC)\n  indicators: %s\n",
				demo.Case, state, sum.Court, sum.Title, sum.Effective.Format("2006-01-02"), sum.Expires.Format("2006-01-02"), countsText(sum.Counts))

			set, err := st.Active(ctx, g.now(), "")
			if err != nil {
				return err
			}
			dir := filepath.Join(c.Data, "exports")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			opt := export.Options{SinkholeA: netip.MustParseAddr("127.0.0.1"), SinkholeAAAA: netip.MustParseAddr("::1")}
			fmt.Fprintf(g.stdout, "\nexports of the %d indicators in force (serial %d), in %s:\n", len(set.Entries), set.Serial, dir)
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			for _, name := range export.Names() {
				ex, err := export.Lookup(name)
				if err != nil {
					return err
				}
				path := filepath.Join(dir, exportFiles[name])
				if err := writeFileAtomic(path, func(w io.Writer) error { return ex.Export(w, set, opt) }); err != nil {
					return fmt.Errorf("export %s: %w", name, err)
				}
				fi, err := os.Stat(path)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "  %s\t%s\t%d bytes\n", name, path, fi.Size())
			}
			tw.Flush()
			if exportsOnly {
				fmt.Fprintf(g.stdout, "\nnext: takedown order show %s --data %s\n", demo.Case, c.Data)
				return nil
			}
			if f.headless && f.duration <= 0 {
				return usagef("--headless needs --duration")
			}
			return runDemoLive(ctx, g, c, st.sq, f, sum.Order)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.historyDays, "history-days", 180, "days between the order taking effect and now (simulated history)")
	fl.IntVar(&f.bots, "bots", 20000, "infected hosts at the takedown")
	fl.Uint64Var(&f.seed, "seed", 1, "simulator seed")
	fl.Float64Var(&f.rate, "rate", 200, "live beacons per second")
	fl.IntVar(&f.beaconsPerDay, "beacons-per-day", 1, "history beacons per infected host per day")
	fl.BoolVar(&f.headless, "headless", false, "run without waiting for Ctrl-C (with --duration)")
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (0: at Ctrl-C)")
	fl.DurationVar(&f.every, "every", 5*time.Second, "how often the headline is printed")
	fl.StringVar(&f.truth, "truth", "", "write the simulated population's ground truth (JSON) to FILE")
	fl.BoolVar(&exportsOnly, "exports-only", false, "import the order and write the exports, then exit")
	return cmd
}
