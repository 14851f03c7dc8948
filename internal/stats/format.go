package stats

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/takedown/takedown/internal/store"
)

// Thousands formats n with comma thousands separators (1,601,619).
func Thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	lead := len(s) % 3
	if lead > 0 {
		b.WriteString(s[:lead])
	}
	for i := lead; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

func pct(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 1, 64) + "%"
}

func opt(n *uint64) string {
	if n == nil {
		return ""
	}
	return Thousands(*n)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// NameASNs sets Org on the rows of a result grouped by ASN (the rest row
// is not one AS), from org (the geo data's names: geo.DB.ASOrg); nil or a
// result grouped otherwise is left as it is.
func (r *Result) NameASNs(org func(asn uint32) string) {
	if r.By == ByASN && org != nil {
		nameASNs(r.Rows, org)
	}
}

// NameASNs does for every point of s what Result.NameASNs does.
func (s *Series) NameASNs(org func(asn uint32) string) {
	if s.By == ByASN && org != nil {
		for i := range s.Points {
			nameASNs(s.Points[i].Rows, org)
		}
	}
}

func nameASNs(rows []Row, org func(uint32) string) {
	for i := range rows {
		if n, err := strconv.ParseUint(rows[i].Key, 10, 32); err == nil {
			rows[i].Org = org(uint32(n))
		}
	}
}

// printable replaces control characters (names from geo files and
// sensors must not break a table or a terminal).
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// WriteTable writes r as an aligned, human-readable table.
func WriteTable(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "window              %s – %s\n", stamp(r.From), stamp(r.To))
	fmt.Fprintf(w, "unique IPs          %s\n", Thousands(r.UniqueIPs))
	if r.Baseline != nil {
		fmt.Fprintf(w, "baseline            %s – %s: %s unique IPs, reduction %s\n", stamp(r.Baseline.From), stamp(r.Baseline.To), Thousands(r.Baseline.UniqueIPs), pct(r.ReductionPct))
	}
	fmt.Fprintf(w, "estimated hosts     %s (%s; see docs/counting.md)\n", Thousands(r.EstimatedHosts), r.Estimate.Method)
	fmt.Fprintf(w, "resolvers excluded  %s\n", Thousands(r.ResolverIPsExcluded))
	fmt.Fprintf(w, "events              received %s, stored %s, dropped %s\n", Thousands(r.Health.Received), Thousands(r.Health.Stored), Thousands(r.Health.Dropped))
	if r.Health.Summarised > 0 {
		// Contacts beyond their source's budget (docs/security.md).
		fmt.Fprintf(w, "                    summarised %s (counted, stored inside summary records)\n", Thousands(r.Health.Summarised))
	}
	if err := writeListeners(w, r.Health.Listeners); err != nil {
		return err
	}
	if r.Undecided > 0 {
		fmt.Fprintf(w, "warning             %s aggregates of cut days could not be placed (raw events purged) and were counted\n", Thousands(r.Undecided))
	}
	if r.By == "" {
		return nil
	}
	fmt.Fprintln(w)
	rows := r.Rows
	if r.Rest != nil {
		rows = append(rows[:len(rows):len(rows)], *r.Rest)
	}
	// Keys read left-aligned: pad them to one width in the right-aligned
	// table.
	title := strings.ToUpper(string(r.By))
	width := len(title)
	for _, row := range rows {
		width = max(width, len(row.Key))
	}
	left := func(s string) string { return s + strings.Repeat(" ", width-len(s)) }
	head := left(title) + "\tUNIQUE IPS\t"
	if r.Baseline != nil {
		head += "BASELINE\tREDUCTION\t"
	}
	// The AS organisation follows the figures, left-aligned: after the
	// last cell, so that long names do not widen the columns.
	if r.By == ByASN {
		head += "  ORGANISATION"
	}
	fmt.Fprintln(tw, head)
	for _, row := range rows {
		line := left(row.Key) + "\t" + Thousands(row.UniqueIPs) + "\t"
		if r.Baseline != nil {
			line += opt(row.BaselineUniqueIPs) + "\t" + pct(row.ReductionPct) + "\t"
		}
		if row.Org != "" {
			line += "  " + printable(row.Org)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// writeListeners writes the per-listener health block under the events
// line: one line per listener, names left-aligned, figures right-aligned.
func writeListeners(w io.Writer, ls []store.ListenerHealth) error {
	if len(ls) == 0 {
		return nil
	}
	// Names come from configuration and from sensors: no control
	// character may break the table.
	names := make([]string, len(ls))
	width := len("LISTENER")
	for i, l := range ls {
		names[i] = printable(l.Name)
		width = max(width, len(names[i]))
	}
	left := func(s string) string { return s + strings.Repeat(" ", width-len(s)) } // the padding indents by two
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, left("LISTENER")+"\tRECEIVED\tSTORED\tDROPPED\t")
	for i, l := range ls {
		fmt.Fprintln(tw, left(names[i])+"\t"+Thousands(l.Received)+"\t"+Thousands(l.Stored)+"\t"+Thousands(l.Dropped)+"\t")
	}
	return tw.Flush()
}

// WriteCSV writes r's rows as CSV with a header: key, unique_ips,
// baseline_unique_ips, reduction_pct, and org when grouped by ASN; then the
// rest of the keys beyond --top as key "other" and the total as key "all".
func WriteCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	head := []string{"key", "unique_ips", "baseline_unique_ips", "reduction_pct"}
	if r.By == ByASN {
		head = append(head, "org")
	}
	cw.Write(head)
	rec := func(row Row) {
		b, p := "", ""
		if row.BaselineUniqueIPs != nil {
			b = strconv.FormatUint(*row.BaselineUniqueIPs, 10)
		}
		if row.ReductionPct != nil {
			p = strconv.FormatFloat(*row.ReductionPct, 'f', 1, 64)
		}
		line := []string{row.Key, strconv.FormatUint(row.UniqueIPs, 10), b, p}
		if r.By == ByASN {
			line = append(line, row.Org)
		}
		cw.Write(line)
	}
	for _, row := range r.Rows {
		rec(row)
	}
	if r.Rest != nil {
		rec(*r.Rest)
	}
	total := Row{Key: "all", UniqueIPs: r.UniqueIPs, ReductionPct: r.ReductionPct}
	if r.Baseline != nil {
		total.BaselineUniqueIPs = &r.Baseline.UniqueIPs
	}
	rec(total)
	cw.Flush()
	return cw.Error()
}

// WriteSeriesTable writes s as an aligned table, one line per point (and
// per row when grouped).
func WriteSeriesTable(w io.Writer, s *Series) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "FROM\tTO\t"
	if s.By != "" {
		head += strings.ToUpper(string(s.By)) + "\t"
	}
	fmt.Fprintln(tw, head+"UNIQUE IPS\tEST. HOSTS\tRESOLVERS EXCLUDED\t")
	for _, p := range s.Points {
		fmt.Fprint(tw, stamp(p.From)+"\t"+stamp(p.To)+"\t")
		if s.By != "" {
			fmt.Fprint(tw, "all\t")
		}
		fmt.Fprintln(tw, Thousands(p.UniqueIPs)+"\t"+Thousands(p.EstimatedHosts)+"\t"+Thousands(p.ResolverIPsExcluded)+"\t")
		for _, row := range p.Rows {
			line := "\t\t" + row.Key + "\t" + Thousands(row.UniqueIPs) + "\t\t\t"
			if row.Org != "" {
				line += "  " + printable(row.Org)
			}
			fmt.Fprintln(tw, line)
		}
	}
	return tw.Flush()
}

// WriteSeriesCSV writes s as CSV: from, to, key, unique_ips,
// estimated_hosts, resolver_ips_excluded, and org when grouped by ASN; key
// "all" is the point's total (the only line that has the estimate and
// resolvers).
func WriteSeriesCSV(w io.Writer, s *Series) error {
	cw := csv.NewWriter(w)
	head := []string{"from", "to", "key", "unique_ips", "estimated_hosts", "resolver_ips_excluded"}
	asn := s.By == ByASN
	if asn {
		head = append(head, "org")
	}
	cw.Write(head)
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	for _, p := range s.Points {
		total := []string{stamp(p.From), stamp(p.To), "all", u(p.UniqueIPs), u(p.EstimatedHosts), u(p.ResolverIPsExcluded)}
		if asn {
			total = append(total, "")
		}
		cw.Write(total)
		for _, row := range p.Rows {
			line := []string{stamp(p.From), stamp(p.To), row.Key, u(row.UniqueIPs), "", ""}
			if asn {
				line = append(line, row.Org)
			}
			cw.Write(line)
		}
	}
	cw.Flush()
	return cw.Error()
}
