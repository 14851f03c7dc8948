package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/registry"
)

func actor() string {
	if s := os.Getenv("TAKEDOWN_ACTOR"); s != "" {
		return s
	}
	if u, err := user.Current(); err == nil {
		return u.Username + "@cli"
	}
	return "cli"
}

func newOrderCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "order", Short: "The registry of court orders and seized indicators"}
	cmd.AddCommand(newOrderImportCmd(g), newOrderListCmd(g), newOrderShowCmd(g), newOrderExtendCmd(g), newOrderRevokeCmd(g))
	return cmd
}

type importFlags struct {
	caseID, court, effective, expires, family, title, notes string
	allowReserved, allowWide, dryRun, asJSON                bool
}

func newOrderImportCmd(g *globals) *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import FILE…",
		Short: "Import a court order's indicators (text, CSV with header, or STIX 2.1 bundle; - for stdin); all or nothing",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImport(cmd, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.caseID, "case", "", "case ID (required)")
	fl.StringVar(&f.court, "court", "", "issuing court (required for a new case)")
	fl.StringVar(&f.effective, "effective", "", "when the order takes effect, RFC 3339 or date (required for a new case)")
	fl.StringVar(&f.expires, "expires", "", "when the order expires (required for a new case)")
	fl.StringVar(&f.family, "family", "", "default botnet family of the indicators")
	fl.StringVar(&f.title, "title", "", "title of the order")
	fl.StringVar(&f.notes, "notes", "", "notes")
	fl.BoolVar(&f.allowReserved, "allow-reserved", false, "accept reserved addresses and special-use names (tests, demo)")
	fl.BoolVar(&f.allowWide, "allow-wide", false, "accept CIDRs wider than /16 (IPv4) or /32 (IPv6)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "show what would change and change nothing")
	fl.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	return cmd
}

func runImport(cmd *cobra.Command, g *globals, f importFlags, args []string) error {
	c, err := g.config(cmd)
	if err != nil {
		return err
	}
	var probs registry.Problems
	bad := func(msg string) { probs = append(probs, registry.Problem{File: "command line", Msg: msg}) }
	if f.caseID == "" {
		bad("--case is required")
	}
	o := registry.Order{Case: f.caseID, Court: f.court, Title: f.title, Family: strings.ToLower(f.family), Notes: f.notes}
	if f.effective != "" {
		if o.Effective, err = ParseTime(f.effective); err != nil {
			bad("--effective: " + err.Error())
		}
	}
	if f.expires != "" {
		if o.Expires, err = ParseTime(f.expires); err != nil {
			bad("--expires: " + err.Error())
		}
	}
	guard, err := registry.NewGuard(c.Registry.NeverSeize)
	if err != nil {
		return &UsageError{err}
	}
	guard.AllowReserved, guard.AllowWide = f.allowReserved, f.allowWide
	guard.DGAMargin = c.Registry.DGAMargin.D()

	// Parse and check every file before the store is opened: a bad import
	// leaves the registry byte for byte as it was.
	var all []registry.Indicator
	dups := 0
	seen := map[string]bool{}
	for _, name := range args {
		var r io.Reader
		if name == "-" {
			r, name = g.stdin, "stdin"
		} else {
			fh, err := os.Open(name)
			if err != nil {
				probs = append(probs, registry.Problem{File: name, Msg: err.Error()})
				continue
			}
			defer fh.Close()
			r = fh
		}
		res, err := registry.ParseFile(name, r, guard)
		if err != nil {
			if ps, ok := err.(registry.Problems); ok {
				probs = append(probs, ps...)
				continue
			}
			return err
		}
		dups += res.Duplicates
		for _, ind := range res.Indicators {
			k := string(ind.Kind) + " " + ind.Value
			if seen[k] {
				dups++
				continue
			}
			seen[k] = true
			all = append(all, ind)
		}
	}
	if len(probs) > 0 {
		return probs
	}
	if len(all) == 0 {
		return usagef("no indicators in %s", strings.Join(args, ", "))
	}
	ctx := cmd.Context()
	st, err := g.openStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	gens, err := checkGenerated(ctx, st, o, all, guard)
	if err != nil {
		return err
	}
	res, err := st.Import(ctx, o, all, actor(), f.dryRun)
	if err != nil {
		if strings.Contains(err.Error(), "are required") || strings.Contains(err.Error(), "is not after") {
			return &UsageError{err}
		}
		return err
	}
	if f.asJSON {
		return writeJSON(g.stdout, struct {
			registry.ImportResult
			Case       string            `json:"case"`
			Duplicates int               `json:"duplicates_collapsed"`
			DryRun     bool              `json:"dry_run"`
			Generated  []generatedReport `json:"generated,omitempty"`
		}{res, f.caseID, dups, f.dryRun, gens})
	}
	verb := "imported"
	if f.dryRun {
		verb = "would import (dry run, nothing changed)"
	}
	created := ""
	if res.Created {
		created = " (new order)"
	}
	fmt.Fprintf(g.stdout, "case %s%s: %s %d indicators; %d already present; %d duplicate lines collapsed\n",
		f.caseID, created, verb, res.Added, res.AlreadyPresent, dups)
	for _, r := range gens {
		printGenerated(g.stdout, r)
	}
	return nil
}

// generatedReport is what a dga indicator yields over its order's life.
type generatedReport struct {
	Generator string          `json:"generator"`
	Names     int             `json:"names"`
	Skipped   []registry.Skip `json:"skipped"`
}

// checkGenerated runs the collateral-damage guard over every name each dga
// indicator of inds yields over the order's window (the existing order's,
// or o's for a new one), recording the refusals in the indicator.
func checkGenerated(ctx context.Context, st registry.Store, o registry.Order, inds []registry.Indicator, guard *registry.Guard) ([]generatedReport, error) {
	var out []generatedReport
	win := o
	looked := false
	for i := range inds {
		ind := &inds[i]
		if ind.Kind != registry.KindDGA {
			continue
		}
		if !looked {
			looked = true
			if sum, _, _, err := st.Order(ctx, o.Case); err == nil {
				win = sum.Order
			} else if !errors.Is(err, registry.ErrNotFound) {
				return nil, err
			}
			if win.Effective.IsZero() || !win.Expires.After(win.Effective) {
				return nil, nil // the import reports the missing window
			}
		}
		n, _, err := registry.CheckGenerated(win, ind, guard)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ind.Source, err)
		}
		out = append(out, generatedReport{Generator: ind.Value, Names: n, Skipped: ind.Skipped})
	}
	return out, nil
}

func printGenerated(w io.Writer, r generatedReport) {
	fmt.Fprintf(w, "  dga:%s yields %d names over the order's life; %d skipped by the collateral-damage guard\n", r.Generator, r.Names, len(r.Skipped))
	for i, s := range r.Skipped {
		if i == 10 {
			fmt.Fprintf(w, "    … and %d more (order show --json lists them)\n", len(r.Skipped)-i)
			break
		}
		fmt.Fprintf(w, "    skipped %s (%s): %s\n", s.Name, s.Day.Format(time.DateOnly), s.Reason)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func countsText(c map[registry.Kind]int) string {
	var parts []string
	for _, k := range []registry.Kind{registry.KindDomain, registry.KindHost, registry.KindIP, registry.KindCIDR, registry.KindDGA} {
		if c[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func status(o *registry.Order, now time.Time) string {
	switch {
	case o.Revoked:
		return "revoked"
	case now.Before(o.Effective):
		return "pending"
	case !now.Before(o.Expires):
		return "expired"
	}
	return "active"
}

func newOrderListCmd(g *globals) *cobra.Command {
	var asJSON, asCSV bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the orders",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			orders, err := st.Orders(cmd.Context())
			if err != nil {
				return err
			}
			now := g.now().UTC()
			if asJSON {
				if orders == nil {
					orders = []registry.OrderSummary{}
				}
				return writeJSON(g.stdout, orders)
			}
			if asCSV {
				fmt.Fprintln(g.stdout, "id,case,court,status,effective,expires,domain,host,ip,cidr")
				for _, o := range orders {
					fmt.Fprintf(g.stdout, "%d,%s,%s,%s,%s,%s,%d,%d,%d,%d\n", o.ID, csvField(o.Case), csvField(o.Court), status(&o.Order, now),
						o.Effective.Format(time.RFC3339), o.Expires.Format(time.RFC3339),
						o.Counts[registry.KindDomain], o.Counts[registry.KindHost], o.Counts[registry.KindIP], o.Counts[registry.KindCIDR])
				}
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCASE\tSTATUS\tEFFECTIVE (UTC)\tEXPIRES (UTC)\tDAYS LEFT\tINDICATORS")
			for _, o := range orders {
				left, state := "-", status(&o.Order, now)
				if state == "active" || state == "pending" {
					left = fmt.Sprint(int(o.Expires.Sub(now).Hours() / 24))
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, o.Case, state,
					o.Effective.Format("2006-01-02 15:04"), o.Expires.Format("2006-01-02 15:04"), left, countsText(o.Counts))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV")
	return cmd
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

func newOrderShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an order (by case ID or number), its indicators and its audit trail",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			o, inds, trail, err := st.Order(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var gens []generatedReport
			for _, ind := range inds {
				if ind.Kind != registry.KindDGA {
					continue
				}
				names, skipped, err := registry.GeneratedNames(o.Order, ind, o.Effective, o.Expires, nil)
				if err != nil {
					return fmt.Errorf("%s: %w", ind.Value, err)
				}
				gens = append(gens, generatedReport{Generator: ind.Value, Names: len(names), Skipped: skipped})
			}
			if asJSON {
				return writeJSON(g.stdout, struct {
					*registry.OrderSummary
					Status     string                 `json:"status"`
					Indicators []registry.Indicator   `json:"indicator_list"`
					Generated  []generatedReport      `json:"generated,omitempty"`
					Audit      []registry.AuditRecord `json:"audit"`
				}{o, status(&o.Order, g.now()), inds, gens, trail})
			}
			w := g.stdout
			fmt.Fprintf(w, "case:       %s (order %d)\ncourt:      %s\n", o.Case, o.ID, o.Court)
			if o.Title != "" {
				fmt.Fprintf(w, "title:      %s\n", o.Title)
			}
			if o.Family != "" {
				fmt.Fprintf(w, "family:     %s\n", o.Family)
			}
			fmt.Fprintf(w, "status:     %s\neffective:  %s\nexpires:    %s\nindicators: %s\n\n", status(&o.Order, g.now()),
				o.Effective.Format(time.RFC3339), o.Expires.Format(time.RFC3339), countsText(o.Counts))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tINDICATOR\tFAMILY\tSOURCE")
			sort.SliceStable(inds, func(i, j int) bool { return inds[i].Kind < inds[j].Kind })
			for _, ind := range inds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ind.Kind, ind.Value, ind.Family, ind.Source)
			}
			tw.Flush()
			if len(gens) > 0 {
				fmt.Fprintln(w, "\ngenerated names (from the order's effective day to its expiry):")
				for _, r := range gens {
					printGenerated(w, r)
				}
			}
			fmt.Fprintln(w, "\naudit trail:")
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			for _, a := range trail {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.At.Format(time.RFC3339), a.Actor, a.Action, a.Detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newOrderExtendCmd(g *globals) *cobra.Command {
	var expires string
	cmd := &cobra.Command{
		Use:   "extend ID --expires TIME",
		Short: "Move an order's expiry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires == "" {
				return usagef("--expires is required")
			}
			t, err := ParseTime(expires)
			if err != nil {
				return usagef("--expires: %v", err)
			}
			_, st, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Extend(cmd.Context(), args[0], t, actor()); err != nil {
				return &UsageError{err}
			}
			fmt.Fprintf(g.stdout, "order %s now expires %s\n", args[0], t.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&expires, "expires", "", "new expiry, RFC 3339 or date")
	return cmd
}

func newOrderRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "End an order now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Revoke(cmd.Context(), args[0], g.now().UTC(), actor()); err != nil {
				return &UsageError{err}
			}
			fmt.Fprintf(g.stdout, "order %s revoked\n", args[0])
			return nil
		},
	}
}
