package cli

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown/takedown/internal/app"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
)

// newSubscriberCmd is `takedown subscriber add|list|remove`: the network
// owners who receive daily reports.
func newSubscriberCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "subscriber",
		Short: "Add, list and remove the network owners who receive daily reports",
		Long: `A subscriber is a network owner (ISP, hosting company, national CERT) that
receives a daily report of the infected addresses in its networks: ASNs,
IPv4/IPv6 CIDRs and country codes. Formats: shadowserver (CSV, the
default), xarf4, xarf02. TLP marking defaults to AMBER. See
docs/notifications.md.`,
	}
	cmd.AddCommand(newSubscriberAddCmd(g), newSubscriberListCmd(g), newSubscriberRemoveCmd(g))
	return cmd
}

func newSubscriberAddCmd(g *globals) *cobra.Command {
	var org, contacts, networks, formats, tlp, cadence, csvFile string
	cmd := &cobra.Command{
		Use:   "add ID --org NAME --contacts LIST --networks LIST | add --csv FILE",
		Short: "Add one subscriber, or many from a CSV file (all or nothing)",
		Long: `Add one subscriber from flags, or every subscriber of a CSV file with a
header row (columns id, organisation, contacts, networks, and optionally
formats, tlp, cadence; lists inside a cell separated by spaces, ';' or ',').
Every problem is reported as file:line and nothing is added.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var subs []notify.Subscriber
			now := g.now().UTC()
			if csvFile != "" {
				if len(args) > 0 {
					return usagef("give either --csv FILE or an ID, not both")
				}
				var r io.Reader = g.stdin
				name := "<stdin>"
				if csvFile != "-" {
					f, err := os.Open(csvFile)
					if err != nil {
						return &UsageError{err}
					}
					defer f.Close()
					r, name = f, csvFile
				}
				var err error
				if subs, err = notify.ParseSubscribersCSV(name, r); err != nil {
					return err
				}
			} else {
				if len(args) != 1 {
					return usagef("subscriber add needs an ID (or --csv FILE)")
				}
				s := notify.Subscriber{ID: args[0], Org: org, Contacts: splitCLIList(contacts), TLP: tlp, Cadence: cadence}
				for _, f := range splitCLIList(formats) {
					s.Formats = append(s.Formats, notify.Format(f))
				}
				if err := s.NormalizeWith(networks, "--networks"); err != nil {
					return &UsageError{err}
				}
				subs = []notify.Subscriber{s}
			}
			for i := range subs {
				subs[i].Created = now
			}
			ns, db, err := g.notifyStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := ns.AddSubscribers(cmd.Context(), subs); err != nil {
				if errors.Is(err, notify.ErrExists) {
					return &UsageError{fmt.Errorf("%w; nothing was added", err)}
				}
				return err
			}
			fmt.Fprintf(g.stdout, "%d subscriber(s) added\n", len(subs))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&org, "org", "", "organisation name")
	fl.StringVar(&contacts, "contacts", "", "contact e-mail addresses, comma-separated")
	fl.StringVar(&networks, "networks", "", "ASNs, CIDRs and country codes, comma-separated (AS64500,192.0.2.0/24,2001:db8::/32,DE)")
	fl.StringVar(&formats, "formats", "", "report formats: shadowserver (default), xarf4, xarf02")
	fl.StringVar(&tlp, "tlp", "AMBER", "TLP marking: CLEAR, GREEN, AMBER, AMBER+STRICT, RED")
	fl.StringVar(&cadence, "cadence", "daily", "how often reports are sent (only daily)")
	fl.StringVar(&csvFile, "csv", "", "add every subscriber of this CSV file ('-': stdin)")
	return cmd
}

func splitCLIList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' })
}

func newSubscriberListCmd(g *globals) *cobra.Command {
	var asJSON, asCSV bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List subscribers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, db, err := g.notifyStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			subs, err := ns.Subscribers(cmd.Context())
			if err != nil {
				return err
			}
			if subs == nil {
				subs = []notify.Subscriber{}
			}
			switch {
			case asJSON:
				return writeJSON(g.stdout, map[string]any{"subscribers": subs})
			case asCSV:
				cw := csv.NewWriter(g.stdout)
				cw.Write([]string{"id", "organisation", "contacts", "networks", "formats", "tlp", "cadence"})
				for _, s := range subs {
					cw.Write([]string{s.ID, s.Org, strings.Join(s.Contacts, " "), strings.ReplaceAll(s.Networks.String(), ",", " "), formatList(s.Formats), s.TLP, s.Cadence})
				}
				cw.Flush()
				return cw.Error()
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tORGANISATION\tCONTACTS\tNETWORKS\tFORMATS\tTLP")
			for _, s := range subs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Org, strings.Join(s.Contacts, ","), s.Networks.String(), formatList(s.Formats), s.TLP)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV (the import layout)")
	return cmd
}

func formatList(fs []notify.Format) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, " ")
}

func newSubscriberRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID…",
		Short: "Remove subscribers (their delivery ledger is kept)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, db, err := g.notifyStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			subs, err := ns.Subscribers(cmd.Context())
			if err != nil {
				return err
			}
			var missing []string
			for _, id := range args {
				if !slices.ContainsFunc(subs, func(s notify.Subscriber) bool { return s.ID == id }) {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				return usagef("no subscriber %s; nothing was removed", strings.Join(missing, ", "))
			}
			for _, id := range args {
				if err := ns.RemoveSubscriber(cmd.Context(), id); err != nil {
					if errors.Is(err, notify.ErrNotFound) {
						return &UsageError{err}
					}
					return err
				}
			}
			fmt.Fprintf(g.stdout, "%d subscriber(s) removed\n", len(args))
			return nil
		},
	}
}

// notifyStore opens the configured store for subscribers and the delivery
// ledger. The caller closes the returned store.
func (g *globals) notifyStore(cmd *cobra.Command) (notifyStore, *stores, error) {
	_, db, err := g.configuredStore(cmd)
	if err != nil {
		return nil, nil, err
	}
	return db.notify(), db, nil
}

// yesterday is the UTC day before now.
func (g *globals) yesterday() time.Time {
	return g.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
}

func parseDay(flag, s string) (time.Time, error) {
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}, usagef("%s: %v", flag, err)
	}
	return t.UTC().Truncate(24 * time.Hour), nil
}

type notifySendFlags struct {
	date, outbox, smtp, from, starttls, user, passFile, publicSource, apiURL, cleanupURL string
	dryRun, retryFailed, resendInDoubt, asJSON                                           bool
	compressAbove, xarf02Max, tries                                                      int
}

// newNotifyCmd is `takedown notify send|status`.
func newNotifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Send the daily network-owner reports and show their delivery",
	}
	cmd.AddCommand(newNotifySendCmd(g), newNotifyStatusCmd(g))
	return cmd
}

func newNotifySendCmd(g *globals) *cobra.Command {
	var f notifySendFlags
	cmd := &cobra.Command{
		Use:   "send [--date DAY] [--dry-run]",
		Short: "Send each subscriber the infected addresses in its networks on one UTC day",
		Long: `For each subscriber, the infected addresses in its networks seen on --date
(default: yesterday, UTC), one row per address and family, in the
Shadowserver event4_sinkhole / event4_sinkhole_http layout (event6_… for
IPv6), with a plain-text summary, by SMTP. No mail on a day without data.

Flags left out take the configuration's notify section (notify.smtp,
notify.from, notify.maildir…), as serve's daily reports do.

Each (subscriber, day) is delivered once: the message is composed once and
recorded in a ledger with a stable Message-ID; a run after a crash or a
temporary failure (4xx, lost connection) sends those same bytes again, a
permanent failure (5xx) is recorded as failed (takedown notify status;
--retry-failed sends them again). A report whose sender stopped after
handing the whole message to the server and before recording its answer
(or whose connection broke waiting for that answer) is in doubt: it may have
been delivered, so it is never re-sent by itself; check the relay's log for
its Message-ID and re-send it with --resend-in-doubt if it is not there.
With --dry-run the messages are written to --outbox as .eml files and
nothing is sent or recorded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			day := g.yesterday()
			var err error
			if f.date != "" {
				if day, err = parseDay("--date", f.date); err != nil {
					return err
				}
			}
			c, db, err := g.configuredStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			// The configuration's notify section, with each flag given in
			// its place: a flag left out keeps the configuration's value, or
			// its own default where the configuration has none. The mailer
			// and the message are then serve's daily reports' (app).
			fl := cmd.Flags()
			cc := *c
			nc := &cc.Notify
			for _, o := range []struct {
				flag string
				dst  *string
				v    string
			}{{"smtp", &nc.SMTP.Addr, f.smtp}, {"from", &nc.From, f.from}, {"starttls", &nc.SMTP.StartTLS, f.starttls},
				{"smtp-user", &nc.SMTP.Username, f.user}, {"smtp-password-file", &nc.SMTP.PasswordFile, f.passFile},
				{"public-source", &nc.PublicSource, f.publicSource}, {"api-url", &nc.APIURL, f.apiURL},
				{"cleanup-url", &nc.CleanupURL, f.cleanupURL}} {
				if fl.Changed(o.flag) || *o.dst == "" {
					*o.dst = o.v
				}
			}
			for _, o := range []struct {
				flag string
				dst  *int
				v    int
			}{{"compress-above", &nc.CompressAbove, f.compressAbove}, {"xarf02-max", &nc.XARF02Max, f.xarf02Max}} {
				if fl.Changed(o.flag) || *o.dst == 0 {
					*o.dst = o.v
				}
			}
			if fl.Changed("smtp") {
				nc.Maildir = "" // --smtp names the relay to send through
			}
			switch nc.SMTP.StartTLS {
			case notify.StartTLSAuto, notify.StartTLSAlways, notify.StartTLSNever:
			default:
				return usagef("--starttls %q: want auto, always or never", nc.SMTP.StartTLS)
			}
			mailer, err := app.NotifyMailer(&cc)
			if err != nil {
				return &UsageError{err}
			}
			if s, ok := mailer.(*notify.SMTP); ok && nc.SMTP.PasswordFile == "" {
				s.Password = os.Getenv("TAKEDOWN_SMTP_PASSWORD")
			}
			ns := db.notify()
			n, err := notify.New(notify.Options{
				Store: ns, Source: ns, Tries: f.tries, Logger: g.logger(c), Now: g.now,
				Mailer: mailer, Message: app.NotifyMessage(&cc),
			})
			if err != nil {
				return &UsageError{err}
			}
			if f.dryRun {
				dir := f.outbox
				if dir == "" {
					dir = filepath.Join(c.Data, "outbox")
				}
				files, err := n.DryRun(cmd.Context(), day, dir)
				if err != nil {
					return err
				}
				if f.asJSON {
					return writeJSON(g.stdout, map[string]any{"day": day.Format(time.DateOnly), "files": append([]string{}, files...)})
				}
				fmt.Fprintf(g.stdout, "%d message(s) for %s written to %s (nothing sent)\n", len(files), day.Format(time.DateOnly), dir)
				for _, p := range files {
					fmt.Fprintln(g.stdout, "  "+p)
				}
				return nil
			}
			if f.retryFailed {
				if _, err := ns.Requeue(cmd.Context(), day, notify.StateFailed); err != nil {
					return err
				}
			}
			if f.resendInDoubt {
				if _, err := ns.Requeue(cmd.Context(), day, notify.StateInDoubt); err != nil {
					return err
				}
			}
			outs, err := n.Send(cmd.Context(), day)
			if err != nil {
				return err
			}
			if f.asJSON {
				return writeJSON(g.stdout, map[string]any{"day": day.Format(time.DateOnly), "reports": append([]notify.Outcome{}, outs...)})
			}
			if len(outs) == 0 {
				fmt.Fprintf(g.stdout, "no subscriber has data on %s: nothing sent\n", day.Format(time.DateOnly))
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBSCRIBER\tROWS\tSTATE\tATTEMPTS\tDETAIL")
			failed, deferred, doubt := 0, 0, 0
			for _, o := range outs {
				detail := o.Error
				if o.Busy {
					detail = "not due or being sent by another process"
				}
				switch o.State {
				case notify.StateFailed:
					failed++
				case notify.StatePending:
					deferred++
				case notify.StateInDoubt:
					doubt++
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", o.Subscriber, o.Rows, o.State, o.Attempts, detail)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			switch {
			case failed > 0 || doubt > 0:
				return fmt.Errorf("%d report(s) refused permanently, %d in doubt, %d deferred (takedown notify status)", failed, doubt, deferred)
			case deferred > 0:
				return fmt.Errorf("%d report(s) deferred after temporary failures; the next run (or serve) retries them with the same Message-ID", deferred)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.date, "date", "", "the UTC day to report (default: yesterday)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "write the messages to --outbox instead of sending them")
	fl.StringVar(&f.outbox, "outbox", "", "folder for --dry-run messages (default DATA/outbox)")
	fl.StringVar(&f.smtp, "smtp", "127.0.0.1:25", "SMTP server (relay) host:port")
	fl.StringVar(&f.from, "from", "takedown@localhost", "sender address")
	fl.StringVar(&f.starttls, "starttls", notify.StartTLSAuto, "STARTTLS: auto (when offered; required with --smtp-user), always, never")
	fl.StringVar(&f.user, "smtp-user", "", "AUTH PLAIN user (over TLS or to localhost only)")
	fl.StringVar(&f.passFile, "smtp-password-file", "", "file holding the AUTH password (default $TAKEDOWN_SMTP_PASSWORD)")
	fl.StringVar(&f.publicSource, "public-source", "takedown", "who runs the sinkhole (the reports' public_source)")
	fl.StringVar(&f.apiURL, "api-url", "", "REST API base URL mentioned in the summary (e.g. https://takedown.example/api/v1)")
	fl.StringVar(&f.cleanupURL, "cleanup-url", "", "clean-up guidance URL mentioned in the summary")
	fl.IntVar(&f.compressAbove, "compress-above", notify.DefaultCompressAbove, "gzip attachments larger than this many bytes (-1: never)")
	fl.IntVar(&f.tries, "tries", 3, "attempts per report in this run before leaving it for the next")
	fl.BoolVar(&f.retryFailed, "retry-failed", false, "send the day's permanently failed reports again (same Message-ID)")
	fl.BoolVar(&f.resendInDoubt, "resend-in-doubt", false, "send the day's in-doubt reports again (same Message-ID), after checking the relay's log")
	fl.IntVar(&f.xarf02Max, "xarf02-max", notify.DefaultXARF02Max, "X-ARF 0.2 messages per daily mail; the rest go in one YAML attachment")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON")
	return cmd
}

func newNotifyStatusCmd(g *globals) *cobra.Command {
	var from, to string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--from DAY] [--to DAY]",
		Short: "Show the delivery ledger: pending, sent and failed reports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lo, hi time.Time
			var err error
			if from != "" {
				if lo, err = parseDay("--from", from); err != nil {
					return err
				}
			}
			if to != "" {
				if hi, err = parseDay("--to", to); err != nil {
					return err
				}
				hi = hi.AddDate(0, 0, 1)
			}
			ns, db, err := g.notifyStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			ds, err := ns.Deliveries(cmd.Context(), lo, hi)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g.stdout, map[string]any{"deliveries": append([]notify.Delivery{}, ds...)})
			}
			return notify.WriteStatus(g.stdout, ds)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first day (default: all)")
	cmd.Flags().StringVar(&to, "to", "", "last day, inclusive (default: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// newReportNetworkCmd is `takedown report network`.
func newReportNetworkCmd(g *globals) *cobra.Command {
	var asn, cidr, country, date, typ, out, public string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "network --asn N | --cidr CIDR | --country CC [--date DAY]",
		Short: "Print one network's infected addresses on one UTC day in the Shadowserver CSV layout",
		Long: `Print the infected addresses inside one network (an ASN, a CIDR or a
country) seen on --date (default: yesterday, UTC): one row per address and
family, in the Shadowserver sinkhole layout. On stdout every row uses the
event4_sinkhole_http columns (a superset), or only the rows of --type;
with -o DIR one file per report type is written, named
YYYY-MM-DD-<report type>-<network>.csv, the network written so that
IntelMQ's Shadowserver parser takes the name: as64500, us,
198-51-100-0-24, 2001-db8-0-0-0-0-0-0-32 (docs/notifications.md). Resolvers (sources seen only
through DNS) are never listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A one-shot process whose heap is the report it builds: at
			// Go's default a collection ran every few MiB of a /16's day
			// and took a seventh of its CPU (bench/report).
			setGC(400)
			var spec []string
			for _, v := range []string{asn, cidr, country} {
				if v != "" {
					spec = append(spec, v)
				}
			}
			if len(spec) != 1 {
				return usagef("give exactly one of --asn, --cidr, --country")
			}
			if asn != "" && !strings.HasPrefix(strings.ToUpper(asn), "AS") {
				spec[0] = "AS" + asn
			}
			nets, err := netscope.ParseNetworks(spec[0])
			if err != nil || nets.Empty() || (country != "" && len(nets.Countries) != 1) || (cidr != "" && len(nets.Prefixes) != 1) || (asn != "" && len(nets.ASNs) != 1) {
				return usagef("%q is not a valid --asn, --cidr or --country", spec[0])
			}
			if typ != "" && !slices.Contains(notify.ReportTypes, typ) {
				return usagef("--type %q: want one of %s", typ, strings.Join(notify.ReportTypes, ", "))
			}
			day := g.yesterday()
			if date != "" {
				if day, err = parseDay("--date", date); err != nil {
					return err
				}
			}
			ns, db, err := g.notifyStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			rows, err := notify.Collect(cmd.Context(), ns, day, []netscope.Networks{nets})
			if err != nil {
				return err
			}
			rs := rows[0]
			if typ != "" {
				rs = slices.DeleteFunc(rs, func(r notify.Row) bool { return r.ReportType() != typ })
			}
			o := notify.ReportOptions{PublicSource: public}
			switch {
			case asJSON:
				return writeJSON(g.stdout, map[string]any{"day": day.Format(time.DateOnly), "network": nets.String(), "rows": reportRowsJSON(rs)})
			case out != "":
				if err := os.MkdirAll(out, 0o750); err != nil {
					return err
				}
				name := notify.NetworksLabel(nets) // 198-51-100-0-24: a name IntelMQ's Shadowserver parser takes
				for t, trs := range notify.SplitByType(rs) {
					p := filepath.Join(out, notify.ReportFileName(day, t, name, "csv"))
					if err := writeFileAtomic(p, func(w io.Writer) error { return notify.WriteCSV(w, t, trs, o) }); err != nil {
						return fmt.Errorf("write %s: %w", p, err)
					}
					fmt.Fprintln(g.stdout, p)
				}
				return nil
			}
			t := typ
			if t == "" {
				t = "event4_sinkhole_http"
			}
			return notify.WriteCSV(g.stdout, t, rs, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&asn, "asn", "", "an AS number")
	fl.StringVar(&cidr, "cidr", "", "an IPv4 or IPv6 prefix")
	fl.StringVar(&country, "country", "", "an ISO 3166 country code")
	fl.StringVar(&date, "date", "", "the UTC day (default: yesterday)")
	fl.StringVar(&typ, "type", "", "only rows of this report type (event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http)")
	fl.StringVarP(&out, "output", "o", "", "write one CSV file per report type into this folder")
	fl.StringVar(&public, "public-source", "takedown", "who runs the sinkhole (public_source)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func reportRowsJSON(rs []notify.Row) []map[string]string {
	out := make([]map[string]string, 0, len(rs))
	for i := range rs {
		var b strings.Builder
		notify.WriteCSV(&b, "event4_sinkhole_http", rs[i:i+1], notify.ReportOptions{})
		recs, _ := csv.NewReader(strings.NewReader(b.String())).ReadAll()
		m := map[string]string{"report_type": rs[i].ReportType(), "hits": strconv.FormatUint(rs[i].Hits, 10)}
		if len(recs) == 2 {
			for j, h := range recs[0] {
				if recs[1][j] != "" {
					m[h] = recs[1][j]
				}
			}
		}
		out = append(out, m)
	}
	return out
}
