package notify

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
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
	// (0: DefaultCompressAbove; negative: never).
	CompressAbove int
}

// DefaultCompressAbove is the attachment size above which it is gzipped.
const DefaultCompressAbove = 256 << 10

// Attachment is one report file of a message.
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
// file names follow Shadowserver: YYYY-MM-DD-<report_type>-<id>.csv.
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
				out = append(out, Attachment{Name: fmt.Sprintf("%s-%s-%s.csv", d, t, s.ID), ContentType: "text/csv", Data: b.Bytes()})
			}
		case FormatXARF4:
			var b bytes.Buffer
			if err := WriteXARF4(&b, rows, Reporter{Org: o.PublicSource, Contact: o.From, Domain: o.domain()}, generated); err != nil {
				return nil, err
			}
			out = append(out, Attachment{Name: fmt.Sprintf("%s-xarf4-%s.json", d, s.ID), ContentType: "application/json", Data: b.Bytes()})
		case FormatXARF02:
			var b bytes.Buffer
			if err := WriteXARF02(&b, rows, o.From); err != nil {
				return nil, err
			}
			out = append(out, Attachment{Name: fmt.Sprintf("%s-xarf02-%s.yaml", d, s.ID), ContentType: "text/plain", Data: b.Bytes()})
		}
	}
	limit := cmp.Or(o.CompressAbove, DefaultCompressAbove)
	for i := range out {
		if limit < 0 || len(out[i].Data) <= limit {
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
	src := "the sinkhole of a court-ordered botnet takedown"
	if o.PublicSource != "" {
		src += ", run by " + o.PublicSource
	}
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
		fmt.Fprintf(&b, "  %s (%d bytes)\n", a.Name, len(a.Data))
	}
	b.WriteString(`
The CSV files use the column layout of Shadowserver's sinkhole reports
(event4_sinkhole, event4_sinkhole_http, event6_...), so tools that read those
(IntelMQ, AbuseIO) read these. Times are UTC.

How to clean up: every listed address made a direct connection to a seized
command-and-control name or address that day. Find the machine behind the
address and port at that time (NAT and DHCP logs), disconnect it or put it in
a walled garden, and have its owner clean it with an up-to-date anti-malware
tool or reinstall it; change the passwords used on it.
`)
	if o.CleanupURL != "" {
		fmt.Fprintf(&b, "Guidance: %s\n", o.CleanupURL)
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
	messageID = MessageID(s.ID, day, o.domain())
	addrs := map[string]bool{}
	for i := range rows {
		addrs[rows[i].SrcIP.String()] = true
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	hdr := [][2]string{
		{"From", o.From},
		{"To", strings.Join(s.Contacts, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", fmt.Sprintf("[TLP:%s] Infected addresses in your networks on %s: %d (%s)", s.TLP, day.UTC().Format(time.DateOnly), len(addrs), s.Org))},
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
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Transfer-Encoding": {"quoted-printable"}})
	if err != nil {
		return nil, "", err
	}
	qw := quotedprintable.NewWriter(pw)
	if _, err := qw.Write([]byte(strings.ReplaceAll(Summary(s, day, rows, atts, o), "\n", "\r\n"))); err != nil {
		return nil, "", err
	}
	if err := qw.Close(); err != nil {
		return nil, "", err
	}
	for _, a := range atts {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(a.ContentType, map[string]string{"name": a.Name})},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": a.Name})},
			"Content-Transfer-Encoding": {"base64"},
		})
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
