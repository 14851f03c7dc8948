package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/takedown/takedown/internal/export"
	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/stats"
)

// registryExportFlags are the flags only `export registry` reads.
type registryExportFlags struct {
	tlds, ns []string
	format   string
}

func (rf *registryExportFlags) register(fl *pflag.FlagSet) {
	fl.StringArrayVar(&rf.tlds, "tld", nil, "registry: only the registries of this suffix and those under it (repeat; default every one)")
	fl.StringArrayVar(&rf.ns, "ns", nil, "registry: a sinkhole name server the names are pointed at (repeat; default dns.ns of the config)")
	fl.StringVar(&rf.format, "format", export.RegistryCSV, "registry: csv (one list, to -o FILE or stdout) or epp (one RFC 5731 domain:update per name, to -o DIR)")
}

// runExportRegistry is `takedown export registry`: what each domain registry
// must point at the sinkhole's name servers on the days from --from to --to
// (default: the day of --at, else today), docs/dga.md.
func runExportRegistry(cmd *cobra.Command, g *globals, f *exportFlags, rf *registryExportFlags) error {
	c, err := g.config(cmd)
	if err != nil {
		return err
	}
	if rf.format != export.RegistryCSV && rf.format != export.RegistryEPP {
		return usagef("--format %q: want %s or %s", rf.format, export.RegistryCSV, export.RegistryEPP)
	}
	from := g.now().UTC()
	to := from
	switch {
	case f.from != "" || f.to != "":
		if f.from == "" || f.to == "" || f.at != "" {
			return usagef("--from and --to go together, without --at")
		}
		if from, err = ParseTime(f.from); err != nil {
			return usagef("--from: %v", err)
		}
		if to, err = ParseTime(f.to); err != nil {
			return usagef("--to: %v", err)
		}
		if to.Before(from) {
			return usagef("--to %s is before --from %s", f.to, f.from)
		}
	case f.at != "":
		if from, err = ParseTime(f.at); err != nil {
			return usagef("--at: %v", err)
		}
		to = from
	}
	opt := export.RegistryOptions{TLDs: rf.tlds, NS: rf.ns}
	if len(opt.NS) == 0 {
		opt.NS = c.DNS.NS
	}
	if rf.format == export.RegistryEPP && (f.out == "" || f.out == "-") {
		return usagef("--format epp writes one XML document per name: give -o DIR")
	}
	st, err := g.openStore(cmd.Context(), c)
	if err != nil {
		return err
	}
	defer st.Close()
	set, err := registry.ActiveRange(cmd.Context(), st, from, to, f.caseID)
	if err != nil {
		return err
	}
	plan, err := export.PlanRegistries(set, opt)
	if err != nil {
		return &UsageError{err}
	}
	switch {
	case rf.format == export.RegistryEPP:
		err = writeDirAtomic(f.out, func(write func(string, []byte) error) error {
			return export.WriteRegistryEPP(plan, opt, write)
		})
	case f.out == "" || f.out == "-":
		bw := bufio.NewWriter(g.stdout)
		if err = export.WriteRegistryCSV(bw, plan, opt); err == nil {
			err = bw.Flush()
		}
	default:
		err = writeFileAtomic(f.out, func(w io.Writer) error { return export.WriteRegistryCSV(w, plan, opt) })
	}
	if err != nil {
		return err
	}
	reportRegistryPlan(g.stderr, plan, from, to)
	return nil
}

// reportRegistryPlan tells the operator on stderr what went to which
// registry and which names none can act on.
func reportRegistryPlan(w io.Writer, p *export.RegistryPlan, from, to time.Time) {
	var regs []string
	for _, s := range p.Summaries() {
		regs = append(regs, fmt.Sprintf("%s %d", s.Suffix, s.Names))
	}
	fmt.Fprintf(w, "registry export %s to %s: %d names for %d registries", from.Format(time.DateOnly), to.Format(time.DateOnly), p.Names(), len(p.Lists))
	if len(regs) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(regs, ", "))
	}
	fmt.Fprintln(w)
	if p.Addresses > 0 {
		fmt.Fprintf(w, "%d addresses and prefixes left out: no domain registry acts on them\n", p.Addresses)
	}
	const shown = 20
	for i, s := range p.Skipped {
		if i == shown {
			fmt.Fprintf(w, "… and %d more names skipped\n", len(p.Skipped)-shown)
			break
		}
		fmt.Fprintf(w, "skipped %s: %s\n", s.Name, s.Reason)
	}
}

// writeDirAtomic writes a directory of files through a temporary sibling
// directory and one rename, so that nobody reads half an export. dir must
// not exist or be empty.
func writeDirAtomic(dir string, fill func(write func(path string, data []byte) error) error) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return usagef("-o %s: the directory is not empty", dir)
	}
	dir = filepath.Clean(dir)
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	made := map[string]bool{}
	err = fill(func(path string, data []byte) error {
		p := filepath.Join(tmp, filepath.FromSlash(path))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			made[d] = true
		}
		return os.WriteFile(p, data, 0o644)
	})
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return nil
}

// registryRows is the court status report's registry summary of order o:
// the registry export of its case over the order's whole life (effective
// to expiry, or revocation). ns only satisfies the export's options; the
// summary does not show it.
func registryRows(ctx context.Context, st registry.Store, o *registry.Order, ns []string) ([]stats.RegistryRow, error) {
	until := o.Expires
	if o.Revoked && !o.RevokedAt.IsZero() && o.RevokedAt.Before(until) {
		until = o.RevokedAt
	}
	if !until.After(o.Effective) {
		return nil, nil
	}
	set, err := registry.ActiveRange(ctx, st, o.Effective, until.Add(-time.Nanosecond), o.Case)
	if err != nil {
		return nil, fmt.Errorf("registry summary of case %s: %w", o.Case, err)
	}
	if len(ns) == 0 {
		ns = []string{"ns.invalid.invalid"}
	}
	plan, err := export.PlanRegistries(set, export.RegistryOptions{NS: ns})
	if err != nil {
		return nil, fmt.Errorf("registry summary of case %s: %w", o.Case, err)
	}
	var rows []stats.RegistryRow
	for _, s := range plan.Summaries() {
		rows = append(rows, stats.RegistryRow{Suffix: s.Suffix, Names: s.Names, First: s.First, Last: s.Last})
	}
	return rows, nil
}
