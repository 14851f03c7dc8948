package notify

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/store"
)

// Shadowserver sinkhole report columns (FORMATS.md; report_schema).
var (
	sinkholeColumns = []string{"timestamp", "protocol", "src_ip", "src_port", "src_asn", "src_geo", "src_region", "src_city",
		"src_hostname", "src_naics", "src_sector", "device_vendor", "device_type", "device_model", "severity", "dst_ip", "dst_port",
		"dst_asn", "dst_geo", "dst_region", "dst_city", "dst_hostname", "dst_naics", "dst_sector", "public_source", "infection",
		"family", "tag", "application", "version", "event_id", "ssl_cipher", "ssl_servername"}
	httpColumns = append(slices.Clip(sinkholeColumns), "http_url", "http_host", "http_agent", "forwarded_by", "http_referer", "machine_name")
)

// Columns returns the header of a report type (event4_sinkhole,
// event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http).
func Columns(reportType string) []string {
	if strings.HasSuffix(reportType, "_http") {
		return slices.Clone(httpColumns)
	}
	return slices.Clone(sinkholeColumns)
}

// Row is one infected address and family on one UTC day: the store's
// aggregate, with the details (ports, HTTP and TLS fields) of the last
// direct-connection event of the key when the raw events are still kept.
type Row struct {
	Day       time.Time
	Timestamp time.Time // of the detail event, or the aggregate's last_seen
	Protocol  string
	SrcIP     netip.Addr
	SrcPort   uint16
	ASN       uint32
	Org       string
	Geo       string
	DstIP     netip.Addr
	DstPort   uint16
	Family    string
	Tag       string
	Case      string
	EventID   string
	FirstSeen time.Time
	LastSeen  time.Time
	Hits      uint64
	SSLCipher string
	SNI       string
	HTTPURL   string
	HTTPHost  string
	HTTPAgent string
	Referer   string
	BotID     string
	HTTP      bool // an HTTP request: the _http layout
}

// ReportType is the Shadowserver report the row belongs to.
func (r *Row) ReportType() string {
	t := "event4_sinkhole"
	if r.SrcIP.Is6() {
		t = "event6_sinkhole"
	}
	if r.HTTP {
		t += "_http"
	}
	return t
}

// Collect returns, for each of sets, the infected addresses inside it on
// the UTC day starting at day: one Row per (address, family), ordered by
// address then family. Sources seen only through DNS are resolvers and are
// never listed. The aggregates are scanned once and the day's raw events
// once, whatever the number of sets; a store that can (SelectSource) reads
// only the sets' aggregates, and only the raw events of their prefixes
// when the sets are all prefixes. A store that names each key's best event
// (store.DetailReader) has it read by its number, one per row; only the
// keys it cannot name (ties, keys from before) have their raw events read.
func Collect(ctx context.Context, src Source, day time.Time, sets []netscope.Networks) ([][]Row, error) {
	day = time.Unix(store.DayOf(day), 0).UTC()
	out := make([][]Row, len(sets))
	type ref struct{ set, row int }
	refs := map[store.DayKey][]ref{}
	// The keys whose best event the store names (store.DetailReader) have
	// it read by number while the scan goes on (detailReads).
	details := map[store.DayKey]event.Event{}
	var byNumber *detailReads
	if dr, ok := src.(store.DetailReader); ok {
		byNumber = startDetailReads(ctx, dr, details)
	}
	sel, prefixes := selectionOf(sets)
	scan := src.ScanDayIPs
	if ss, ok := src.(SelectSource); ok {
		scan = func(ctx context.Context, from, to time.Time, fn func(*store.DayIP) error) error {
			return ss.ScanDayIPsSelect(ctx, from, to, sel, fn)
		}
	}
	err := scan(ctx, day, day.Add(24*time.Hour), func(a *store.DayIP) error {
		if a.Protocols&store.Direct == 0 {
			return nil
		}
		k := store.DayKey{Day: day.Unix(), IP: a.IP.Unmap(), Family: a.Family}
		if byNumber != nil && a.Detail > 0 {
			byNumber.add(a.Detail, k)
		}
		for i := range sets {
			if !sets[i].Covers(a.IP, a.ASN, a.Country) {
				continue
			}
			refs[k] = append(refs[k], ref{i, len(out[i])})
			out[i] = append(out[i], Row{Day: day, Timestamp: a.LastSeen, Protocol: mainProtocol(a.Protocols), SrcIP: a.IP.Unmap(),
				ASN: a.ASN, Org: a.Org, Geo: a.Country, Family: a.Family, Case: a.Case, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen,
				Hits: a.Hits, BotID: first(a.BotIDs)})
		}
		return nil
	})
	if byNumber != nil {
		err = errors.Join(err, byNumber.wait())
	}
	if err != nil {
		return nil, fmt.Errorf("collect %s: %w", day.Format(time.DateOnly), err)
	}
	if len(refs) == 0 {
		return out, nil
	}
	// The detail of a key is its last direct event; an HTTP request wins
	// over other protocols, so that a bot that speaks HTTP is in the _http
	// report with its URL and agent. The keys the store named it for have
	// it now; the others' come from their raw events: a store that keeps
	// none, ties, keys from before, events purged.
	missing := make(map[store.DayKey]bool, len(refs))
	wantIP := make(map[netip.Addr]struct{}, len(refs))
	for k := range refs {
		if _, ok := details[k]; !ok {
			missing[k] = true
			wantIP[k.IP] = struct{}{}
		}
	}
	if len(details) > 0 && len(wantIP) <= maxAddressReads {
		prefixes = nil // read only the addresses left, below
	}
	if prefixes == nil && len(wantIP) <= maxAddressReads {
		// An ASN's or a country's addresses are known now: read their
		// events only, one index seek each, rather than the whole day.
		prefixes = make([]netip.Prefix, 0, len(wantIP))
		for a := range wantIP {
			prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
		}
		slices.SortFunc(prefixes, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	}
	if len(wantIP) > 0 {
		err = src.ScanDayEvents(ctx, day, prefixes, func(e *event.Event) error {
			if _, want := wantIP[e.SrcIP.Unmap()]; !want || store.EventBits(e)&store.Direct == 0 {
				return nil
			}
			k := store.DayKey{Day: day.Unix(), IP: e.SrcIP.Unmap(), Family: e.Family}
			if !missing[k] {
				return nil
			}
			have, ok := details[k]
			if !ok || better(e, &have) {
				details[k] = *e
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("collect %s: %w", day.Format(time.DateOnly), err)
		}
	}
	for k, e := range details {
		for _, rf := range refs[k] {
			r := &out[rf.set][rf.row]
			r.Timestamp, r.Protocol, r.SrcPort, r.DstIP, r.DstPort = e.Timestamp.UTC(), e.Protocol, e.SrcPort, e.DstIP, e.DstPort
			r.Tag, r.EventID, r.SSLCipher, r.SNI = e.Tag, e.ID, e.SSLCipher, e.SSLServerName
			r.HTTPURL, r.HTTPHost, r.HTTPAgent, r.Referer = e.HTTPURL, e.HTTPHost, e.HTTPAgent, e.HTTPReferer
			r.HTTP = store.IsHTTPDetail(&e)
			if e.BotID != "" {
				r.BotID = e.BotID
			}
		}
	}
	return out, nil
}

// maxAddressReads is the most addresses whose raw events Collect reads
// one by one; for more, reading the whole day is cheaper.
const maxAddressReads = 200_000

// selectionOf returns the union of sets as a store selection, and their
// prefixes when prefixes alone make the sets (nil otherwise: the
// addresses of an ASN or a country are known only from the aggregates, so
// the day's raw events are read whole and filtered by address).
func selectionOf(sets []netscope.Networks) (*store.Selection, []netip.Prefix) {
	sel := &store.Selection{}
	onlyPrefixes := true
	for _, n := range sets {
		for _, p := range n.Prefixes {
			p = p.Masked()
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
			}
			sel.Prefixes = append(sel.Prefixes, p)
		}
		sel.ASNs = append(sel.ASNs, n.ASNs...)
		for _, c := range n.Countries {
			sel.Countries = append(sel.Countries, strings.ToUpper(c))
		}
		if len(n.ASNs) > 0 || len(n.Countries) > 0 {
			onlyPrefixes = false
		}
	}
	if !onlyPrefixes {
		return sel, nil
	}
	return sel, append([]netip.Prefix{}, sel.Prefixes...)
}

// better reports whether e is a better detail than have: HTTP over other
// protocols, then the later event.
func better(e, have *event.Event) bool {
	if h1, h2 := store.IsHTTPDetail(e), store.IsHTTPDetail(have); h1 != h2 {
		return h1
	}
	if c := e.Timestamp.Compare(have.Timestamp); c != 0 {
		return c > 0
	}
	return e.ID > have.ID
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// mainProtocol names a protocol from an aggregate's mask when no raw event
// says which one the detail came from.
func mainProtocol(p store.Protocols) string {
	for _, n := range (p & store.Direct).Names() {
		return n
	}
	return ""
}

// Options of the report content.
type ReportOptions struct {
	// PublicSource names who runs the sinkhole (Shadowserver
	// public_source), e.g. the operator's organisation.
	PublicSource string
	// Severity of the rows; default "high".
	Severity string
}

// SplitByType groups rows by report type, in a fixed order of types.
func SplitByType(rows []Row) map[string][]Row {
	m := map[string][]Row{}
	for _, r := range rows {
		t := r.ReportType()
		m[t] = append(m[t], r)
	}
	return m
}

// ReportTypes is the order report files are attached in.
var ReportTypes = []string{"event4_sinkhole", "event4_sinkhole_http", "event6_sinkhole", "event6_sinkhole_http"}

const tsLayout = "2006-01-02 15:04:05"

// WriteCSV writes rows of one report type in its Shadowserver layout, with
// a header row. Rows are written in the order given.
func WriteCSV(w io.Writer, reportType string, rows []Row, o ReportOptions) error {
	cols := Columns(reportType)
	cw := csv.NewWriter(w)
	if err := cw.Write(cols); err != nil {
		return err
	}
	sev := cmp.Or(o.Severity, "high")
	rec := make([]string, len(cols))
	for i := range rows {
		r := &rows[i]
		for j, c := range cols {
			rec[j] = field(r, c, sev, o.PublicSource)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func field(r *Row, col, severity, public string) string {
	switch col {
	case "timestamp":
		return r.Timestamp.UTC().Format(tsLayout)
	case "protocol":
		switch r.Protocol {
		case event.ProtoHTTP, event.ProtoHTTPS:
			return "tcp"
		}
		return r.Protocol
	case "src_ip":
		return r.SrcIP.String()
	case "src_port":
		return port(r.SrcPort)
	case "src_asn":
		if r.ASN == 0 {
			return ""
		}
		return strconv.FormatUint(uint64(r.ASN), 10)
	case "src_geo":
		return r.Geo
	case "severity":
		return severity
	case "dst_ip":
		if !r.DstIP.IsValid() {
			return ""
		}
		return r.DstIP.Unmap().String()
	case "dst_port":
		return port(r.DstPort)
	case "public_source":
		return public
	case "infection", "family":
		return r.Family
	case "tag":
		return r.Tag
	case "application":
		return r.Protocol
	case "event_id":
		return r.EventID
	case "ssl_cipher":
		return r.SSLCipher
	case "ssl_servername":
		return r.SNI
	case "http_url":
		return r.HTTPURL
	case "http_host":
		return r.HTTPHost
	case "http_agent":
		return r.HTTPAgent
	case "http_referer":
		return r.Referer
	case "machine_name":
		return r.BotID
	}
	return ""
}

func port(p uint16) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(int(p))
}

// Reporter is who sends XARF reports.
type Reporter struct {
	Org     string `json:"org"`
	Contact string `json:"contact"`
	Domain  string `json:"domain"`
}

// xarfNS namespaces the stable report IDs of XARF reports.
var xarfNS = uuid.MustParse("6f0f4d4e-6c1b-4b0e-9a55-3a2f0b1f7e21")

func reportID(r *Row) string {
	return uuid.NewSHA1(xarfNS, []byte(r.Day.Format(time.DateOnly)+"|"+r.SrcIP.String()+"|"+r.Family)).String()
}

// WriteXARF4 writes rows as a JSON array of XARF v4 connection /
// infected_host reports, one per row.
func WriteXARF4(w io.Writer, rows []Row, rep Reporter, generated time.Time) error {
	type xarf struct {
		Version     string   `json:"xarf_version"`
		ReportID    string   `json:"report_id"`
		Timestamp   string   `json:"timestamp"`
		Reporter    Reporter `json:"reporter"`
		Source      string   `json:"source_identifier"`
		SourcePort  uint16   `json:"source_port,omitempty"`
		Category    string   `json:"category"`
		Type        string   `json:"type"`
		Malware     string   `json:"malware_family,omitempty"`
		C2          string   `json:"c2_server,omitempty"`
		FirstSeen   string   `json:"first_seen"`
		LastSeen    string   `json:"last_seen"`
		Protocol    string   `json:"protocol,omitempty"`
		Destination string   `json:"destination_ip,omitempty"`
		DstPort     uint16   `json:"destination_port,omitempty"`
		Evidence    []any    `json:"evidence"`
	}
	out := make([]xarf, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		x := xarf{Version: "4.0.0", ReportID: reportID(r), Timestamp: generated.UTC().Format(time.RFC3339), Reporter: rep,
			Source: r.SrcIP.String(), SourcePort: r.SrcPort, Category: "connection", Type: "infected_host", Malware: r.Family,
			C2: cmp.Or(r.HTTPHost, r.SNI), FirstSeen: r.FirstSeen.UTC().Format(time.RFC3339), LastSeen: r.LastSeen.UTC().Format(time.RFC3339),
			Protocol: r.Protocol, DstPort: r.DstPort, Evidence: []any{}}
		if r.DstIP.IsValid() {
			x.Destination = r.DstIP.Unmap().String()
			if x.C2 == "" {
				x.C2 = x.Destination
			}
		}
		ev := map[string]any{"content_type": "application/json", "description": "sinkhole observation summary",
			"payload": map[string]any{"hits": r.Hits, "event_id": r.EventID, "http_url": r.HTTPURL, "http_agent": r.HTTPAgent, "case": r.Case}}
		x.Evidence = append(x.Evidence, ev)
		out = append(out, x)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}

// WriteXARF02 writes rows as X-ARF 0.2 report.txt documents (YAML), one
// per row, each starting with "---". A daily mail carries the first rows as
// complete X-ARF 0.2 messages in a multipart/digest (XARF02Digest) and only
// the rows beyond its cap in this form, as one attachment.
func WriteXARF02(w io.Writer, rows []Row, reportedFrom string) error {
	var b bytes.Buffer
	for i := range rows {
		b.WriteString("---\n")
		writeXARF02Report(&b, &rows[i], reportedFrom, "none")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// xarf02Schema is the X-ARF 0.2 schema the report.txt fields follow.
const xarf02Schema = "http://www.x-arf.org/schema/abuse_bot-infection_0.1.0.json"

// writeXARF02Report writes the report.txt fields of r; attachment is the
// content type of the message's evidence part, or "none".
func writeXARF02Report(b *bytes.Buffer, r *Row, reportedFrom, attachment string) {
	st := "ipv4"
	if r.SrcIP.Is6() {
		st = "ipv6"
	}
	kv := [][2]string{{"Reported-From", reportedFrom}, {"Category", "abuse"}, {"Report-Type", "bot-infection"},
		{"Report-ID", reportID(r)}, {"Date", r.LastSeen.UTC().Format(time.RFC1123Z)}, {"Source", r.SrcIP.String()},
		{"Source-Type", st}, {"Source-Port", port(r.SrcPort)}, {"Destination", dstString(r)}, {"Destination-Port", port(r.DstPort)},
		{"Malware-Name", r.Family}, {"Schema-URL", xarf02Schema},
		{"User-Agent", r.HTTPAgent}, {"Attachment", attachment}, {"Version", "0.2"}}
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		b.WriteString(p[0])
		b.WriteString(": ")
		if strings.HasSuffix(p[0], "-Port") {
			b.WriteString(p[1]) // a number
		} else {
			b.WriteString(yamlString(p[1]))
		}
		b.WriteByte('\n')
	}
}

// writeXARF02Evidence writes the evidence part of r's X-ARF 0.2 message: the
// sinkhole's observation as "key: value" lines. Values a bot chose (URL,
// host, agent, bot ID) are Go-quoted, so that no control character or line
// break of theirs reaches the reader.
func writeXARF02Evidence(b *bytes.Buffer, r *Row, public string) {
	fmt.Fprintf(b, "# Sinkhole observation of %s on %s (UTC)", r.SrcIP, r.Day.UTC().Format(time.DateOnly))
	if public != "" {
		fmt.Fprintf(b, ", by %s", strconv.Quote(public))
	}
	b.WriteString("\n")
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(b, "%s: %s\n", k, v)
		}
	}
	quoted := func(k, v string) {
		if v != "" {
			line(k, strconv.Quote(v))
		}
	}
	line("source", r.SrcIP.String())
	line("source_port", port(r.SrcPort))
	if r.ASN != 0 {
		line("source_asn", strconv.FormatUint(uint64(r.ASN), 10))
	}
	quoted("source_org", r.Org)
	line("source_geo", r.Geo)
	line("destination", dstString(r))
	line("destination_port", port(r.DstPort))
	line("protocol", r.Protocol)
	quoted("family", r.Family)
	quoted("case", r.Case)
	line("first_seen", r.FirstSeen.UTC().Format(time.RFC3339))
	line("last_seen", r.LastSeen.UTC().Format(time.RFC3339))
	line("hits", strconv.FormatUint(r.Hits, 10))
	line("detail_event", r.EventID)
	line("detail_time", r.Timestamp.UTC().Format(time.RFC3339))
	quoted("tag", r.Tag)
	quoted("http_url", r.HTTPURL)
	quoted("http_host", r.HTTPHost)
	quoted("http_agent", r.HTTPAgent)
	quoted("http_referer", r.Referer)
	quoted("ssl_servername", r.SNI)
	quoted("ssl_cipher", r.SSLCipher)
	quoted("bot_id", r.BotID)
}

func dstString(r *Row) string {
	if r.DstIP.IsValid() {
		return r.DstIP.Unmap().String()
	}
	return r.HTTPHost
}

// yamlString quotes s as a YAML double-quoted scalar. Every character YAML
// does not allow as printable (controls, DEL, C1 controls, surrogates, the
// byte-order mark, line and paragraph separators, invalid UTF-8) is
// written as an escape, so any string a bot sent stays one scalar on one
// line.
func yamlString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x2028 || r == 0x2029 || r == 0xfeff ||
			r == utf8.RuneError || r == 0xfffe || r == 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
