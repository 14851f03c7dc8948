// Package ingest reads outside event files for `takedown events import`:
// Shadowserver sinkhole reports (event4_sinkhole, event4_sinkhole_http,
// event6_*, event4_sinkhole_dns; header-driven CSV) and this product's own
// JSON lines. A file is read whole and checked whole: every bad row is
// reported as file:line, and a file with any bad row yields no events.
// Imported events get deterministic IDs, so importing a file twice stores
// nothing new. It is not for live traffic (that is the listeners').
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
)

// Formats.
const (
	FormatShadowserver = "shadowserver"
	FormatJSONL        = "jsonl"
)

// ListenerPrefix starts the listener name of imported events,
// "import:<format>": the importer is the input that took them in, whatever
// listener a JSON-lines record names, so its figures stay apart from the
// live listeners' in the health counters.
const ListenerPrefix = "import:"

// Problem is one bad row or file.
type Problem struct {
	File string
	Line int // 0 when the problem is the whole file
	Msg  string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Msg
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
}

// maxProblems bounds the problems one Error lists.
const maxProblems = 1000

// Error lists every problem found; nothing was imported.
type Error struct {
	Problems []Problem
	More     int // problems found beyond those listed
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n… and %d more problems", e.More)
	}
	return b.String()
}

type problems struct{ e Error }

func (ps *problems) add(file string, line int, format string, args ...any) {
	if len(ps.e.Problems) >= maxProblems {
		ps.e.More++
		return
	}
	ps.e.Problems = append(ps.e.Problems, Problem{file, line, fmt.Sprintf(format, args...)})
}

func (ps *problems) err() error {
	if len(ps.e.Problems) == 0 {
		return nil
	}
	e := ps.e
	return &e
}

// ReadFiles reads every file ("-" is stdin) in format and returns all
// their events, or an *Error listing every problem in every file.
func ReadFiles(names []string, format string) ([]event.Event, error) {
	var all []event.Event
	var ps problems
	for _, name := range names {
		evs, err := ReadFile(name, format)
		var ie *Error
		switch {
		case errors.As(err, &ie):
			for _, p := range ie.Problems {
				ps.add(p.File, p.Line, "%s", p.Msg)
			}
			ps.e.More += ie.More
		case err != nil:
			ps.add(name, 0, "%v", err)
		default:
			all = append(all, evs...)
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return all, nil
}

// ReadFile reads one file ("-" is stdin) in format.
func ReadFile(name, format string) ([]event.Event, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, &Error{Problems: []Problem{{File: name, Msg: err.Error()}}}
		}
		defer f.Close()
		r = f
	}
	return Read(r, name, format)
}

// Read reads events in format from r; name is used in problems.
func Read(r io.Reader, name, format string) ([]event.Event, error) {
	switch format {
	case FormatShadowserver:
		return ReadShadowserver(r, name)
	case FormatJSONL:
		return ReadJSONL(r, name)
	}
	return nil, fmt.Errorf("unknown import format %q (want %s or %s)", format, FormatShadowserver, FormatJSONL)
}

// Store writes imported events in one batch (all or nothing) after prepare
// (ID, enrichment and classification: pipeline.Pipeline.Prepare; nil skips
// it), and flushes the aggregates. Imported events count as received, in
// all and per listener (ListenerPrefix).
func Store(ctx context.Context, st store.EventStore, events []event.Event, prepare func(*event.Event) bool) (store.BatchResult, error) {
	if prepare != nil {
		kept := events[:0]
		for i := range events {
			if prepare(&events[i]) {
				kept = append(kept, events[i])
			}
		}
		events = kept
	}
	byListener := make(map[string]uint64)
	for i := range events {
		byListener[store.ListenerOf(&events[i])]++
	}
	b := &store.Batch{Events: events, Received: uint64(len(events))}
	for name, n := range byListener {
		b.Listeners = append(b.Listeners, store.ListenerDelta{Name: name, Received: n})
	}
	res, err := st.WriteBatch(ctx, b)
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	if err := st.Flush(ctx); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	return res, nil
}

// idFor makes the deterministic ID of an imported row from its content.
func idFor(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return prefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// maxLine bounds one JSON line.
const maxLine = 1 << 20

// ReadJSONL reads this product's JSON-lines events (docs/events.md). Blank
// lines are skipped. An event without an ID gets one from its line's
// content.
func ReadJSONL(r io.Reader, name string) ([]event.Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var (
		out  []event.Event
		ps   problems
		line int
	)
	for sc.Scan() {
		line++
		t := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			t = bytes.TrimPrefix(t, []byte("\uFEFF"))
		}
		if len(t) == 0 {
			continue
		}
		e, err := event.UnmarshalJSONL(t)
		if err != nil {
			ps.add(name, line, "%v", err)
			continue
		}
		if e.ID == "" {
			e.ID = idFor("jl-", string(t))
		}
		e.Listener = ListenerPrefix + FormatJSONL
		if strings.ContainsRune(e.BotID, '\n') {
			ps.add(name, line, "bot_id contains a newline")
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			ps.add(name, line+1, "line longer than %d bytes", maxLine)
		} else {
			ps.add(name, line+1, "read: %v", err)
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Shadowserver layouts, told apart by their header.
const (
	layoutSinkhole = "sinkhole"      // event4_sinkhole, event6_sinkhole
	layoutHTTP     = "sinkhole_http" // event4_sinkhole_http, event6_sinkhole_http
	layoutDNS      = "sinkhole_dns"  // event4_sinkhole_dns: sources are resolvers
)

// ssTime parses the report timestamps: "YYYY-MM-DD HH:MM:SS" UTC (also
// with a T and a Z, as some feeds write them).
func ssTime(s string) (time.Time, error) {
	for _, layout := range []string{time.DateTime, "2006-01-02T15:04:05Z", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad timestamp %q (want YYYY-MM-DD HH:MM:SS, UTC)", s)
}

// ReadShadowserver reads a Shadowserver sinkhole report (CSV with a header
// row; columns in any order; unknown columns are ignored). Rows of the DNS
// layout (query, query_type) are resolver events, protocol "dns"; rows of
// the HTTP layout are "http" events ("https" when ssl_servername is set or
// dst_port is 443); others take their protocol column (tcp or udp).
func ReadShadowserver(r io.Reader, name string) ([]event.Event, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.ReuseRecord = true
	var ps problems
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		ps.add(name, 0, "empty file: no header row")
		return nil, ps.err()
	}
	if err != nil {
		ps.add(name, lineOf(err, 1), "bad header: %v", err)
		return nil, ps.err()
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
		if _, dup := col[h]; dup {
			ps.add(name, 1, "column %q appears twice", h)
		}
		col[h] = i
	}
	for _, need := range []string{"timestamp", "src_ip"} {
		if _, ok := col[need]; !ok {
			ps.add(name, 1, "header has no %q column", need)
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	layout := layoutSinkhole
	if _, ok := col["query"]; ok {
		layout = layoutDNS
	} else if _, ok := col["http_url"]; ok {
		layout = layoutHTTP
	} else if _, ok := col["http_host"]; ok {
		layout = layoutHTTP
	}
	if _, ok := col["protocol"]; !ok && layout == layoutSinkhole {
		ps.add(name, 1, "header has no \"protocol\" column")
		return nil, ps.err()
	}
	// Names in sorted order, for IDs that do not depend on column order.
	names := slices.Clone(header)
	for i := range names {
		names[i] = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(names[i], "\uFEFF")))
	}
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })

	var out []event.Event
	parts := make([]string, 0, 2*len(header)+1)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				ps.add(name, pe.StartLine, "%d fields, the header has %d", len(rec), len(header))
				continue
			}
			ps.add(name, lineOf(err, 0), "%v", err)
			if !errors.As(err, &pe) {
				break
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		get := func(c string) string {
			if i, ok := col[c]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		e, msg := shadowserverEvent(get, layout)
		if msg != "" {
			ps.add(name, line, "%s", msg)
			continue
		}
		parts = append(parts[:0], layout)
		for _, i := range order {
			parts = append(parts, names[i], strings.TrimSpace(rec[i]))
		}
		e.ID = idFor("ss-", parts...)
		out = append(out, e)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func lineOf(err error, def int) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Line
	}
	return def
}

// shadowserverEvent converts one row; msg says what is wrong.
func shadowserverEvent(get func(string) string, layout string) (e event.Event, msg string) {
	var bad []string
	ts, err := ssTime(get("timestamp"))
	if err != nil {
		bad = append(bad, err.Error())
	}
	e.Timestamp = ts
	if s := get("src_ip"); s == "" {
		bad = append(bad, "empty src_ip")
	} else if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
		bad = append(bad, fmt.Sprintf("bad src_ip %q", s))
	} else {
		e.SrcIP = a.Unmap()
	}
	if s := get("dst_ip"); s != "" {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			bad = append(bad, fmt.Sprintf("bad dst_ip %q", s))
		} else {
			e.DstIP = a.Unmap()
		}
	}
	port := func(c string) uint16 {
		s := get(c)
		if s == "" {
			return 0
		}
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			bad = append(bad, fmt.Sprintf("bad %s %q", c, s))
		}
		return uint16(n)
	}
	e.SrcPort, e.DstPort = port("src_port"), port("dst_port")
	if s := get("src_asn"); s != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
		if err != nil {
			bad = append(bad, fmt.Sprintf("bad src_asn %q", s))
		}
		e.SrcASN = uint32(n)
	}
	if s := get("src_geo"); s != "" {
		if len(s) != 2 || !isAlpha(s) {
			bad = append(bad, fmt.Sprintf("bad src_geo %q (want a two-letter country code)", s))
		}
		e.SrcGeo = strings.ToUpper(s)
	}
	e.Family = get("infection")
	if e.Family == "" {
		e.Family = get("family")
	}
	e.Tag = get("tag")
	e.Sensor = get("public_source")
	e.Listener = ListenerPrefix + FormatShadowserver
	e.SSLServerName = get("ssl_servername")
	e.SSLCipher = get("ssl_cipher")
	proto := strings.ToLower(get("protocol"))
	switch layout {
	case layoutDNS:
		e.Protocol = event.ProtoDNS
		if proto == "tcp" || proto == "udp" {
			e.Transport = proto
		}
		e.QName, e.QType = get("query"), strings.ToUpper(get("query_type"))
		if e.QName == "" {
			bad = append(bad, "empty query")
		}
		if s := get("count"); s != "" {
			if _, err := strconv.ParseUint(s, 10, 64); err != nil {
				bad = append(bad, fmt.Sprintf("bad count %q", s))
			}
		}
	case layoutHTTP:
		e.Protocol = event.ProtoHTTP
		if e.SSLServerName != "" || e.DstPort == 443 {
			e.Protocol = event.ProtoHTTPS
		}
		e.Transport = event.ProtoTCP
		e.HTTPURL, e.HTTPHost, e.HTTPAgent, e.HTTPReferer = get("http_url"), get("http_host"), get("http_agent"), get("http_referer")
	default:
		switch proto {
		case "tcp", "udp":
			e.Protocol, e.Transport = proto, proto
		case "":
			bad = append(bad, "empty protocol")
		default:
			bad = append(bad, fmt.Sprintf("unsupported protocol %q (want tcp or udp)", proto))
		}
	}
	// machine_name (where a layout has it) is the name the bot reports for
	// its machine: the bot identifier that lets analytics count machines,
	// not addresses.
	if id := get("machine_name"); strings.ContainsAny(id, "\r\n") {
		bad = append(bad, "machine_name has a line break")
	} else {
		e.BotID = id
	}
	if len(bad) > 0 {
		return e, strings.Join(bad, "; ")
	}
	return e, ""
}

func isAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
