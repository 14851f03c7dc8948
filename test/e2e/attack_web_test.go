package e2e

// Attacks on the operator dashboard (issue 17), run against the real
// binary on loopback: racing and wiping the login throttle, rotating
// through an IPv6 /64, scraping /metrics, stealing cookies over plain
// HTTP, holding connections open (slowloris), reading the first admin
// password from the service log, and reading addresses from the data dir
// through permissive file modes. docs/security.md lists them with their
// defences.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/testtool"
)

// webServe is a serve with only the dashboard and one HTTP sinkhole.
type webServe struct {
	*server
	data, conf, web, sink string
}

// startWebServe writes a configuration with web.listen on a free port,
// web settings extra (YAML flow-map entries, e.g. `secure_cookies: always`)
// and an HTTP sinkhole, and starts serve. prepare, if set, runs on the
// data dir first. umask, if set, is the umask serve starts with.
func startWebServe(t testing.TB, extra, umask string, prepare func(data string)) *webServe {
	t.Helper()
	dir := t.TempDir()
	s := &webServe{data: filepath.Join(dir, "data"), conf: filepath.Join(dir, "takedown.yaml"),
		web:  fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp")),
		sink: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))}
	if extra != "" {
		extra = ", " + extra
	}
	conf := fmt.Sprintf("data: %s\nweb: {listen: %q%s}\nselfcheck: {listen: \"\"}\ndns:\n  listen: []\nlisteners:\n  - {kind: http, listen: %q}\n",
		s.data, s.web, extra, s.sink)
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(s.data)
	}
	if umask == "" {
		s.server = startServe(t, s.web, "--config", s.conf)
	} else {
		s.server = startServeUmask(t, umask, s.web, "--config", s.conf)
	}
	return s
}

// startServeUmask is startServe with the process started under umask.
func startServeUmask(t testing.TB, umask, addr string, args ...string) *server {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", "umask " + umask + " && exec \"$0\" \"$@\"", binary, "serve"}, args...)...)
	return startServeCmd(t, cmd, addr)
}

// cheapUsers writes a users file whose admin has password pw hashed with
// few iterations, so that a test can run thousands of wrong logins.
func cheapUsers(t testing.TB, data, pw string) {
	t.Helper()
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, pw, salt, 1000, 32)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawStdEncoding
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	line := "admin admin pbkdf2-sha256$1000$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key) + "\n"
	if err := os.WriteFile(filepath.Join(data, "dashboard-users"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rawLogin posts one login from local (a loopback address: all of
// 127.0.0.0/8 is ours) on a new connection and returns the status. The
// double-submit CSRF pair is the test's own. xff, if set, is sent as
// X-Forwarded-For.
func rawLogin(t testing.TB, local, addr, user, password, xff string) int {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	form := url.Values{"csrf": {"attack"}, "user": {user}, "password": {password}}.Encode()
	var b strings.Builder
	fmt.Fprintf(&b, "POST /login HTTP/1.1\r\nHost: %s\r\nCookie: takedown_login_csrf=attack\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n", addr, len(form))
	if xff != "" {
		fmt.Fprintf(&b, "X-Forwarded-For: %s\r\n", xff)
	}
	b.WriteString("\r\n" + form)
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("login from %s: %v", local, err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// analystToken creates an analyst token in data.
func analystToken(t testing.TB, data string) string {
	t.Helper()
	var created struct{ Secret string }
	if err := json.Unmarshal([]byte(mustRun(t, nil, "--data", data, "token", "create", "--role", "analyst", "--json").stdout), &created); err != nil {
		t.Fatal(err)
	}
	return created.Secret
}

// scrape returns a metric's sum from the dashboard's /metrics.
func scrape(t testing.TB, addr, token, name string, labels ...string) float64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics with a token: %d %s", resp.StatusCode, b)
	}
	v, found := metricSum(string(b), name, labels...)
	if !found {
		t.Errorf("/metrics lacks %s%v", name, labels)
	}
	return v
}

// N parallel wrong passwords from one address: at most the allowed number
// are hashed, whatever the race; the rest are refused at once. A burst
// from many addresses runs at most a few hashes at once. Rotating through
// an IPv6 /64 behind a trusted proxy does not escape the lockout.
func TestAttackWebLoginRace(t *testing.T) {
	s := startWebServe(t, `trusted_proxy: ["127.0.0.1"]`, "", nil)
	token := analystToken(t, s.data)
	pwb, err := os.ReadFile(filepath.Join(s.data, "dashboard-admin-password"))
	if err != nil {
		t.Fatalf("the first admin password file: %v\n%s", err, s.logs)
	}
	lines := strings.Split(strings.TrimSpace(string(pwb)), "\n")
	password := lines[len(lines)-1]

	const maxFailures = 10 // the default
	parallel := func(n int, from func(i int) (local, xff string), pw string) map[int]int {
		codes := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				local, xff := from(i)
				<-start
				c := rawLogin(t, local, s.web, "admin", pw, xff)
				mu.Lock()
				codes[c]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return codes
	}

	t.Run("one address, 40 at once", func(t *testing.T) {
		before := scrape(t, s.web, token, "takedown_web_login_hashes_total")
		codes := parallel(40, func(int) (string, string) { return "127.0.0.1", "" }, "wrong-guess")
		// Then one at a time until the lockout.
		for range 2 * maxFailures {
			codes[rawLogin(t, "127.0.0.1", s.web, "admin", "wrong-guess", "")]++
		}
		hashed := scrape(t, s.web, token, "takedown_web_login_hashes_total") - before
		if codes[401] > maxFailures || hashed > maxFailures || float64(codes[401]) != hashed {
			t.Errorf("wrong passwords checked %d times (hashes %v), at most %d allowed; statuses %v", codes[401], hashed, maxFailures, codes)
		}
		if codes[401]+codes[429]+codes[503] != 40+2*maxFailures {
			t.Errorf("statuses %v: want only 401, 429 and 503", codes)
		}
		// Locked out: even the right password is not checked now.
		if c := rawLogin(t, "127.0.0.1", s.web, "admin", password, ""); c != http.StatusTooManyRequests {
			t.Errorf("the right password during the lockout: %d, want 429", c)
		}
	})

	t.Run("40 addresses at once", func(t *testing.T) {
		before := scrape(t, s.web, token, "takedown_web_login_hashes_total")
		codes := parallel(40, func(i int) (string, string) { return fmt.Sprintf("127.0.1.%d", i+1), "" }, "wrong-guess")
		hashed := scrape(t, s.web, token, "takedown_web_login_hashes_total") - before
		// Two hashes at a time, each a good fraction of a second: a burst
		// that arrives within milliseconds gets most of its requests
		// refused at once.
		if codes[503] == 0 || codes[401] >= 40 || float64(codes[401]) != hashed {
			t.Errorf("burst from 40 addresses: statuses %v, hashes %v; want some 503 and fewer than 40 hashed", codes, hashed)
		}
		if busy := scrape(t, s.web, token, "takedown_web_login_attempts_total", `result="busy"`); busy < float64(codes[503]) {
			t.Errorf("busy counter %v, but %d answers were 503", busy, codes[503])
		}
	})

	t.Run("rotating through an IPv6 /64", func(t *testing.T) {
		codes := map[int]int{}
		for i := range 3 * maxFailures {
			codes[rawLogin(t, "127.0.0.1", s.web, "admin", "wrong-guess", fmt.Sprintf("2001:db8:17:64:%x::%x", i, i+1))]++
		}
		if codes[401] != maxFailures || codes[429] != 2*maxFailures {
			t.Errorf("30 addresses of one /64: statuses %v, want %d×401 then 429", codes, maxFailures)
		}
		// The key is the client's /64, not the proxy: the next /64 is
		// another client.
		if c := rawLogin(t, "127.0.0.1", s.web, "admin", "wrong-guess", "2001:db8:17:65::1"); c != http.StatusUnauthorized {
			t.Errorf("another /64: %d, want 401", c)
		}
	})
}

// Filling the throttle with more than 10,000 addresses does not lift an
// existing lockout.
func TestAttackWebThrottleFlood(t *testing.T) {
	const password = "the-right-password"
	s := startWebServe(t, "", "", func(data string) { cheapUsers(t, data, password) })
	victim := "127.3.0.1"
	for i := range 10 {
		if c := rawLogin(t, victim, s.web, "admin", "wrong", ""); c != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, c)
		}
	}
	if c := rawLogin(t, victim, s.web, "admin", password, ""); c != http.StatusTooManyRequests {
		t.Fatalf("after 10 failures: %d, want 429", c)
	}
	// 10,050 other addresses fail once each (a 503 is retried: the hash
	// slots were taken, nothing was counted).
	const n = 10050
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 6 {
		wg.Go(func() {
			for i := range next {
				local := fmt.Sprintf("127.4.%d.%d", i/250, i%250+1)
				c := rawLogin(t, local, s.web, "admin", "wrong", "")
				for c == http.StatusServiceUnavailable {
					c = rawLogin(t, local, s.web, "admin", "wrong", "")
				}
				mu.Lock()
				codes[c]++
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if codes[401] != n {
		t.Fatalf("flood: statuses %v, want %d×401", codes, n)
	}
	if c := rawLogin(t, victim, s.web, "admin", password, ""); c != http.StatusTooManyRequests {
		t.Fatalf("after a flood of %d addresses the locked-out address got %d, want 429", n, c)
	}
	token := analystToken(t, s.data)
	if tracked := scrape(t, s.web, token, "takedown_web_login_throttle_networks"); tracked > 10000 {
		t.Errorf("the throttle tracks %v networks, more than its 10000", tracked)
	}
	if ev := scrape(t, s.web, token, "takedown_web_login_throttle_evictions_total"); ev < n+1-10000 {
		t.Errorf("evictions %v, want at least %d (one per new address past the limit)", ev, n+1-10000)
	}
}

// /metrics refuses anyone without an admin or analyst credential on the
// dashboard; web.metrics_listen serves it on its own address.
func TestAttackWebMetrics(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	s := startWebServe(t, fmt.Sprintf("metrics_listen: %q", metricsAddr), "", nil)
	get := func(url, bearer string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && !bytes.Contains(b, []byte("takedown_web_login_hashes_total")) {
			t.Errorf("%s: no login metrics", url)
		}
		return resp.StatusCode
	}
	var network struct{ Secret string }
	if err := json.Unmarshal([]byte(mustRun(t, nil, "--data", s.data, "token", "create", "--role", "network", "--networks", "AS64500", "--json").stdout), &network); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, bearer string
		want              int
	}{
		{"anonymous", "http://" + s.web + "/metrics", "", 401},
		{"made-up token", "http://" + s.web + "/metrics", "tdk_made-up", 401},
		{"network token", "http://" + s.web + "/metrics", network.Secret, 401},
		{"analyst token", "http://" + s.web + "/metrics", analystToken(t, s.data), 200},
		{"metrics listener", "http://" + metricsAddr + "/metrics", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := get(tc.url, tc.bearer); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t testing.TB, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return cert, key
}

// Cookies carry Secure over TLS, directly or behind a trusted TLS proxy,
// so a browser never sends the session over plain HTTP.
func TestAttackWebSecureCookies(t *testing.T) {
	cookies := func(t *testing.T, c *http.Client, url, proto string) []*http.Cookie {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/login", nil)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(resp.Cookies()) == 0 {
			t.Fatalf("%s/login set no cookie", url)
		}
		return resp.Cookies()
	}
	check := func(t *testing.T, cs []*http.Cookie, want bool) {
		t.Helper()
		for _, ck := range cs {
			if ck.Secure != want {
				t.Errorf("cookie %s: Secure %v, want %v", ck.Name, ck.Secure, want)
			}
		}
	}
	t.Run("served over TLS", func(t *testing.T) {
		cert, key := selfSigned(t, t.TempDir())
		s := startWebServe(t, fmt.Sprintf("tls_cert: %q, tls_key: %q", cert, key), "", nil)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		check(t, cookies(t, c, "https://"+s.web, ""), true)
	})
	t.Run("behind a trusted TLS proxy", func(t *testing.T) {
		s := startWebServe(t, `trusted_proxy: ["127.0.0.1"]`, "", nil)
		check(t, cookies(t, http.DefaultClient, "http://"+s.web, "https"), true)
		check(t, cookies(t, http.DefaultClient, "http://"+s.web, ""), false)
	})
	t.Run("always", func(t *testing.T) {
		s := startWebServe(t, `secure_cookies: always`, "", nil)
		check(t, cookies(t, http.DefaultClient, "http://"+s.web, ""), true)
	})
}

// Connections that send their request slowly, or too large a header, are
// cut off by the server instead of holding a goroutine and a socket open.
func TestAttackWebSlowloris(t *testing.T) {
	s := startWebServe(t, "read_header_timeout: 1s, read_timeout: 2s", "", nil)
	// closed trickles the request one byte every 200 ms after head and
	// reports whether the server closed the connection within a generous
	// bound (the timeouts are 1 and 2 s).
	closed := func(t *testing.T, head, trickle string) {
		t.Helper()
		c, err := net.Dial("tcp", s.web)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := 0; ; i++ {
				time.Sleep(200 * time.Millisecond)
				if _, err := c.Write([]byte{trickle[i%len(trickle)]}); err != nil {
					return
				}
			}
		}()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept a slow connection open for 30 s")
		}
	}
	t.Run("headers", func(t *testing.T) {
		closed(t, "GET /login HTTP/1.1\r\nHost: x\r\n", "X-Slow: aaaaaaaaaa\r\n")
	})
	t.Run("body", func(t *testing.T) {
		closed(t, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n", "a")
	})
	t.Run("huge header", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+s.web+"/login", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 200<<10))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("a 200 KB header: %d, want 431", resp.StatusCode)
			}
		}
	})
}

// serve never writes the first admin password to its log: it is in a
// file only the owner reads, and it logs in.
func TestAttackWebAdminPasswordNotLogged(t *testing.T) {
	s := startWebServe(t, "", "", nil)
	path := filepath.Join(s.data, "dashboard-admin-password")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no password file: %v\nlog:\n%s", err, s.logs)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	pw := lines[len(lines)-1]
	if len(pw) < 16 {
		t.Fatalf("password file %q", b)
	}
	if c := rawLogin(t, "", s.web, "admin", pw, ""); c != http.StatusSeeOther {
		t.Errorf("the password from the file: login %d", c)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.wait()
	if strings.Contains(s.logs.String(), pw) {
		t.Errorf("the admin password is in serve's log:\n%s", s.logs)
	}
	if !strings.Contains(s.logs.String(), path) {
		t.Errorf("serve's log does not say where the password is:\n%s", s.logs)
	}
}

// With umask 000, serve and evidence export still leave nothing in the
// data dir or the evidence package that another user can read; the
// enforcement export (no addresses; read by a resolver running as another
// user) stays 0644.
func TestAttackWebFileModes(t *testing.T) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	s := startWebServe(t, "", "000", func(data string) {
		mustRun(t, []byte("aactsxgiv.example\n"), "--data", data, "order", "import", "-", "--case", "modes-1", "--court", "Test", "--allow-reserved",
			"--effective", today.AddDate(0, 0, -1).Format(time.DateOnly), "--expires", today.AddDate(1, 0, 0).Format(time.DateOnly))
		// The import ran under the test's umask: serve must tighten what
		// it finds too.
		os.Chmod(data, 0o755)
		os.Chmod(filepath.Join(data, "takedown.db"), 0o644)
	})
	for range 3 {
		if err := beacon(http.DefaultClient, s.sink); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if stored, _ := storedHealth(t, s.data); stored >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events not stored:\n%s", s.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// While serve runs: the database's -wal and -shm.
	for _, name := range []string{"takedown.db", "takedown.db-wal", "takedown.db-shm"} {
		fi, err := os.Stat(filepath.Join(s.data, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v while serve runs", name, fi.Mode().Perm())
		}
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.wait()
	pkg := filepath.Join(t.TempDir(), "package")
	rpz := filepath.Join(t.TempDir(), "seized.rpz")
	for _, args := range [][]string{
		{"evidence", "export", "--case", "modes-1", "--from", today.AddDate(0, 0, -1).Format(time.DateOnly), "--to", today.AddDate(0, 0, 2).Format(time.DateOnly), "-o", pkg},
		{"export", "rpz", "-o", rpz},
	} {
		cmd := exec.CommandContext(t.Context(), "sh", append([]string{"-c", "umask 000 && exec \"$0\" \"$@\"", binary, "--data", s.data}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("takedown %v: %v\n%s", args, err, out)
		}
	}
	seen := 0
	for _, root := range []string{s.data, pkg} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Error(err)
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				t.Error(err)
				return nil
			}
			seen++
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: mode %v, readable by others", p, fi.Mode().Perm())
			}
			return nil
		})
	}
	for _, name := range []string{"takedown.db", "api-access.log", "dashboard-admin-password", "evidence"} { // users are in the store
		if _, err := os.Stat(filepath.Join(s.data, name)); err != nil {
			t.Errorf("expected %s in the data dir: %v", name, err)
		}
	}
	if seen < 10 {
		t.Errorf("only %d files and directories checked", seen)
	}
	if fi, err := os.Stat(rpz); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o644 {
		t.Errorf("enforcement export %s: mode %v; want 0644 (a resolver running as another user reads it)", rpz, fi.Mode().Perm())
	}
}
