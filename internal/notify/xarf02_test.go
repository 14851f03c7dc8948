package notify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/takedown/takedown/internal/netscope"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/testtool"
)

// xarfMessage is one X-ARF 0.2 message read back from a digest.
type xarfMessage struct {
	Header   mail.Header
	Types    []string // media types of the parts, in order
	Names    []string // their file names ("" for the text)
	Text     string
	Report   []byte // report.txt, decoded
	Evidence string
}

// xarfReport is report.txt; decoding with KnownFields rejects any field
// this test does not know.
type xarfReport struct {
	ReportedFrom    string `yaml:"Reported-From"`
	Category        string `yaml:"Category"`
	ReportType      string `yaml:"Report-Type"`
	ReportID        string `yaml:"Report-ID"`
	Date            string `yaml:"Date"`
	Source          string `yaml:"Source"`
	SourceType      string `yaml:"Source-Type"`
	SourcePort      int    `yaml:"Source-Port"`
	Destination     string `yaml:"Destination"`
	DestinationPort int    `yaml:"Destination-Port"`
	MalwareName     string `yaml:"Malware-Name"`
	SchemaURL       string `yaml:"Schema-URL"`
	UserAgent       string `yaml:"User-Agent"`
	Attachment      string `yaml:"Attachment"`
	Version         string `yaml:"Version"`
}

// parseDigest reads a multipart/digest body with Go's mime/multipart and
// net/mail: every part must be a message/rfc822 whose body is a
// multipart/mixed.
func parseDigest(tb testing.TB, contentType string, body []byte) []xarfMessage {
	tb.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/digest" {
		tb.Fatalf("digest content type %q: %v", contentType, err)
	}
	var out []xarfMessage
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatalf("digest part %d: %v", len(out), err)
		}
		if ct := part.Header.Get("Content-Type"); ct != "" && ct != "message/rfc822" {
			tb.Errorf("digest part %d: content type %q, want message/rfc822", len(out), ct)
		}
		m, err := mail.ReadMessage(part)
		if err != nil {
			tb.Fatalf("digest part %d: %v", len(out), err)
		}
		out = append(out, parseXARFMessage(tb, m))
	}
}

func parseXARFMessage(tb testing.TB, m *mail.Message) xarfMessage {
	tb.Helper()
	x := xarfMessage{Header: m.Header}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		tb.Fatalf("X-ARF message %s: content type %q: %v", m.Header.Get("Message-Id"), m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			return x
		}
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(part)
		if err != nil {
			tb.Fatal(err)
		}
		body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
		pt, pp, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		name := part.FileName()
		if name != pp["name"] {
			tb.Errorf("part %d: file name %q, Content-Type name %q", len(x.Types), name, pp["name"])
		}
		x.Types, x.Names = append(x.Types, pt), append(x.Names, name)
		switch name {
		case "":
			x.Text = string(body)
		case "report.txt":
			x.Report = body
		case "evidence.txt":
			x.Evidence = string(body)
		}
	}
}

// decodeReports decodes a YAML stream of report.txt documents.
func decodeReports(tb testing.TB, data []byte) []xarfReport {
	tb.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []xarfReport
	for {
		var r xarfReport
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("report.txt: %v\n%s", err, data)
		}
		out = append(out, r)
	}
}

// checkReport compares a decoded report.txt with the row it reports.
func checkReport(tb testing.TB, got xarfReport, r *notify.Row, from, attachment string) {
	tb.Helper()
	st := "ipv4"
	if r.SrcIP.Is6() {
		st = "ipv6"
	}
	dst := r.HTTPHost
	if r.DstIP.IsValid() {
		dst = r.DstIP.Unmap().String()
	}
	want := xarfReport{ReportedFrom: from, Category: "abuse", ReportType: "bot-infection", ReportID: got.ReportID,
		Date: r.LastSeen.UTC().Format(time.RFC1123Z), Source: r.SrcIP.String(), SourceType: st, SourcePort: int(r.SrcPort),
		Destination: dst, DestinationPort: int(r.DstPort), MalwareName: r.Family,
		SchemaURL: "http://www.x-arf.org/schema/abuse_bot-infection_0.1.0.json", UserAgent: r.HTTPAgent, Attachment: attachment, Version: "0.2"}
	if !utf8.ValidString(r.HTTPAgent) {
		want.UserAgent = got.UserAgent // invalid UTF-8 cannot round-trip
	}
	if got != want {
		tb.Errorf("report.txt of %s|%s:\n got %+v\nwant %+v", r.SrcIP, r.Family, got, want)
	}
	if got.ReportID == "" {
		tb.Errorf("report.txt of %s|%s: no Report-ID", r.SrcIP, r.Family)
	}
}

// checkXARF02 checks the digest's messages against rows, in order.
func checkXARF02(tb testing.TB, msgs []xarfMessage, rows []notify.Row, s *notify.Subscriber, o notify.MessageOptions) {
	tb.Helper()
	if len(msgs) != len(rows) {
		tb.Fatalf("digest holds %d X-ARF messages, want %d", len(msgs), len(rows))
	}
	from, _ := mail.ParseAddress(o.From)
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	daily := notify.MessageID(s.ID, rows[0].Day, domain)
	ids := map[string]bool{}
	for i, x := range msgs {
		r := &rows[i]
		h := x.Header
		if h.Get("X-Xarf") != "PLAIN" || h.Get("Auto-Submitted") != "auto-generated" || h.Get("Mime-Version") != "1.0" {
			tb.Errorf("message %d: X-XARF %q, Auto-Submitted %q, MIME-Version %q", i, h.Get("X-Xarf"), h.Get("Auto-Submitted"), h.Get("Mime-Version"))
		}
		for _, k := range []string{"From", "To", "Subject", "Date"} {
			if h.Get(k) == "" {
				tb.Errorf("message %d: no %s header", i, k)
			}
		}
		if _, err := h.Date(); err != nil {
			tb.Errorf("message %d: %v", i, err)
		}
		if to, err := h.AddressList("To"); err != nil || len(to) != len(s.Contacts) {
			tb.Errorf("message %d: To %q: %v", i, h.Get("To"), err)
		}
		id := h.Get("Message-Id")
		if want := notify.XARF02MessageID(daily, r, domain); id != want || ids[id] {
			tb.Errorf("message %d: Message-ID %q, want %q, unique", i, id, want)
		}
		ids[id] = true
		if h.Get("References") != daily {
			tb.Errorf("message %d: References %q, want the daily %q", i, h.Get("References"), daily)
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
		if err != nil || !strings.Contains(subj, r.SrcIP.String()) || !strings.HasPrefix(subj, "[TLP:"+s.TLP+"]") {
			tb.Errorf("message %d: subject %q: %v", i, subj, err)
		}
		if !slices.Equal(x.Types, []string{"text/plain", "text/plain", "text/plain"}) || !slices.Equal(x.Names, []string{"", "report.txt", "evidence.txt"}) {
			tb.Errorf("message %d: parts %q named %q, want text, report.txt, evidence.txt", i, x.Types, x.Names)
		}
		if !strings.Contains(x.Text, r.SrcIP.String()) || !strings.Contains(x.Text, "TLP:"+s.TLP) {
			tb.Errorf("message %d: text does not name %s and TLP:\n%s", i, r.SrcIP, x.Text)
		}
		if !strings.Contains(x.Evidence, "source: "+r.SrcIP.String()+"\n") || !strings.Contains(x.Evidence, fmt.Sprintf("hits: %d\n", r.Hits)) {
			tb.Errorf("message %d: evidence lacks source or hits:\n%s", i, x.Evidence)
		}
		reps := decodeReports(tb, x.Report)
		if len(reps) != 1 {
			tb.Fatalf("message %d: report.txt holds %d documents", i, len(reps))
		}
		checkReport(tb, reps[0], r, from.Address, "text/plain")
	}
}

// synthRows makes n rows of one day, ordered as Collect orders them.
func synthRows(n int) []notify.Row {
	rows := make([]notify.Row, n)
	for i := range rows {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
		ts := day.Add(time.Duration(i) * time.Minute)
		rows[i] = notify.Row{Day: day, Timestamp: ts, Protocol: "http", SrcIP: a, SrcPort: uint16(40000 + i), ASN: 64500, Org: "Org US",
			Geo: "US", DstIP: netip.MustParseAddr("192.0.2.250"), DstPort: 80, Family: "rustock", Case: "rustock", EventID: fmt.Sprintf("ev-%d", i),
			FirstSeen: ts, LastSeen: ts.Add(time.Hour), Hits: uint64(i + 1), HTTPURL: "/login.php", HTTPHost: "c2.example",
			HTTPAgent: "Mozilla/4.0 (bot)", HTTP: true}
	}
	return rows
}

// hostileRows are rows whose bot-chosen fields try to break out of their
// part: a line that looks like the digest's boundary, line breaks, a YAML
// document marker, non-ASCII, a line longer than SMTP allows.
func hostileRows(tb testing.TB, s *notify.Subscriber, o notify.MessageOptions) []notify.Row {
	tb.Helper()
	rows := synthRows(3)
	rows[0].HTTPAgent = "evil\r\n--" + digestBoundary(tb, s, o) + "--\r\n\r\n---\nSource: 192.0.2.1\n"
	rows[1].HTTPAgent = "Bøt/1.0 \u2028 \x7f \ufeff ünïcode \"quoted\" \\ back"
	rows[1].HTTPURL = "/=_takedown.xarf.0123?x=" + strings.Repeat("A", 3000)
	rows[2].HTTPAgent = "invalid \xff utf-8"
	rows[2].Family = "fam\r\nX-Injected: yes"
	return rows
}

func digestBoundary(tb testing.TB, s *notify.Subscriber, o notify.MessageOptions) string {
	tb.Helper()
	a := notify.XARF02Digest(s, day, synthRows(1), o, day)
	_, params, err := mime.ParseMediaType(a.ContentType)
	if err != nil {
		tb.Fatal(err)
	}
	return params["boundary"]
}

// composeAndParse composes the daily mail, checks that it is 7-bit with
// lines SMTP accepts and that composing again gives the same bytes, and
// parses it.
func composeAndParse(tb testing.TB, s *notify.Subscriber, rows []notify.Row, o notify.MessageOptions) ([]byte, parsedMail) {
	tb.Helper()
	msg, id, err := notify.Compose(s, day, rows, o, day.AddDate(0, 0, 1))
	if err != nil {
		tb.Fatal(err)
	}
	again, id2, err := notify.Compose(s, day, rows, o, day.AddDate(0, 0, 1))
	if err != nil || !bytes.Equal(msg, again) || id != id2 {
		tb.Errorf("composing the same report twice gave different bytes (%v)", err)
	}
	for i, line := range bytes.Split(msg, []byte("\r\n")) {
		if len(line) > 998 {
			tb.Errorf("line %d is %d bytes long", i+1, len(line))
		}
		for _, c := range line {
			if c >= 0x80 || c == '\r' || c == '\n' || c == 0 {
				tb.Fatalf("line %d holds byte %#x: the mail is not 7-bit with CRLF lines", i+1, c)
			}
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		tb.Fatal(err)
	}
	return msg, parseMail(tb, m)
}

func TestXARF02Digest(t *testing.T) {
	db, ns := newStore(t)
	seed(t, db, seedEvents())
	sub := subscriber(t, "isp-a", "AS64500,NL", "abuse@isp-a.example", "noc@isp-a.example")
	sub.Formats = []notify.Format{notify.FormatXARF02}
	seeded, err := notify.Collect(t.Context(), ns, day, []netscope.Networks{sub.Networks})
	if err != nil {
		t.Fatal(err)
	}
	o := notify.MessageOptions{From: "Takedown <takedown@dcu.example>", PublicSource: "Test DCU", CleanupURL: "https://takedown.example/clean"}
	capped := o
	capped.XARF02Max = 3
	tests := []struct {
		name     string
		rows     []notify.Row
		o        notify.MessageOptions
		inDigest int
	}{
		{"seeded", seeded[0], o, len(seeded[0])},
		{"at the cap", synthRows(3), capped, 3},
		{"above the cap", synthRows(8), capped, 3},
		{"hostile fields", hostileRows(t, &sub, o), o, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, p := composeAndParse(t, &sub, tc.rows, tc.o)
			p.Text = strings.ReplaceAll(p.Text, "\r\n", "\n")
			checkXARF02(t, p.XARF02, tc.rows[:tc.inDigest], &sub, tc.o)
			if got := p.Header.Get("X-Takedown-Rows"); got != strconv.Itoa(len(tc.rows)) {
				t.Errorf("X-Takedown-Rows %q, want %d", got, len(tc.rows))
			}
			rest, ok := p.Files["2011-09-13-xarf02-isp-a-rest.yaml"]
			if want := len(tc.rows) > tc.inDigest; ok != want {
				t.Fatalf("rest attachment present %v, want %v (files %d)", ok, want, len(p.Files))
			}
			if !ok {
				if strings.Contains(p.Text, "at most") {
					t.Errorf("summary mentions a cap that did not apply:\n%s", p.Text)
				}
				return
			}
			reps := decodeReports(t, rest)
			if len(reps) != len(tc.rows)-tc.inDigest {
				t.Fatalf("rest holds %d reports, want %d", len(reps), len(tc.rows)-tc.inDigest)
			}
			for i := range reps {
				checkReport(t, reps[i], &tc.rows[tc.inDigest+i], "takedown@dcu.example", "none")
			}
			if want := fmt.Sprintf("at most %d of them; the other %d row(s) are in\n2011-09-13-xarf02-isp-a-rest.yaml", tc.inDigest, len(reps)); !strings.Contains(p.Text, want) {
				t.Errorf("summary does not say %q:\n%s", want, p.Text)
			}
		})
	}
}

// TestXARF02DefaultCap checks that without a configured cap the digest
// stops at DefaultXARF02Max.
func TestXARF02DefaultCap(t *testing.T) {
	sub := subscriber(t, "isp-a", "AS64500", "abuse@isp-a.example")
	sub.Formats = []notify.Format{notify.FormatXARF02}
	n := notify.DefaultXARF02Max + 2
	var rows []notify.Row
	for len(rows) < n {
		rows = append(rows, synthRows(250)...)
	}
	rows = rows[:n]
	atts, err := notify.Attachments(&sub, day, rows, notify.MessageOptions{From: "takedown@dcu.example", CompressAbove: -1}, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 {
		t.Fatalf("%d attachments, want the digest and the rest", len(atts))
	}
	if n := len(parseDigest(t, atts[0].ContentType, atts[0].Data)); n != notify.DefaultXARF02Max {
		t.Errorf("digest holds %d messages, want %d", n, notify.DefaultXARF02Max)
	}
	if n := len(decodeReports(t, atts[1].Data)); n != 2 {
		t.Errorf("rest holds %d reports, want 2", n)
	}
	t.Logf("digest of %d messages: %d bytes", notify.DefaultXARF02Max, len(atts[0].Data))
}

// pyReader reads a mail with Python's email package and prints, for every
// message/rfc822 part of its multipart/digest, what the Go test checks.
const pyReader = `
import email, email.policy, json, sys
msg = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
out = []
for part in msg.walk():
    if part.get_content_type() != "multipart/digest":
        continue
    for sub in part.iter_parts():
        assert sub.get_content_type() == "message/rfc822", sub.get_content_type()
        inner = sub.get_content()
        assert inner.get_content_type() == "multipart/mixed", inner.get_content_type()
        parts = list(inner.iter_parts())
        out.append({
            "xarf": str(inner["X-XARF"]),
            "message_id": str(inner["Message-ID"]),
            "types": [p.get_content_type() for p in parts],
            "names": [p.get_filename() or "" for p in parts],
            "report": next((p.get_content() for p in parts if p.get_filename() == "report.txt"), ""),
        })
json.dump(out, sys.stdout)
`

// TestXARF02Python reads the daily mail with an independent MIME parser,
// Python's email package.
func TestXARF02Python(t *testing.T) {
	py := testtool.Need(t, "python3", "python3")
	sub := subscriber(t, "isp-a", "AS64500", "abuse@isp-a.example")
	sub.Formats = []notify.Format{notify.FormatShadowserver, notify.FormatXARF02}
	o := notify.MessageOptions{From: "Takedown <takedown@dcu.example>", PublicSource: "Test DCU"}
	rows := append(synthRows(4), hostileRows(t, &sub, o)...)
	msg, _ := composeAndParse(t, &sub, rows, o)
	f := filepath.Join(t.TempDir(), "report.eml")
	if err := os.WriteFile(f, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), py, "-c", pyReader, f)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.Bytes())
	}
	var got []struct {
		XARF      string   `json:"xarf"`
		MessageID string   `json:"message_id"`
		Types     []string `json:"types"`
		Names     []string `json:"names"`
		Report    string   `json:"report"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != len(rows) {
		t.Fatalf("python reads %d X-ARF messages, want %d", len(got), len(rows))
	}
	daily := notify.MessageID(sub.ID, day, "dcu.example")
	for i, g := range got {
		if g.XARF != "PLAIN" || g.MessageID != notify.XARF02MessageID(daily, &rows[i], "dcu.example") {
			t.Errorf("message %d: X-XARF %q, Message-ID %q", i, g.XARF, g.MessageID)
		}
		if !slices.Equal(g.Types, []string{"text/plain", "text/plain", "text/plain"}) || !slices.Equal(g.Names, []string{"", "report.txt", "evidence.txt"}) {
			t.Errorf("message %d: parts %q named %q", i, g.Types, g.Names)
		}
		reps := decodeReports(t, []byte(g.Report))
		if len(reps) != 1 {
			t.Fatalf("message %d: %d report.txt documents", i, len(reps))
		}
		checkReport(t, reps[0], &rows[i], "takedown@dcu.example", "text/plain")
	}
}

// FuzzXARF02Digest feeds bot-chosen fields into the X-ARF 0.2 digest: it
// must always parse back to one message whose report.txt says what the
// row says.
func FuzzXARF02Digest(f *testing.F) {
	f.Add("Mozilla/4.0 (bot)", "/login.php", "c2.example")
	f.Add("a\r\n--=_takedown.digest.x--\r\n", "=_=_\n.\r\n", "\x00\xff")
	f.Add("\u2028\u0085\ufeff\"\\", "---\n...\n", "")
	sub := subscriber(f, "isp-a", "AS64500", "abuse@isp-a.example")
	o := notify.MessageOptions{From: "takedown@dcu.example"}
	f.Fuzz(func(t *testing.T, agent, url, host string) {
		rows := synthRows(1)
		rows[0].HTTPAgent, rows[0].HTTPURL, rows[0].HTTPHost = agent, url, host
		a := notify.XARF02Digest(&sub, day, rows, o, day)
		msgs := parseDigest(t, a.ContentType, a.Data)
		checkXARF02(t, msgs, rows, &sub, o)
		if url != "" && !strings.Contains(msgs[0].Evidence, "http_url: "+strconv.Quote(url)+"\n") {
			t.Errorf("evidence lacks the URL %q:\n%s", url, msgs[0].Evidence)
		}
	})
}
