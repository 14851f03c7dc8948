package notify_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/csv"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// opensmtpd is testtool's OpenSMTPD with the mailbox reads these tests use.
type opensmtpd struct{ *testtool.OpenSMTPD }

// startOpenSMTPD starts a real OpenSMTPD (testtool.StartOpenSMTPD).
func startOpenSMTPD(tb testing.TB) *opensmtpd {
	tb.Helper()
	return &opensmtpd{testtool.StartOpenSMTPD(tb)}
}

// settle waits until smtpd's queue is empty and at least want messages
// are in the maildir, then returns them all.
func (s *opensmtpd) settle(tb testing.TB, want int) []*mail.Message {
	tb.Helper()
	for i := 0; ; i++ {
		out, _ := exec.Command("smtpctl", "show", "queue").Output()
		msgs := s.messages(tb)
		if len(bytes.TrimSpace(out)) == 0 && len(msgs) >= want {
			return msgs
		}
		if i > 600 {
			tb.Fatalf("maildir has %d messages, want %d; queue:\n%s", len(msgs), want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *opensmtpd) messages(tb testing.TB) []*mail.Message {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(s.Maildir, "new", "*"))
	var out []*mail.Message
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(b))
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		out = append(out, m)
	}
	return out
}

// parsedMail is a received report: its text part, attachments by name
// (gunzipped when named .gz, under the name without .gz) and the X-ARF 0.2
// messages of its multipart/digest part.
type parsedMail struct {
	Header mail.Header
	Text   string
	Files  map[string][]byte
	XARF02 []xarfMessage
}

func parseMail(tb testing.TB, m *mail.Message) parsedMail {
	tb.Helper()
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		tb.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
	}
	p := parsedMail{Header: m.Header, Files: map[string][]byte{}}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		body, _ := io.ReadAll(part)
		if strings.HasPrefix(part.Header.Get("Content-Type"), "multipart/digest") {
			p.XARF02 = append(p.XARF02, parseDigest(tb, part.Header.Get("Content-Type"), body)...)
			continue
		}
		name := part.FileName()
		if name == "" {
			p.Text = string(body)
			continue
		}
		if part.Header.Get("Content-Transfer-Encoding") == "base64" {
			dec, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			body = dec
		}
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			body, err = io.ReadAll(zr)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			name = strings.TrimSuffix(name, ".gz")
		}
		p.Files[name] = body
	}
	return p
}

// csvRecords reads a report file into maps of column to value.
func csvRecords(tb testing.TB, data []byte) (header []string, rows []map[string]string) {
	tb.Helper()
	r := csv.NewReader(bytes.NewReader(data))
	all, err := r.ReadAll()
	if err != nil || len(all) == 0 {
		tb.Fatalf("bad CSV: %v\n%s", err, data)
	}
	for _, rec := range all[1:] {
		m := map[string]string{}
		for i, h := range all[0] {
			m[h] = rec[i]
		}
		rows = append(rows, m)
	}
	return all[0], rows
}

// responder is a tiny scripted SMTP server for the failure cases only: it
// answers the end of DATA (or RCPT) with the reply the script gives for
// the n-th connection (from 0); "" closes the connection without a reply
// (at the end of DATA: after the whole message, final "." included, was
// received).
type responder struct {
	Addr     string
	accepted chan []byte
}

func startResponder(tb testing.TB, rcpt, endData func(conn int) string) *responder {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &responder{Addr: l.Addr().String(), accepted: make(chan []byte, 100)}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.serve(c, n, rcpt, endData)
		}
	}()
	return r
}

func (r *responder) serve(c net.Conn, n int, rcpt, endData func(int) string) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) { io.WriteString(c, s+"\r\n") }
	say("220 responder ESMTP")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-responder")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL"):
			say("250 2.1.0 ok")
		case strings.HasPrefix(cmd, "RCPT"):
			reply := "250 2.1.5 ok"
			if rcpt != nil {
				reply = rcpt(n)
			}
			if reply == "" {
				return
			}
			say(reply)
		case cmd == "DATA":
			say("354 go ahead")
			var msg bytes.Buffer
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			reply := "250 2.0.0 queued"
			if endData != nil {
				reply = endData(n)
			}
			if reply == "" {
				return
			}
			if strings.HasPrefix(reply, "250") {
				r.accepted <- msg.Bytes()
			}
			say(reply)
		case cmd == "QUIT":
			say("221 bye")
			return
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		default:
			say("502 5.5.1 unknown")
		}
	}
}
