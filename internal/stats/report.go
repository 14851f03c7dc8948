package stats

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

// StatusReport is the content of a court status report: the order, the
// headline figures of the report window, the per-country table and the
// daily trend. It holds aggregates only, never an address.
type StatusReport struct {
	Order     registry.OrderSummary
	At        time.Time // the report day (UTC midnight)
	Generated time.Time
	// Stats is the report window by country (Top 20, the rest in Rest).
	Stats *Result
	// Trend is the daily series up to the report day.
	Trend *Series
	// Checkpoint is the latest signed evidence checkpoint, verbatim, if
	// any.
	Checkpoint string
	// Registries is, per domain registry, what the order directs it to
	// point at the sinkhole over the order's life (the registry export's
	// summary); empty when the order seizes no name a registry acts on.
	Registries []RegistryRow
}

// RegistryRow is one registry's line of the status report: its suffix, the
// names it must act on, the first day one is needed and the last day one
// is in force.
type RegistryRow struct {
	Suffix      string
	Names       int
	First, Last time.Time
}

// DaysLeft is the number of whole days from the report day to expiry (0
// once expired).
func (r *StatusReport) DaysLeft() int {
	d := r.Order.Expires.Sub(r.At.Add(24 * time.Hour))
	if d <= 0 {
		return 0
	}
	return int(d.Hours() / 24)
}

// WriteStatusHTML writes r as one self-contained HTML page (inline style
// and SVG, no external resources).
func WriteStatusHTML(w io.Writer, r *StatusReport) error {
	return statusTmpl.Execute(w, r)
}

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"n":    Thousands,
	"pct":  pct,
	"opt":  opt,
	"day":  func(t time.Time) string { return t.UTC().Format("2 January 2006") },
	"ts":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"kind": func(c map[registry.Kind]int, k string) int { return c[registry.Kind(k)] },
	"last": func(t time.Time) time.Time { return t.Add(-time.Nanosecond) },
	"u":    func(n int) uint64 { return uint64(max(n, 0)) },
	"chart": func(s *Series) template.HTML {
		return template.HTML(TrendSVG(s, 720, 240)) //nolint:gosec // built from numbers and dates only
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Status report, case {{.Order.Case}}, {{day .At}}</title>
<style>
body{font-family:Georgia,serif;max-width:52em;margin:2em auto;color:#111;line-height:1.4}
h1{font-size:1.5em;margin-bottom:0}h2{font-size:1.15em;border-bottom:1px solid #999;margin-top:1.6em}
table{border-collapse:collapse;width:100%}th,td{padding:.2em .6em;border-bottom:1px solid #ddd}
th{text-align:left}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.big{font-size:1.3em;font-weight:bold}.note{font-size:.85em;color:#444}
pre{font-size:.8em;background:#f4f4f4;padding:.6em;white-space:pre-wrap}
@media print{body{margin:0}}
</style></head><body>
<h1>Status report: case {{.Order.Case}}</h1>
<p>{{.Order.Court}}{{with .Order.Title}}: {{.}}{{end}}<br>Report day {{day .At}}; generated {{ts .Generated}}.</p>

<h2>The order</h2>
<table>
<tr><th>Case</th><td>{{.Order.Case}}</td></tr>
<tr><th>Court</th><td>{{.Order.Court}}</td></tr>
{{with .Order.Family}}<tr><th>Botnet family</th><td>{{.}}</td></tr>{{end}}
<tr><th>Effective</th><td>{{ts .Order.Effective}}</td></tr>
<tr><th>Expires</th><td>{{ts .Order.Expires}} ({{.DaysLeft}} days left after the report day)</td></tr>
{{if .Order.Revoked}}<tr><th>Revoked</th><td>{{ts .Order.RevokedAt}}</td></tr>{{end}}
<tr><th>Indicators</th><td>{{kind .Order.Counts "domain"}} domains (with all their subdomains), {{kind .Order.Counts "host"}} host names, {{kind .Order.Counts "ip"}} IP addresses, {{kind .Order.Counts "cidr"}} address ranges{{with kind .Order.Counts "dga"}}, {{.}} domain generators (DGA){{end}}</td></tr>
</table>

<h2>Headline figures</h2>
{{with .Stats}}
<p>From {{ts .From}} to {{ts (last .To)}}:</p>
<table>
<tr><th>Distinct infected IP addresses</th><td class="n big">{{n .UniqueIPs}}</td></tr>
{{with .Baseline}}<tr><th>Baseline ({{ts .From}} to {{ts (last .To)}})</th><td class="n">{{n .UniqueIPs}}</td></tr>{{end}}
{{if .ReductionPct}}<tr><th>Reduction since the baseline</th><td class="n big">{{pct .ReductionPct}}</td></tr>{{end}}
<tr><th>Estimated infected machines</th><td class="n">{{n .EstimatedHosts}}</td></tr>
<tr><th>Resolver addresses excluded</th><td class="n">{{n .ResolverIPsExcluded}}</td></tr>
<tr><th>Sinkhole events received / stored / dropped (all cases, since installation)</th><td class="n">{{n .Health.Received}} / {{n .Health.Stored}} / {{n .Health.Dropped}}</td></tr>
</table>
<p class="note">An address counts when it made at least one direct connection (HTTP, HTTPS, TCP, UDP) to the sinkhole in the window; addresses that only sent DNS queries are recursive resolvers and are not counted. IPv6 addresses count per /64 network. The estimate of machines ({{.Estimate.Method}}) accounts for addresses that change and for several machines behind one address; it is an estimate, the address count is exact.</p>

<h2>By country</h2>
<table>
<tr><th>Country</th><th class="n">Distinct IPs</th>{{if .Baseline}}<th class="n">Baseline</th><th class="n">Reduction</th>{{end}}</tr>
{{$b := .Baseline}}
{{range .Rows}}<tr><td>{{.Key}}</td><td class="n">{{n .UniqueIPs}}</td>{{if $b}}<td class="n">{{opt .BaselineUniqueIPs}}</td><td class="n">{{pct .ReductionPct}}</td>{{end}}</tr>
{{end}}
{{with .Rest}}<tr><td>all other countries</td><td class="n">{{n .UniqueIPs}}</td>{{if $b}}<td class="n">{{opt .BaselineUniqueIPs}}</td><td class="n">{{pct .ReductionPct}}</td>{{end}}</tr>{{end}}
</table>
{{end}}

<h2>Trend</h2>
{{with .Trend}}<p>Distinct infected IP addresses per day, {{day .From}} to {{day (last .To)}}.</p>
{{chart .}}{{end}}

{{with .Registries}}<h2>Domain registries</h2>
<p>The names each registry is directed to point at the sinkhole's name servers over the order's life (fixed names and the names the order's generators yield, margin included), from <code>takedown export registry</code>.</p>
<table>
<tr><th>Registry (suffix)</th><th class="n">Names</th><th>First day</th><th>Last day</th></tr>
{{range .}}<tr><td>.{{.Suffix}}</td><td class="n">{{n (u .Names)}}</td><td>{{day .First}}</td><td>{{day .Last}}</td></tr>
{{end}}</table>
{{end}}

<h2>Evidence</h2>
{{if .Checkpoint}}<p>Latest signed checkpoint of the evidence log:</p><pre>{{.Checkpoint}}</pre>
{{else}}<p>No signed evidence checkpoint is available for this report.</p>{{end}}
</body></html>
`))

// TrendSVG draws s's unique_ips as an inline SVG line chart of the given
// size, with a y axis from zero and date labels at both ends.
func TrendSVG(s *Series, width, height int) string {
	const left, right, top, bottom = 70, 10, 10, 30
	var peak uint64
	for _, p := range s.Points {
		peak = max(peak, p.UniqueIPs)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="distinct infected IP addresses per day">`, width, height, width, height)
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`, left, top, pw, ph)
	if peak == 0 || len(s.Points) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12">no data</text></svg>`, left+10, top+20)
		return b.String()
	}
	for _, f := range []float64{0, 0.5, 1} {
		y := float64(top) + ph*(1-f)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, left-6, y+4, Thousands(uint64(f*float64(peak))))
	}
	var pts []string
	n := len(s.Points)
	for i, p := range s.Points {
		x := float64(left)
		if n > 1 {
			x += pw * float64(i) / float64(n-1)
		} else {
			x += pw / 2
		}
		y := float64(top) + ph*(1-float64(p.UniqueIPs)/float64(peak))
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#b00" stroke-width="2" points="%s"/>`, strings.Join(pts, " "))
	first, last := s.Points[0].From.UTC().Format(time.DateOnly), s.Points[n-1].From.UTC().Format(time.DateOnly)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">%s</text>`, left, height-8, first)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, width-right, height-8, last)
	b.WriteString(`</svg>`)
	return b.String()
}
