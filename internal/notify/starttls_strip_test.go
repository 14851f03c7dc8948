package notify_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/takedown/takedown/internal/notify"
)

// stripper is a man in the middle that removes STARTTLS from the EHLO
// reply (RFC 3207 section 6's downgrade) and otherwise plays a mail server
// that accepts everything, AUTH included. It records every line it was
// sent: what a client hands it is what leaks in clear.
type stripper struct {
	Addr string
	mu   sync.Mutex
	got  bytes.Buffer
}

func startStripper(tb testing.TB) *stripper {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	s := &stripper{Addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.serve(c)
		}
	}()
	return s
}

func (s *stripper) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(lines ...string) { io.WriteString(c, strings.Join(lines, "\r\n")+"\r\n") }
	say("220 mx.isp.example ESMTP")
	inData := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		s.mu.Lock()
		s.got.WriteString(line)
		s.mu.Unlock()
		if inData {
			if line == ".\r\n" {
				inData = false
				say("250 2.0.0 queued")
			}
			continue
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-mx.isp.example", "250-AUTH PLAIN LOGIN", "250 8BITMIME") // STARTTLS was here
		case strings.HasPrefix(cmd, "AUTH"):
			say("235 2.7.0 ok")
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "DATA":
			inData = true
			say("354 go ahead")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 5.5.1 unknown")
		}
	}
}

func (s *stripper) received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

// TestStrippedSTARTTLSSendsNothingInClear: with credentials configured,
// starttls auto requires STARTTLS. A server that does not offer it gets
// the EHLO and nothing else: no password, no envelope, no report; the
// delivery fails as temporary and the report stays pending. With
// starttls never, chosen explicitly, the same server gets the report.
func TestStrippedSTARTTLSSendsNothingInClear(t *testing.T) {
	const user, pass = "notifier", "s3cret-for-test"
	tests := []struct {
		name     string
		mailer   func(addr string) *notify.SMTP
		want     notify.State
		wantErr  string
		wantSent bool
	}{
		{"auto with credentials", func(a string) *notify.SMTP {
			return &notify.SMTP{Addr: a, StartTLS: notify.StartTLSAuto, Username: user, Password: pass}
		}, notify.StatePending, "does not offer STARTTLS", false},
		{"default mode with credentials", func(a string) *notify.SMTP { return &notify.SMTP{Addr: a, Username: user, Password: pass} },
			notify.StatePending, "does not offer STARTTLS", false},
		{"always", func(a string) *notify.SMTP { return &notify.SMTP{Addr: a, StartTLS: notify.StartTLSAlways} },
			notify.StatePending, "starttls is always", false},
		{"never, chosen explicitly", func(a string) *notify.SMTP {
			return &notify.SMTP{Addr: a, StartTLS: notify.StartTLSNever, Username: user, Password: pass}
		}, notify.StateSent, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startStripper(t)
			db, ns := newStore(t)
			seed(t, db, seedEvents())
			if err := ns.AddSubscribers(t.Context(), []notify.Subscriber{subscriber(t, "isp-a", "AS64500", "abuse@isp-a.example")}); err != nil {
				t.Fatal(err)
			}
			n, err := notify.New(notify.Options{Store: ns, Source: ns, Mailer: tc.mailer(srv.Addr), Tries: 1, Backoff: noBackoff,
				Message: notify.MessageOptions{From: "takedown@dcu.example"}})
			if err != nil {
				t.Fatal(err)
			}
			outs, err := n.Send(t.Context(), day)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != 1 || outs[0].State != tc.want || !strings.Contains(outs[0].Error, tc.wantErr) {
				t.Fatalf("outcome %+v; want %s with %q", outs, tc.want, tc.wantErr)
			}
			got := srv.received()
			leaked := strings.Contains(got, "X-Takedown-Subscriber") || strings.Contains(got, "MAIL FROM")
			if leaked != tc.wantSent {
				t.Errorf("report sent in clear: %v, want %v; the server received:\n%s", leaked, tc.wantSent, got)
			}
			if !tc.wantSent {
				for _, l := range strings.Split(strings.TrimSpace(got), "\r\n") {
					if v := strings.ToUpper(l); !strings.HasPrefix(v, "EHLO") && v != "QUIT" {
						t.Errorf("after a stripped STARTTLS the client sent %q", l)
					}
				}
				// Still queued: the next run tries again.
				outs, err := n.Send(t.Context(), day)
				if err != nil || len(outs) != 1 || outs[0].State != notify.StatePending || outs[0].Attempts < 2 {
					t.Errorf("second run: %+v, %v; want the report still pending and tried again", outs, err)
				}
			}
		})
	}
}

// TestNoSTARTTLSRealServer: a real OpenSMTPD without TLS (as the tests run
// it) offers no STARTTLS; with credentials and starttls auto nothing
// reaches its maildir and the report stays pending.
func TestNoSTARTTLSRealServer(t *testing.T) {
	srv := startOpenSMTPD(t)
	db, ns := newStore(t)
	seed(t, db, seedEvents())
	if err := ns.AddSubscribers(t.Context(), []notify.Subscriber{subscriber(t, "isp-a", "AS64500", "abuse@isp-a.example")}); err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Options{Store: ns, Source: ns, Tries: 1,
		Mailer:  &notify.SMTP{Addr: srv.Addr, StartTLS: notify.StartTLSAuto, Username: "notifier", Password: "s3cret-for-test"},
		Message: notify.MessageOptions{From: "takedown@dcu.example"}})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := n.Send(t.Context(), day)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].State != notify.StatePending || !strings.Contains(outs[0].Error, "STARTTLS") {
		t.Fatalf("outcome %+v; want pending for want of STARTTLS", outs)
	}
	for _, d := range []string{"new", "tmp", "cur"} {
		if files, _ := filepath.Glob(filepath.Join(srv.Maildir, d, "*")); len(files) > 0 {
			b, _ := os.ReadFile(files[0])
			t.Fatalf("%d messages delivered without TLS:\n%s", len(files), b)
		}
	}
}
