package notify_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/testtool"
)

// aiosmtpdServer is the aiosmtpd library (Debian python3-aiosmtpd) run as
// an SMTP server process that requires STARTTLS and AUTH and stores mail
// in a maildir. It covers what the OpenSMTPD of Debian 12 cannot: TLS.
const aiosmtpdServer = `
import asyncio, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from aiosmtpd.handlers import Mailbox

port, certfile, keyfile, maildir, user, pw = sys.argv[1:]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(certfile, keyfile)

def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == pw
    return AuthResult(success=ok, handled=False)

loop = asyncio.new_event_loop()
srv = loop.run_until_complete(loop.create_server(
    lambda: SMTP(Mailbox(maildir), hostname="localhost", tls_context=ctx, require_starttls=True,
                 authenticator=auth, auth_required=True, auth_require_tls=True),
    "127.0.0.1", int(port)))
print("ready", flush=True)
loop.run_forever()
`

type tlsServer struct {
	Addr    string
	Maildir string
	Roots   *x509.CertPool
}

func startAiosmtpd(tb testing.TB, user, pass string) *tlsServer {
	tb.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = testtool.Need(tb, "python3", "python3-aiosmtpd")
	}
	if err := exec.Command(py, "-c", "import aiosmtpd").Run(); err != nil {
		if testtool.Strict() {
			tb.Fatalf("python3 cannot import aiosmtpd (TAKEDOWN_STRICT=1): install the Debian package python3-aiosmtpd")
		}
		tb.Skip("python3 cannot import aiosmtpd: install the Debian package python3-aiosmtpd")
	}
	dir := tb.TempDir()
	certPEM, keyPEM, roots := selfSigned(tb)
	cert, key, script := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "server.py")
	os.WriteFile(cert, certPEM, 0o644)
	os.WriteFile(key, keyPEM, 0o600)
	os.WriteFile(script, []byte(aiosmtpdServer), 0o644)
	maildir := filepath.Join(dir, "Maildir")
	port := testtool.FreePort(tb, "tcp")
	cmd := exec.Command(py, script, strconv.Itoa(port), cert, key, maildir, user, pass)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if tb.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			tb.Logf("aiosmtpd log:\n%s", b)
		}
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		tb.Fatalf("aiosmtpd did not start: %q %v", line, err)
	}
	return &tlsServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Maildir: maildir, Roots: roots}
}

func selfSigned(tb testing.TB) (certPEM, keyPEM []byte, roots *x509.CertPool) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(c)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), roots
}

func TestStartTLSAndAuth(t *testing.T) {
	const user, pass = "notifier", "s3cret-for-test"
	srv := startAiosmtpd(t, user, pass)
	tlsConf := func() *tls.Config {
		return &tls.Config{RootCAs: srv.Roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	}
	tests := []struct {
		name      string
		mailer    *notify.SMTP
		wantState notify.State
		wantError string
	}{
		{"starttls and auth", &notify.SMTP{Addr: srv.Addr, StartTLS: notify.StartTLSAlways, TLSConfig: tlsConf(), Username: user, Password: pass}, notify.StateSent, ""},
		{"wrong password", &notify.SMTP{Addr: srv.Addr, StartTLS: notify.StartTLSAlways, TLSConfig: tlsConf(), Username: user, Password: "wrong"}, notify.StateFailed, "535"},
		{"untrusted certificate", &notify.SMTP{Addr: srv.Addr, StartTLS: notify.StartTLSAlways, Username: user, Password: pass}, notify.StatePending, "certificate"},
		{"no starttls where the server requires it", &notify.SMTP{Addr: srv.Addr, StartTLS: notify.StartTLSNever}, notify.StateFailed, "530"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, ns := newStore(t)
			seed(t, db, seedEvents())
			id := "tls-" + strconv.Itoa(i)
			if err := ns.AddSubscribers(t.Context(), []notify.Subscriber{subscriber(t, id, "AS64500", "abuse@isp-a.example")}); err != nil {
				t.Fatal(err)
			}
			n, err := notify.New(notify.Options{Store: ns, Source: ns, Mailer: tc.mailer, Tries: 1, Message: notify.MessageOptions{From: "takedown@dcu.example"}})
			if err != nil {
				t.Fatal(err)
			}
			outs, err := n.Send(t.Context(), day)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != 1 || outs[0].State != tc.wantState || !strings.Contains(outs[0].Error, tc.wantError) {
				t.Fatalf("outcome %+v, want %s with %q", outs, tc.wantState, tc.wantError)
			}
			files, _ := filepath.Glob(filepath.Join(srv.Maildir, "new", "*"))
			found := false
			for _, f := range files {
				b, _ := os.ReadFile(f)
				found = found || strings.Contains(string(b), "X-Takedown-Subscriber: "+id+"\r\n") || strings.Contains(string(b), "X-Takedown-Subscriber: "+id+"\n")
			}
			if found != (tc.wantState == notify.StateSent) {
				t.Errorf("message in the maildir: %v, want %v", found, tc.wantState == notify.StateSent)
			}
		})
	}
}
