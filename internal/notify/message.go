package notify

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MessageOptions is what every message says about its sender.
type MessageOptions struct {
	// From is the sender address (also the SMTP envelope sender).
	From string
	// Domain is the right-hand side of Message-IDs; default: From's
	// domain.
	Domain string
	// PublicSource names the operator in reports (public_source).
	PublicSource string
	// APIURL is where a network token fetches more data, e.g.
	// https://takedown.example/api/v1 (empty: not mentioned).
	APIURL string
	// CleanupURL is a page on cleaning infected machines (empty: not
	// mentioned).
	CleanupURL string
	// CompressAbove gzips an attachment larger than this many bytes
	// (0: DefaultCompressAbove; negative: never). The X-ARF 0.2 digest is
	// never gzipped: XARF02Max bounds it instead.
	CompressAbove int
	// XARF02Max is how many X-ARF 0.2 messages the digest of one daily
	// mail holds at most (0 or negative: DefaultXARF02Max); the rows
	// beyond it go, as report.txt documents, into one attachment.
	XARF02Max int
}

// DefaultCompressAbove is the attachment size above which it is gzipped.
const DefaultCompressAbove = 256 << 10

// DefaultXARF02Max is how many X-ARF 0.2 messages a daily mail's digest
// holds at most by default: about 3 KB each, so the digest stays under
// 2 MB, well below the message size limits of common mail servers.
const DefaultXARF02Max = 500

// Attachment is one report file of a message. An attachment whose
// ContentType is multipart/* (the X-ARF 0.2 digest, boundary included) is
// a MIME body already and goes into the mail as it is.
type Attachment struct {
	Name        string
	ContentType string
	Data        []byte
}

// MessageID returns the stable Message-ID of a (subscriber, day) report:
// the same for every attempt, so that receivers drop a repeat.
func MessageID(sub string, day time.Time, domain string) string {
	h := sha256.Sum256([]byte(sub + "|" + day.UTC().Format(time.DateOnly)))
	return fmt.Sprintf("<takedown.%s.%s.%s@%s>", day.UTC().Format("20060102"), sub, hex.EncodeToString(h[:6]), domain)
}

// Attachments renders rows in each of the subscriber's formats; report
// file names follow Shadowserver: YYYY-MM-DD-<report_type>-<id>.csv, in
// the form IntelMQ accepts (ReportFileName).
func Attachments(s *Subscriber, day time.Time, rows []Row, o MessageOptions, generated time.Time) ([]Attachment, error) {
	d := day.UTC().Format(time.DateOnly)
	var out []Attachment
	for _, f := range s.Formats {
		switch f {
		case FormatShadowserver:
			byType := SplitByType(rows)
			for _, t := range ReportTypes {
				if len(byType[t]) == 0 {
					continue
				}
				var b bytes.Buffer
				if err := WriteCSV(&b, t, byType[t], ReportOptions{PublicSource: o.PublicSource}); err != nil {
					return nil, err
				}
				out = append(out, Attachment{Name: ReportFileName(day, t, s.ID, "csv"), ContentType: "text/csv", Data: b.Bytes()})
			}
		case FormatXARF4:
			var b bytes.Buffer
			if err := WriteXARF4(&b, rows, Reporter{Org: o.PublicSource, Contact: o.From, Domain: o.domain()}, generated); err != nil {
				return nil, err
			}
			out = append(out, Attachment{Name: fmt.Sprintf("%s-xarf4-%s.json", d, s.ID), ContentType: "application/json", Data: b.Bytes()})
		case FormatXARF02:
			in, rest := o.splitXARF02(rows)
			out = append(out, XARF02Digest(s, day, in, o, generated))
			if len(rest) > 0 {
				var b bytes.Buffer
				if err := WriteXARF02(&b, rest, o.address()); err != nil {
					return nil, err
				}
				out = append(out, Attachment{Name: xarf02RestName(s, day), ContentType: "text/plain", Data: b.Bytes()})
			}
		}
	}
	limit := cmp.Or(o.CompressAbove, DefaultCompressAbove)
	for i := range out {
		if limit < 0 || len(out[i].Data) <= limit || out[i].multipart() {
			continue
		}
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Name = out[i].Name
		zw.ModTime = generated
		if _, err := zw.Write(out[i].Data); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		out[i] = Attachment{Name: out[i].Name + ".gz", ContentType: "application/gzip", Data: b.Bytes()}
	}
	return out, nil
}

func (a *Attachment) multipart() bool {
	return strings.HasPrefix(a.ContentType, "multipart/")
}

// address is From without a display name, as X-ARF's Reported-From wants.
func (o *MessageOptions) address() string {
	if a, err := mail.ParseAddress(o.From); err == nil {
		return a.Address
	}
	return o.From
}

func (o *MessageOptions) xarf02Max() int {
	if o.XARF02Max > 0 {
		return o.XARF02Max
	}
	return DefaultXARF02Max
}

// splitXARF02 cuts rows into those the digest carries and the rest.
func (o *MessageOptions) splitXARF02(rows []Row) (digest, rest []Row) {
	n := min(len(rows), o.xarf02Max())
	return rows[:n], rows[n:]
}

func xarf02DigestName(s *Subscriber, day time.Time) string {
	return fmt.Sprintf("%s-xarf02-%s.digest", day.UTC().Format(time.DateOnly), s.ID)
}

func xarf02RestName(s *Subscriber, day time.Time) string {
	return fmt.Sprintf("%s-xarf02-%s-rest.yaml", day.UTC().Format(time.DateOnly), s.ID)
}

// boundary derives a MIME boundary from seed, so that the same report
// composes to the same bytes. Every text part is quoted-printable or
// base64, neither of which can contain "=_", so no content line can be
// taken for a boundary; kind keeps the boundaries of nested multiparts
// apart.
func boundary(kind, seed string) string {
	h := sha256.Sum256([]byte(kind + "|" + seed))
	return "=_takedown." + kind + "." + hex.EncodeToString(h[:12])
}

// XARF02MessageID is the Message-ID of the X-ARF 0.2 message of row r
// inside the daily report whose Message-ID is daily.
func XARF02MessageID(daily string, r *Row, domain string) string {
	h := sha256.Sum256([]byte(daily + "|" + reportID(r)))
	return fmt.Sprintf("<xarf.%s.%s@%s>", r.Day.UTC().Format("20060102"), hex.EncodeToString(h[:10]), domain)
}

// XARF02Digest returns the multipart/digest attachment of a daily mail:
// one message/rfc822 part per row, each a complete X-ARF 0.2 message
// (X-XARF: PLAIN; a multipart/mixed of a human-readable text, the
// report.txt YAML and an evidence text). It renders every row it is
// given; Attachments caps them at MessageOptions.XARF02Max.
func XARF02Digest(s *Subscriber, day time.Time, rows []Row, o MessageOptions, generated time.Time) Attachment {
	daily := MessageID(s.ID, day, o.domain())
	outer := boundary("digest", daily)
	var b bytes.Buffer
	for i := range rows {
		b.WriteString("--" + outer + "\r\nContent-Type: message/rfc822\r\n\r\n")
		writeXARF02Message(&b, s, &rows[i], o, generated, daily)
	}
	b.WriteString("--" + outer + "--\r\n")
	return Attachment{Name: xarf02DigestName(s, day), ContentType: mime.FormatMediaType("multipart/digest", map[string]string{"boundary": outer}),
		Data: b.Bytes()}
}

// writeXARF02Message writes the X-ARF 0.2 message of one row, ending in
// CRLF.
func writeXARF02Message(b *bytes.Buffer, s *Subscriber, r *Row, o MessageOptions, generated time.Time, daily string) {
	id := XARF02MessageID(daily, r, o.domain())
	inner := boundary("xarf", id)
	d := r.Day.UTC().Format(time.DateOnly)
	hdr := [][2]string{
		{"From", o.From},
		{"To", strings.Join(s.Contacts, ", ")},
		{"Subject", encodeSubject(fmt.Sprintf("[TLP:%s] X-ARF bot-infection report: %s (%s) on %s", s.TLP, r.SrcIP, cmp.Or(r.Family, "unclassified"), d))},
		{"Date", generated.UTC().Format(time.RFC1123Z)},
		{"Message-ID", id},
		{"References", daily},
		{"MIME-Version", "1.0"},
		{"Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": inner})},
		{"Auto-Submitted", "auto-generated"},
		{"X-XARF", "PLAIN"},
		{"X-Takedown-Subscriber", s.ID},
		{"X-Takedown-Report-Day", d},
	}
	for _, h := range hdr {
		writeHeader(b, h[0], h[1])
	}
	b.WriteString("\r\n")
	var text bytes.Buffer
	fmt.Fprintf(&text, "TLP:%s%s\n\n", s.TLP, tlpMeaning[s.TLP])
	fmt.Fprintf(&text, "Dear %s,\n\nthe address %s in your networks", s.Org, r.SrcIP)
	if r.ASN != 0 {
		fmt.Fprintf(&text, " (AS%d", r.ASN)
		if r.Geo != "" {
			fmt.Fprintf(&text, ", %s", r.Geo)
		}
		text.WriteString(")")
	}
	fmt.Fprintf(&text, "\nconnected %d time(s) on %s (UTC), between %s and %s, to\n%s.\n",
		r.Hits, d, r.FirstSeen.UTC().Format("15:04:05"), r.LastSeen.UTC().Format("15:04:05"), sinkholeWho(o))
	if r.Family != "" {
		fmt.Fprintf(&text, "The machine behind it is infected with %s.\n", r.Family)
	}
	text.WriteString("\nThe machine-readable report is attached as report.txt (X-ARF 0.2), the\n" +
		"sinkhole's observation as evidence.txt. Find the machine behind the address\n" +
		"and port at that time (NAT and DHCP logs) and have it cleaned.\n")
	if o.CleanupURL != "" {
		fmt.Fprintf(&text, "Guidance: %s\n", o.CleanupURL)
	}
	fmt.Fprintf(&text, "\nThis is one incident of the daily report\n%s.\n", daily)
	var report, evidence bytes.Buffer
	writeXARF02Report(&report, r, o.address(), "text/plain")
	writeXARF02Evidence(&evidence, r, o.PublicSource)
	parts := []struct {
		name string
		body []byte
	}{{"", text.Bytes()}, {"report.txt", report.Bytes()}, {"evidence.txt", evidence.Bytes()}}
	for _, p := range parts {
		b.WriteString("--" + inner + "\r\n")
		if p.name == "" {
			b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
		} else {
			b.WriteString("Content-Type: " + mime.FormatMediaType("text/plain", map[string]string{"charset": "utf-8", "name": p.name}) + "\r\n")
			b.WriteString("Content-Disposition: " + mime.FormatMediaType("attachment", map[string]string{"filename": p.name}) + "\r\n")
		}
		b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
		writeQP(b, p.body)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + inner + "--\r\n")
}

// writeQP writes text (lines ending in "\n") quoted-printable with CRLF
// line ends.
func writeQP(w io.Writer, text []byte) error {
	qw := quotedprintable.NewWriter(w)
	if _, err := qw.Write(bytes.ReplaceAll(text, []byte("\n"), []byte("\r\n"))); err != nil {
		return err
	}
	return qw.Close()
}

func sinkholeWho(o MessageOptions) string {
	src := "the sinkhole of a court-ordered botnet takedown"
	if o.PublicSource != "" {
		src += ", run by " + o.PublicSource
	}
	return src
}

func (o *MessageOptions) domain() string {
	if o.Domain != "" {
		return o.Domain
	}
	if i := strings.LastIndexByte(o.From, '@'); i >= 0 {
		return strings.Trim(o.From[i+1:], ">")
	}
	return "localhost"
}

// tlpMeaning is the TLP 2.0 sharing rule, said in the mail.
var tlpMeaning = map[string]string{
	"CLEAR":        ": no limit on disclosure.",
	"GREEN":        ": share within your community, not publicly.",
	"AMBER":        ": share only within your organisation and with its clients who need to act.",
	"AMBER+STRICT": ": share only within your organisation.",
	"RED":          ": for the named recipients only.",
}

// Summary is the plain-text part of a report mail.
func Summary(s *Subscriber, day time.Time, rows []Row, atts []Attachment, o MessageOptions) string {
	d := day.UTC().Format(time.DateOnly)
	addrs := map[string]bool{}
	var v4, v6 int
	fam := map[string]int{}
	for i := range rows {
		a := rows[i].SrcIP.String()
		if !addrs[a] {
			addrs[a] = true
			if rows[i].SrcIP.Is4() {
				v4++
			} else {
				v6++
			}
		}
		fam[cmp.Or(rows[i].Family, "(unclassified)")]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "TLP:%s%s\n\n", s.TLP, tlpMeaning[s.TLP])
	fmt.Fprintf(&b, "Daily sinkhole report for %s, %s (UTC)\n\n", s.Org, d)
	src := sinkholeWho(o)
	fmt.Fprintf(&b, "%d infected address(es) in your networks (%d IPv4, %d IPv6) connected on %s to\n%s.\n", len(addrs), v4, v6, d, src)
	fmt.Fprintf(&b, "Your networks: %s\n\n", s.Networks.String())
	b.WriteString("By malware family (rows: one per address and family):\n")
	names := make([]string, 0, len(fam))
	for n := range fam {
		names = append(names, n)
	}
	slices.SortFunc(names, func(x, y string) int { return cmp.Or(cmp.Compare(fam[y], fam[x]), strings.Compare(x, y)) })
	for _, n := range names {
		fmt.Fprintf(&b, "  %-24s %d\n", n, fam[n])
	}
	b.WriteString("\nAttached:\n")
	for _, a := range atts {
		if a.multipart() {
			digest, _ := o.splitXARF02(rows)
			fmt.Fprintf(&b, "  %d X-ARF 0.2 message(s), one per row (multipart/digest, %d bytes)\n", len(digest), len(a.Data))
			continue
		}
		fmt.Fprintf(&b, "  %s (%d bytes)\n", a.Name, len(a.Data))
	}
	if slices.Contains(s.Formats, FormatShadowserver) {
		b.WriteString(`
The CSV files use the column layout of Shadowserver's sinkhole reports
(event4_sinkhole, event4_sinkhole_http, event6_...), so tools that read those
(IntelMQ, AbuseIO) read these. Times are UTC.
`)
	}
	b.WriteString(`
How to clean up: every listed address made a direct connection to a seized
command-and-control name or address that day. Find the machine behind the
address and port at that time (NAT and DHCP logs), disconnect it or put it in
a walled garden, and have its owner clean it with an up-to-date anti-malware
tool or reinstall it; change the passwords used on it.
`)
	if o.CleanupURL != "" {
		fmt.Fprintf(&b, "Guidance: %s\n", o.CleanupURL)
	}
	if slices.Contains(s.Formats, FormatXARF02) {
		digest, rest := o.splitXARF02(rows)
		fmt.Fprintf(&b, "\nThe X-ARF 0.2 reports are attached messages, one complete X-ARF 0.2 mail\n(X-XARF: PLAIN, with report.txt and evidence.txt) per row: %d here.\n", len(digest))
		if len(rest) > 0 {
			fmt.Fprintf(&b, "A mail carries at most %d of them; the other %d row(s) are in\n%s as report.txt documents, one per row.\n",
				o.xarf02Max(), len(rest), xarf02RestName(s, day))
		}
	}
	if o.APIURL != "" {
		fmt.Fprintf(&b, "\nMore data (other days, JSON or CSV), with a network token for your networks:\n  %s/events?from=%s&to=%s&format=csv\nAsk us for a token by replying to this message.\n",
			strings.TrimRight(o.APIURL, "/"), d, day.UTC().AddDate(0, 0, 1).Format(time.DateOnly))
	}
	fmt.Fprintf(&b, "\nThis report is marked TLP:%s. You receive it because you subscribed\n%s; reply to unsubscribe.\n", s.TLP, s.ID)
	return b.String()
}

// Compose builds the complete RFC 5322 message of a (subscriber, day)
// report: a multipart/mixed mail with the summary and the attachments.
func Compose(s *Subscriber, day time.Time, rows []Row, o MessageOptions, generated time.Time) (msg []byte, messageID string, err error) {
	atts, err := Attachments(s, day, rows, o, generated)
	if err != nil {
		return nil, "", fmt.Errorf("compose %s %s: %w", s.ID, day.Format(time.DateOnly), err)
	}
	for _, c := range s.Contacts {
		// RFC 5321 section 4.5.3.1.3: a path is at most 256 octets, <>
		// included. It also keeps every word of To foldable within 998.
		if len(c) > maxAddress {
			return nil, "", fmt.Errorf("compose %s: contact %.40q… is longer than %d characters", s.ID, c, maxAddress)
		}
	}
	messageID = MessageID(s.ID, day, o.domain())
	addrs := map[string]bool{}
	for i := range rows {
		addrs[rows[i].SrcIP.String()] = true
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary("mail", messageID)); err != nil {
		return nil, "", err
	}
	hdr := [][2]string{
		{"From", o.From},
		{"To", strings.Join(s.Contacts, ", ")},
		{"Subject", encodeSubject(fmt.Sprintf("[TLP:%s] Infected addresses in your networks on %s: %d (%s)", s.TLP, day.UTC().Format(time.DateOnly), len(addrs), s.Org))},
		{"Date", generated.UTC().Format(time.RFC1123Z)},
		{"Message-ID", messageID},
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/mixed; boundary="` + mw.Boundary() + `"`},
		{"Auto-Submitted", "auto-generated"},
		{"X-Takedown-Subscriber", s.ID},
		{"X-Takedown-Report-Day", day.UTC().Format(time.DateOnly)},
		{"X-Takedown-Rows", strconv.Itoa(len(rows))},
	}
	for _, h := range hdr {
		writeHeader(&b, h[0], h[1])
	}
	b.WriteString("\r\n")
	pw, err := mw.CreatePart(foldPart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Transfer-Encoding": {"quoted-printable"}}))
	if err != nil {
		return nil, "", err
	}
	if err := writeQP(pw, []byte(Summary(s, day, rows, atts, o))); err != nil {
		return nil, "", err
	}
	for _, a := range atts {
		if a.multipart() {
			// A composite body is sent as it is (RFC 2045 forbids encoding
			// it); everything inside is 7-bit.
			pw, err := mw.CreatePart(foldPart(textproto.MIMEHeader{"Content-Type": {a.ContentType},
				"Content-Description": {"X-ARF 0.2 reports, one message per incident"}}))
			if err != nil {
				return nil, "", err
			}
			if _, err := pw.Write(a.Data); err != nil {
				return nil, "", err
			}
			continue
		}
		pw, err := mw.CreatePart(foldPart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(a.ContentType, map[string]string{"name": a.Name})},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": a.Name})},
			"Content-Transfer-Encoding": {"base64"},
		}))
		if err != nil {
			return nil, "", err
		}
		enc := base64.StdEncoding.EncodeToString(a.Data)
		for len(enc) > 76 {
			pw.Write([]byte(enc[:76] + "\r\n"))
			enc = enc[76:]
		}
		pw.Write([]byte(enc + "\r\n"))
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return b.Bytes(), messageID, nil
}

// Header folding (RFC 5322 section 2.2.3). Written by hand rather than
// with github.com/emersion/go-message: the mails are built here from a
// few fields of known shape, go-message is not among the approved
// modules, and the standard library has no folder (net/textproto and
// mime/multipart write headers unfolded; the part headers here are short
// by construction).
const (
	// maxHeaderLine is RFC 5322's recommended line length, CRLF excluded.
	maxHeaderLine = 78
	// maxAddress is the longest contact address accepted (RFC 5321).
	maxAddress = 254
)

// writeHeader writes the field "name: value", folded, CRLF-terminated.
func writeHeader(b *bytes.Buffer, name, value string) {
	b.WriteString(name + ": " + fold(name, value) + "\r\n")
}

// fold returns the value of field name with a line break (CRLF) before
// those of its spaces that keep each line within maxHeaderLine, each as
// late as it can be (RFC 5322 section 2.2.3: unfolding removes the CRLF
// and keeps the space, so the value is unchanged). An address list folds
// after its commas. A word longer than a line stays whole on its own
// line: the values here have none near 998 characters (encodeSubject
// splits the subject's; contacts are at most maxAddress; identifiers and
// media types are built here).
func fold(name, value string) string {
	var b strings.Builder
	n := len(name) + 1 // "name:"
	for i, w := range strings.Split(value, " ") {
		if i > 0 {
			if n+1+len(w) > maxHeaderLine {
				b.WriteString("\r\n")
				n = 0
			}
			b.WriteByte(' ')
		}
		b.WriteString(w)
		n += 1 + len(w)
	}
	return b.String()
}

// foldPart folds the values of a MIME part's header, which mime/multipart
// writes as they are.
func foldPart(h textproto.MIMEHeader) textproto.MIMEHeader {
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = fold(k, v)
		}
	}
	return h
}

// encodeSubject returns s as an unstructured header value that folds
// within maxHeaderLine: as it is when it is plain ASCII without a word too
// long for a line, else as RFC 2047 Q encoded-words (UTF-8, whole
// characters in each, at most 75 characters; the first shorter so that it
// fits after "Subject: "), separated by spaces where fold may break;
// adjacent encoded-words display as one text. mime.QEncoding is not used:
// it leaves long ASCII words alone and its first word overflows the line.
func encodeSubject(s string) string {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= ' ' && s[i] <= '~'
	}
	if plain {
		for _, w := range strings.Split(s, " ") {
			plain = plain && len(w) <= maxHeaderLine-len("Subject: ")
		}
	}
	if plain {
		return s
	}
	const prefix, suffix = "=?utf-8?q?", "?="
	room := maxHeaderLine - len("Subject: ") - len(prefix) - len(suffix)
	var out, word strings.Builder
	flush := func() {
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(prefix + word.String() + suffix)
		word.Reset()
		room = 75 - len(prefix) - len(suffix)
	}
	for _, r := range s {
		var enc string
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("!*+-/", r):
			enc = string(r)
		case r == ' ':
			enc = "_"
		default:
			for _, c := range []byte(string(r)) {
				enc += fmt.Sprintf("=%02X", c)
			}
		}
		if word.Len()+len(enc) > room {
			flush()
		}
		word.WriteString(enc)
	}
	if word.Len() > 0 {
		flush()
	}
	return out.String()
}
