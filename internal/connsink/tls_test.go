package connsink

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/testtool"
)

// expectedJA4 reads the independently computed fingerprints of the
// ClientHello captures in ../tlsfp/testdata.
func expectedJA4(tb testing.TB) map[string][2]string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "tlsfp", "testdata", "expected.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][2]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cols := strings.Split(line, "\t")
		if len(cols) == 5 {
			out[cols[0]] = [2]string{cols[3], cols[2]} // ja4, ja3 md5
		}
	}
	return out
}

func TestHTTPSWithCurl(t *testing.T) {
	curl := testtool.Need(t, "curl", "curl")
	s := startSink(t, KindHTTPS, nil)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, s.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host string
		args       []string
	}{
		// -k as a bot would; --cacert proves the minted chain is valid for the SNI.
		{"insecure", "beacon.rustock.example", []string{"-k"}},
		{"verified against the sinkhole CA", "other.c2.example", []string{"--cacert", caFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := fmt.Sprintf("https://%s:%d/login.php", tt.host, s.port())
			args := append([]string{"-sS", "-w", "%{http_code}", "--resolve", fmt.Sprintf("%s:%d:127.0.0.1", tt.host, s.port()),
				"-X", "POST", "--data-binary", strings.Repeat("r", 96)}, tt.args...)
			out, err := exec.CommandContext(t.Context(), curl, append(args, url)...).CombinedOutput()
			if err != nil || string(out) != "200" {
				t.Fatalf("curl: %v: %s", err, out)
			}
			ev := s.next(t)
			if ev.Protocol != "https" || ev.SSLServerName != tt.host || ev.HTTPMethod != "POST" || ev.HTTPURL != "/login.php" {
				t.Errorf("event protocol %q sni %q %s %s", ev.Protocol, ev.SSLServerName, ev.HTTPMethod, ev.HTTPURL)
			}
			if ev.SSLVersion != "TLS 1.3" || ev.SSLCipher == "" || ev.ALPN == "" {
				t.Errorf("tls version %q cipher %q alpn %q", ev.SSLVersion, ev.SSLCipher, ev.ALPN)
			}
			if !strings.HasPrefix(ev.JA4, "t13d") || len(ev.JA4) != 36 || len(ev.JA3) != 32 {
				t.Errorf("ja4 %q ja3 %q", ev.JA4, ev.JA3)
			}
			if ev.Family != "rustock" {
				t.Errorf("family %q, want rustock", ev.Family)
			}
		})
	}
	// The CA key is private to the data dir's owner.
	st, err := os.Stat(filepath.Join(s.opts.DataDir, caDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v, want 0600", st.Mode().Perm())
	}
	if n := s.certs.cached(); n != 2 {
		t.Errorf("%d leaves cached, want 2", n)
	}
}

func TestHTTPSWithOpenSSL(t *testing.T) {
	openssl := testtool.Need(t, "openssl", "openssl")
	s := startSink(t, KindHTTPS, nil)
	cmd := exec.CommandContext(t.Context(), openssl, "s_client", "-connect", s.Addr().String(),
		"-servername", "beacon.rustock.example", "-quiet", "-ign_eof")
	cmd.Stdin = strings.NewReader("GET /gate.php HTTP/1.1\r\nHost: beacon.rustock.example\r\nConnection: close\r\n\r\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	if !bytes.Contains(out, []byte("HTTP/1.1 200 OK")) {
		t.Errorf("openssl got %q", out)
	}
	ev := s.next(t)
	if ev.SSLServerName != "beacon.rustock.example" || ev.HTTPURL != "/gate.php" || !strings.HasPrefix(ev.JA4, "t13d") {
		t.Errorf("event sni %q url %q ja4 %q", ev.SSLServerName, ev.HTTPURL, ev.JA4)
	}
	// openssl's hello differs from curl's in extensions only: same ciphers.
	want := expectedJA4(t)["openssl-sclient.bin"]
	if ev.JA4[:11] != want[0][:11] || ev.JA4[11:23] != want[0][11:23] {
		t.Errorf("ja4 %s, want prefix and cipher hash of %s", ev.JA4, want[0])
	}
}

func TestHTTPSWithGoClient(t *testing.T) {
	s := startSink(t, KindHTTPS, nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	c, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{ServerName: "beacon.rustock.example", RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("negotiated %q, want http/1.1 only", p)
	}
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: beacon.rustock.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response %v %v", resp, err)
	}
	ev := s.next(t)
	// Go's hello is the one captured in ../tlsfp/testdata/go-client.bin.
	want := expectedJA4(t)["go-client.bin"]
	if ev.JA4 != want[0] || ev.JA3 != want[1] {
		t.Errorf("ja4 %s ja3 %s, want %s %s", ev.JA4, ev.JA3, want[0], want[1])
	}
	if ev.ALPN != "h2,http/1.1" || ev.SSLVersion != "TLS 1.3" {
		t.Errorf("alpn %q version %q", ev.ALPN, ev.SSLVersion)
	}
}

// TestHTTPSAbortAfterClientHello replays captured hellos and hangs up: the
// fingerprint must still be recorded, matching the independent reference.
func TestHTTPSAbortAfterClientHello(t *testing.T) {
	s := startSink(t, KindHTTPS, nil)
	for name, want := range expectedJA4(t) {
		if name == "file" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			hello, err := os.ReadFile(filepath.Join("..", "tlsfp", "testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			c := dialFrom(t, "127.0.0.1", s.Addr().String())
			c.Write(hello)
			c.Close()
			ev := s.next(t)
			if ev.Protocol != event.ProtoHTTPS || ev.JA4 != want[0] || ev.JA3 != want[1] {
				t.Errorf("event %s ja4 %s ja3 %s, want %s %s", ev.Protocol, ev.JA4, ev.JA3, want[0], want[1])
			}
			wantVersion, wantSNI := "TLS 1.3", "beacon.rustock.example"
			if strings.Contains(name, "tls12") {
				wantVersion = "TLS 1.2"
			}
			switch {
			case strings.Contains(name, "nosni"):
				wantSNI = ""
			case strings.Contains(name, "curl-http11"):
				wantSNI = "c2.example"
			}
			if ev.SSLVersion != wantVersion || ev.SSLServerName != wantSNI || ev.SSLCipher != "" {
				t.Errorf("version %q sni %q cipher %q, want %q %q and no cipher", ev.SSLVersion, ev.SSLServerName, ev.SSLCipher, wantVersion, wantSNI)
			}
		})
	}
	t.Run("not tls", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", s.Addr().String())
		io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
		io.ReadAll(c)
		ev := s.next(t)
		if ev.JA4 != "" || !bytes.HasPrefix(ev.PayloadPrefix, []byte("GET / HTTP/1.1")) {
			t.Errorf("event ja4 %q payload %q", ev.JA4, ev.PayloadPrefix)
		}
	})
}

func TestCAReusedAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	a := startSink(t, KindHTTPS, func(o *Options) { o.DataDir = dir })
	b := startSink(t, KindHTTPS, func(o *Options) { o.DataDir = dir })
	if !bytes.Equal(a.CACertPEM(), b.CACertPEM()) {
		t.Error("second listener made a new CA instead of loading the first one's")
	}
}

func TestCertCacheBounded(t *testing.T) {
	s := startSink(t, KindHTTPS, func(o *Options) { o.CertCacheSize = 3 })
	for i := range 5 {
		if _, err := s.certs.certificate(fmt.Sprintf("n%d.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.certs.cached(); n != 3 {
		t.Errorf("%d cached, want 3", n)
	}
}
