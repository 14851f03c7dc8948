package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"text/tabwriter"

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
	var historyDays int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the demo: import the sample court order and write every export",
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
			order := demo.Order(g.now(), historyDays)
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
			fmt.Fprintf(g.stdout, "\nnext: takedown order show %s --data %s\n", demo.Case, c.Data)
			return nil
		},
	}
	cmd.Flags().IntVar(&historyDays, "history-days", 180, "days between the order taking effect and now")
	return cmd
}
