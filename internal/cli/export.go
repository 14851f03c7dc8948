package cli

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/export"
	"github.com/takedown/takedown/internal/registry"
)

type exportFlags struct {
	at, caseID, out, origin, sinkA, sinkAAAA, action string
	from, to                                         string
}

func newExportCmd(g *globals) *cobra.Command {
	var f exportFlags
	var rf registryExportFlags
	cmd := &cobra.Command{
		Use:   "export FORMAT",
		Short: "Write the indicators in force as " + strings.Join(export.Names(), ", ") + ", or per domain registry",
		Long: "Write the indicators in force at --at (default now) in one of the formats\n" +
			strings.Join(export.Names(), ", ") + ".\nThe same registry and time give the same bytes.\n" +
			"export registry writes, per domain registry, the names to point at the sinkhole's\n" +
			"name servers on the days --from to --to, as CSV or EPP (docs/dga.md).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == export.RegistryFormat {
				return runExportRegistry(cmd, g, &f, &rf)
			}
			ex, err := export.Lookup(args[0])
			if err != nil {
				return &UsageError{err}
			}
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			at := g.now().UTC()
			if f.at != "" {
				if at, err = ParseTime(f.at); err != nil {
					return usagef("--at: %v", err)
				}
			}
			opt := export.Options{Origin: f.origin, Action: f.action}
			if f.sinkA == "" && f.sinkAAAA == "" && !cmd.Flags().Changed("action") {
				// Default to the configured sinkhole addresses.
				if len(c.Sinkhole.A) > 0 {
					f.sinkA = c.Sinkhole.A[0]
				}
				if len(c.Sinkhole.AAAA) > 0 {
					f.sinkAAAA = c.Sinkhole.AAAA[0]
				}
			}
			if f.sinkA != "" {
				if opt.SinkholeA, err = netip.ParseAddr(f.sinkA); err != nil || !opt.SinkholeA.Is4() {
					return usagef("--sinkhole-a: %q is not an IPv4 address", f.sinkA)
				}
			}
			if f.sinkAAAA != "" {
				if opt.SinkholeAAAA, err = netip.ParseAddr(f.sinkAAAA); err != nil || !opt.SinkholeAAAA.Is6() {
					return usagef("--sinkhole-aaaa: %q is not an IPv6 address", f.sinkAAAA)
				}
			}
			st, err := g.openStore(cmd.Context(), c)
			if err != nil {
				return err
			}
			defer st.Close()
			var set *registry.ActiveSet
			if f.from != "" || f.to != "" {
				// A range of days, ahead of time (docs/dga.md).
				if f.from == "" || f.to == "" || f.at != "" {
					return usagef("--from and --to go together, without --at")
				}
				from, err := ParseTime(f.from)
				if err != nil {
					return usagef("--from: %v", err)
				}
				to, err := ParseTime(f.to)
				if err != nil {
					return usagef("--to: %v", err)
				}
				if to.Before(from) {
					return usagef("--to %s is before --from %s", f.to, f.from)
				}
				if set, err = registry.ActiveRange(cmd.Context(), st, from, to, f.caseID); err != nil {
					return err
				}
			} else if set, err = st.Active(cmd.Context(), at, f.caseID); err != nil {
				return err
			}
			if f.out == "" || f.out == "-" {
				bw := bufio.NewWriter(g.stdout)
				if err := ex.Export(bw, set, opt); err != nil {
					return &UsageError{err}
				}
				return bw.Flush()
			}
			return writeFileAtomic(f.out, func(w io.Writer) error {
				if err := ex.Export(w, set, opt); err != nil {
					return &UsageError{err}
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.at, "at", "", "the instant whose indicators are exported (default now)")
	fl.StringVar(&f.from, "from", "", "with --to: export what the orders seize on these UTC days, every generated name of each day included (docs/dga.md)")
	fl.StringVar(&f.to, "to", "", "the last day of --from's range (included)")
	fl.StringVar(&f.caseID, "case", "", "only this case")
	fl.StringVarP(&f.out, "output", "o", "", "write to FILE (atomically) instead of stdout")
	fl.StringVar(&f.origin, "origin", "", "RPZ: the zone's origin (default "+export.DefaultOrigin+")")
	fl.StringVar(&f.sinkA, "sinkhole-a", "", "the IPv4 sinkhole address seized names resolve to (default: sinkhole.a of the config)")
	fl.StringVar(&f.sinkAAAA, "sinkhole-aaaa", "", "the IPv6 sinkhole address (default: sinkhole.aaaa of the config)")
	fl.StringVar(&f.action, "action", export.ActionLocal, "RPZ/DNS formats: local (answer with the sinkhole) or nxdomain")
	rf.register(fl)
	return cmd
}

// writeFileAtomic writes a file through a temporary file and a rename, so
// that a resolver reloading it never reads half a file.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	if err := write(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
