// Package ingest reads outside event files for `takedown events import`:
// Shadowserver sinkhole reports (event4_sinkhole, event4_sinkhole_http,
// event6_*, event4_sinkhole_dns; header-driven CSV) and this product's own
// JSON lines. Files are streamed, row by row: Scan yields events as it
// reads them, and Import (import.go) writes them in batches inside one
// store transaction that commits only when every row of every file was
// good, so memory does not grow with the input. Every bad row is reported
// as file:line. Imported events get deterministic IDs, so importing a file
// twice stores nothing new. It is not for live traffic (that is the
// listeners').
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
	"hash"
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
	ps.addProblem(Problem{file, line, fmt.Sprintf(format, args...)})
}

func (ps *problems) addProblem(p Problem) {
	if len(ps.e.Problems) >= maxProblems {
		ps.e.More++
		return
	}
	ps.e.Problems = append(ps.e.Problems, p)
}

func (ps *problems) any() bool { return len(ps.e.Problems) > 0 }

func (ps *problems) err() error {
	if len(ps.e.Problems) == 0 {
		return nil
	}
	e := ps.e
	return &e
}

// ReadFiles reads every file ("-" is stdin) in format and returns all
// their events, or an *Error listing every problem in every file. It holds
// every event in memory: for small inputs and tests; Import streams.
func ReadFiles(names []string, format string) ([]event.Event, error) {
	var all []event.Event
	var ps problems
	for _, name := range names {
		evs, err := ReadFile(name, format)
		var ie *Error
		switch {
		case errors.As(err, &ie):
			for _, p := range ie.Problems {
				ps.addProblem(p)
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
	r, closeFn, err := open(name, os.Stdin)
	if err != nil {
		return nil, &Error{Problems: []Problem{{File: name, Msg: err.Error()}}}
	}
	defer closeFn()
	return Read(r, name, format)
}

// open opens name, "-" being stdin.
func open(name string, stdin io.Reader) (io.Reader, func() error, error) {
	if name == "-" {
		return stdin, func() error { return nil }, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// Read reads events in format from r; name is used in problems. It
// returns no events when any row is bad.
func Read(r io.Reader, name, format string) ([]event.Event, error) {
	var out []event.Event
	err := Scan(r, name, format, func(e *event.Event) error {
		out = append(out, *e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Scan reads events in format from r one row at a time and calls fn with
// each good one, in file order, as soon as it is read; fn must not keep
// e. Bad rows are collected and returned together as an *Error at the end
// (fn still sees the good rows around them). An error from fn stops the
// scan and is returned as is.
func Scan(r io.Reader, name, format string, fn func(e *event.Event) error) error {
	src, dec, ps, err := newSource(r, name, format)
	if err != nil {
		return err
	}
	for {
		row, p, more := src.next()
		if p != nil {
			ps.addProblem(*p)
		} else if more {
			e, msg := dec.decode(&row)
			if msg != "" {
				ps.add(name, row.line, "%s", msg)
			} else if err := fn(&e); err != nil {
				return err
			}
		}
		if !more {
			break
		}
	}
	return ps.err()
}

// Store writes imported events in one batch (all or nothing) after prepare
// (ID, enrichment and classification: pipeline.Pipeline.Prepare; nil skips
// it), and flushes the aggregates. Imported events count as received, in
// all and per listener (ListenerPrefix). It is for events already in
// memory; Import streams files.
func Store(ctx context.Context, st store.EventStore, events []event.Event, prepare func(*event.Event) bool) (store.BatchResult, error) {
	b := batchOf(events, prepare)
	res, err := st.WriteBatch(ctx, b)
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	if err := st.Flush(ctx); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	return res, nil
}

// batchOf prepares events (dropping those prepare refuses) and returns them
// as a batch that counts them received, in all and per listener.
func batchOf(events []event.Event, prepare func(*event.Event) bool) *store.Batch {
	if prepare != nil {
		kept := events[:0]
		for i := range events {
			if prepare(&events[i]) {
				kept = append(kept, events[i])
			}
		}
		events = kept
	}
	b := &store.Batch{Events: events, Received: uint64(len(events))}
	var byListener map[string]uint64
	for i := range events {
		name := store.ListenerOf(&events[i])
		if len(b.Listeners) == 1 && b.Listeners[0].Name == name {
			b.Listeners[0].Received++ // the common case: one listener
			continue
		}
		if byListener == nil {
			byListener = make(map[string]uint64)
			for _, d := range b.Listeners {
				byListener[d.Name] = d.Received
			}
		}
		byListener[name]++
		if len(byListener) == 1 {
			b.Listeners = []store.ListenerDelta{{Name: name, Received: byListener[name]}}
			byListener = nil
		} else {
			b.Listeners = b.Listeners[:0]
			for n, c := range byListener {
				b.Listeners = append(b.Listeners, store.ListenerDelta{Name: n, Received: c})
			}
		}
	}
	return b
}

// rawRow is one row as read, before it is decoded: CSV fields, or a JSON
// line.
type rawRow struct {
	line   int
	fields []string
	data   []byte
}

// source reads the rows of one file, in order, on one goroutine.
type source interface {
	// next returns the next row, or a problem instead of it; more is false
	// at the end of the file (row and p are then empty unless p reports
	// why the file ended early).
	next() (row rawRow, p *Problem, more bool)
}

// decoder turns a row into an event; msg says what is wrong with it. It
// is safe for concurrent use (Import decodes on several goroutines).
type decoder interface {
	decode(r *rawRow) (e event.Event, msg string)
}

// newSource reads the start of a file (a CSV header) and returns its row
// source and decoder. Problems of the start are in ps; a file whose start
// is bad yields no rows.
func newSource(r io.Reader, name, format string) (source, decoder, *problems, error) {
	ps := &problems{}
	switch format {
	case FormatShadowserver:
		src, dec := newShadowserver(r, name, ps)
		return src, dec, ps, nil
	case FormatJSONL:
		return newJSONL(r, name), jsonlDecoder{}, ps, nil
	}
	return nil, nil, nil, fmt.Errorf("unknown import format %q (want %s or %s)", format, FormatShadowserver, FormatJSONL)
}

// idHash makes the deterministic IDs of imported rows from their content:
// prefix and the first 16 bytes of SHA-256 over the parts, each followed
// by a zero byte. One per goroutine.
type idHash struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newIDHash() *idHash { return &idHash{h: sha256.New()} }

func (x *idHash) reset()             { x.buf = x.buf[:0] }
func (x *idHash) part(s string)      { x.buf = append(append(x.buf, s...), 0) }
func (x *idHash) partBytes(b []byte) { x.buf = append(append(x.buf, b...), 0) }

func (x *idHash) id(prefix string) string {
	x.h.Reset()
	x.h.Write(x.buf)
	sum := x.h.Sum(x.sum[:0])
	out := make([]byte, len(prefix)+32)
	copy(out, prefix)
	hex.Encode(out[len(prefix):], sum[:16])
	return string(out)
}

// idFor makes the deterministic ID of an imported row from its content.
func idFor(prefix string, parts ...string) string {
	x := newIDHash()
	for _, p := range parts {
		x.part(p)
	}
	return x.id(prefix)
}

// maxLine bounds one JSON line.
const maxLine = 1 << 20

// jsonlSource reads this product's JSON-lines events (docs/events.md).
// Blank lines are skipped.
type jsonlSource struct {
	name string
	sc   *bufio.Scanner
	line int
	done bool
}

func newJSONL(r io.Reader, name string) *jsonlSource {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &jsonlSource{name: name, sc: sc}
}

func (s *jsonlSource) next() (rawRow, *Problem, bool) {
	for !s.done {
		if !s.sc.Scan() {
			s.done = true
			if err := s.sc.Err(); err != nil {
				p := &Problem{File: s.name, Line: s.line + 1, Msg: "read: " + err.Error()}
				if errors.Is(err, bufio.ErrTooLong) {
					p.Msg = fmt.Sprintf("line longer than %d bytes", maxLine)
				}
				return rawRow{}, p, false
			}
			break
		}
		s.line++
		t := bytes.TrimSpace(s.sc.Bytes())
		if s.line == 1 {
			t = bytes.TrimPrefix(t, []byte("\uFEFF"))
		}
		if len(t) == 0 {
			continue
		}
		return rawRow{line: s.line, data: bytes.Clone(t)}, nil, true
	}
	return rawRow{}, nil, false
}

type jsonlDecoder struct{}

// decode reads one record. An event without an ID gets one from its
// line's content.
func (jsonlDecoder) decode(r *rawRow) (event.Event, string) {
	e, err := event.UnmarshalJSONL(r.data)
	if err != nil {
		return e, err.Error()
	}
	if e.ID == "" {
		e.ID = idFor("jl-", string(r.data))
	}
	e.Listener = ListenerPrefix + FormatJSONL
	if strings.ContainsRune(e.BotID, '\n') {
		return e, "bot_id contains a newline"
	}
	return e, ""
}

// ReadJSONL reads this product's JSON-lines events (docs/events.md).
func ReadJSONL(r io.Reader, name string) ([]event.Event, error) {
	return Read(r, name, FormatJSONL)
}

// ReadShadowserver reads a Shadowserver sinkhole report (see
// shadowserverDecoder).
func ReadShadowserver(r io.Reader, name string) ([]event.Event, error) {
	return Read(r, name, FormatShadowserver)
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
	if t, ok := fastDateTime(s); ok {
		return t, nil
	}
	for _, layout := range []string{time.DateTime, "2006-01-02T15:04:05Z", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad timestamp %q (want YYYY-MM-DD HH:MM:SS, UTC)", s)
}

// fastDateTime parses the common "YYYY-MM-DD HH:MM:SS" without
// time.Parse's generality (a large share of an import's CPU otherwise);
// anything else, including out-of-range fields, is left to time.Parse.
func fastDateTime(s string) (time.Time, bool) {
	if len(s) != 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(a, b int) int {
		n := 0
		for i := a; i < b; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d, h, mi, se := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, se, 0, time.UTC)
	if t.Day() != d { // 2011-02-30 normalised: let time.Parse refuse it
		return time.Time{}, false
	}
	return t, true
}

// Columns the decoder reads, resolved to indexes once per file.
const (
	cTimestamp = iota
	cSrcIP
	cDstIP
	cSrcPort
	cDstPort
	cSrcASN
	cSrcGeo
	cInfection
	cFamily
	cTag
	cPublicSource
	cSSLServerName
	cSSLCipher
	cProtocol
	cQuery
	cQueryType
	cCount
	cHTTPURL
	cHTTPHost
	cHTTPAgent
	cHTTPReferer
	cMachineName
	nCols
)

var colNames = [nCols]string{"timestamp", "src_ip", "dst_ip", "src_port", "dst_port", "src_asn", "src_geo", "infection", "family", "tag",
	"public_source", "ssl_servername", "ssl_cipher", "protocol", "query", "query_type", "count", "http_url", "http_host", "http_agent",
	"http_referer", "machine_name"}

// shadowserverSource reads the rows of a Shadowserver sinkhole report (CSV
// with a header row; columns in any order; unknown columns are ignored).
type shadowserverSource struct {
	name   string
	cr     *csv.Reader
	ncols  int
	failed bool // the header is bad, or reading failed
}

// shadowserverDecoder converts rows of one report. Rows of the DNS layout
// (query, query_type) are resolver events, protocol "dns"; rows of the
// HTTP layout are "http" events ("https" when ssl_servername is set or
// dst_port is 443); others take their protocol column (tcp or udp).
type shadowserverDecoder struct {
	layout string
	idx    [nCols]int // index of each read column, -1 when absent
	names  []string   // the header's names, lower-cased
	order  []int      // column indexes by name, for IDs that do not depend on column order
}

func newShadowserver(r io.Reader, name string, ps *problems) (*shadowserverSource, *shadowserverDecoder) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 256<<10))
	// Each record gets its own slice (its fields share one string), so
	// rows can be handed to other goroutines.
	src := &shadowserverSource{name: name, cr: cr}
	dec := &shadowserverDecoder{}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		ps.add(name, 0, "empty file: no header row")
		src.failed = true
		return src, dec
	}
	if err != nil {
		ps.add(name, lineOf(err, 1), "bad header: %v", err)
		src.failed = true
		return src, dec
	}
	src.ncols = len(header)
	col := map[string]int{}
	dec.names = make([]string, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
		dec.names[i] = h
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
	if ps.any() {
		src.failed = true
		return src, dec
	}
	dec.layout = layoutSinkhole
	if _, ok := col["query"]; ok {
		dec.layout = layoutDNS
	} else if _, ok := col["http_url"]; ok {
		dec.layout = layoutHTTP
	} else if _, ok := col["http_host"]; ok {
		dec.layout = layoutHTTP
	}
	if _, ok := col["protocol"]; !ok && dec.layout == layoutSinkhole {
		ps.add(name, 1, "header has no \"protocol\" column")
		src.failed = true
		return src, dec
	}
	for c, n := range colNames {
		dec.idx[c] = -1
		if i, ok := col[n]; ok {
			dec.idx[c] = i
		}
	}
	dec.order = make([]int, len(dec.names))
	for i := range dec.order {
		dec.order[i] = i
	}
	slices.SortFunc(dec.order, func(a, b int) int { return strings.Compare(dec.names[a], dec.names[b]) })
	return src, dec
}

func (s *shadowserverSource) next() (rawRow, *Problem, bool) {
	if s.failed {
		return rawRow{}, nil, false
	}
	rec, err := s.cr.Read()
	if errors.Is(err, io.EOF) {
		return rawRow{}, nil, false
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
			return rawRow{}, &Problem{s.name, pe.StartLine, fmt.Sprintf("%d fields, the header has %d", len(rec), s.ncols)}, true
		}
		p := &Problem{s.name, lineOf(err, 0), err.Error()}
		if !errors.As(err, &pe) {
			s.failed = true
			return rawRow{}, p, false
		}
		return rawRow{}, p, true
	}
	line, _ := s.cr.FieldPos(0)
	return rawRow{line: line, fields: rec}, nil, true
}

func lineOf(err error, def int) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Line
	}
	return def
}

// decode converts one row.
func (d *shadowserverDecoder) decode(r *rawRow) (event.Event, string) {
	return d.decodeID(r, newIDHash())
}

// decodeID is decode with the caller's ID hash (one per goroutine).
func (d *shadowserverDecoder) decodeID(r *rawRow, x *idHash) (event.Event, string) {
	rec := r.fields
	get := func(c int) string {
		if i := d.idx[c]; i >= 0 {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	e, msg := shadowserverEvent(get, d.layout)
	if msg != "" {
		return e, msg
	}
	x.reset()
	x.part(d.layout)
	for _, i := range d.order {
		x.part(d.names[i])
		x.part(strings.TrimSpace(rec[i]))
	}
	e.ID = x.id("ss-")
	return e, ""
}

// shadowserverEvent converts one row; msg says what is wrong.
func shadowserverEvent(get func(int) string, layout string) (e event.Event, msg string) {
	var bad []string
	ts, err := ssTime(get(cTimestamp))
	if err != nil {
		bad = append(bad, err.Error())
	}
	e.Timestamp = ts
	if s := get(cSrcIP); s == "" {
		bad = append(bad, "empty src_ip")
	} else if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
		bad = append(bad, fmt.Sprintf("bad src_ip %q", s))
	} else {
		e.SrcIP = a.Unmap()
	}
	if s := get(cDstIP); s != "" {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			bad = append(bad, fmt.Sprintf("bad dst_ip %q", s))
		} else {
			e.DstIP = a.Unmap()
		}
	}
	port := func(c int) uint16 {
		s := get(c)
		if s == "" {
			return 0
		}
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			bad = append(bad, fmt.Sprintf("bad %s %q", colNames[c], s))
		}
		return uint16(n)
	}
	e.SrcPort, e.DstPort = port(cSrcPort), port(cDstPort)
	if s := get(cSrcASN); s != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
		if err != nil {
			bad = append(bad, fmt.Sprintf("bad src_asn %q", s))
		}
		e.SrcASN = uint32(n)
	}
	if s := get(cSrcGeo); s != "" {
		if len(s) != 2 || !isAlpha(s) {
			bad = append(bad, fmt.Sprintf("bad src_geo %q (want a two-letter country code)", s))
		}
		e.SrcGeo = strings.ToUpper(s)
	}
	e.Family = get(cInfection)
	if e.Family == "" {
		e.Family = get(cFamily)
	}
	e.Tag = get(cTag)
	e.Sensor = get(cPublicSource)
	e.Listener = ListenerPrefix + FormatShadowserver
	e.SSLServerName = get(cSSLServerName)
	e.SSLCipher = get(cSSLCipher)
	proto := strings.ToLower(get(cProtocol))
	switch layout {
	case layoutDNS:
		e.Protocol = event.ProtoDNS
		if proto == "tcp" || proto == "udp" {
			e.Transport = proto
		}
		e.QName, e.QType = get(cQuery), strings.ToUpper(get(cQueryType))
		if e.QName == "" {
			bad = append(bad, "empty query")
		}
		if s := get(cCount); s != "" {
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
		e.HTTPURL, e.HTTPHost, e.HTTPAgent, e.HTTPReferer = get(cHTTPURL), get(cHTTPHost), get(cHTTPAgent), get(cHTTPReferer)
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
	if id := get(cMachineName); strings.ContainsAny(id, "\r\n") {
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
