package e2e

// Attacks on the public self-check, against the real binary: the page must
// answer only for the address a request really comes from (docs/selfcheck.md,
// "Whose address is looked up"), and its rate limit must not be reset by
// claiming other addresses.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// The addresses the attacks try to look up; both are seen (rustock, a
// direct HTTP connection yesterday), so an answer for either one says so.
const (
	attackTarget   = "198.51.100.23"
	attackTarget6  = "2001:db8:bad::23"
	demoAttackAddr = "200.160.2.3" // the address of the report on issue 17
)

// importSeen stores one HTTP beacon from each address, yesterday, as
// family rustock, in data.
func importSeen(t *testing.T, data string, addrs ...string) {
	t.Helper()
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1).Add(9 * time.Hour).Format(time.RFC3339)
	var b strings.Builder
	for i, a := range addrs {
		fmt.Fprintf(&b, `{"v":1,"id":"attack-sc-%d","timestamp":%q,"protocol":"http","src_ip":%q,"dst_port":80,"family":"rustock","http_host":"x.example"}`+"\n", i, at, a)
	}
	f := filepath.Join(t.TempDir(), "seen.jsonl")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "--data", data, "events", "import", "--format", "jsonl", f)
}

// ownAnswer checks a self-check response: want is the status code; for a
// 200 the answer must be about own and nothing else, and no response may
// carry the targets' data (their family, "infected": true).
func ownAnswer(t *testing.T, what string, code int, body string, want int, own string, api bool) {
	t.Helper()
	if code != want {
		t.Errorf("%s: status %d, want %d: %s", what, code, want, brief(body))
		return
	}
	if strings.Contains(strings.ToLower(body), "rustock") || strings.Contains(body, `"infected": true`) {
		t.Errorf("%s: the response carries another address's result: %s", what, brief(body))
	}
	if code != 200 {
		return
	}
	if !api {
		if !strings.Contains(body, own) {
			t.Errorf("%s: the page does not name the visitor's own address %s", what, own)
		}
		for _, target := range []string{attackTarget, attackTarget6, demoAttackAddr} {
			if strings.Contains(body, target) {
				t.Errorf("%s: the page names %s", what, target)
			}
		}
		return
	}
	var a selfAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Errorf("%s: %v: %s", what, err, brief(body))
		return
	}
	if a.Address != own || a.Status == "seen" || a.Infected {
		t.Errorf("%s: answered for %s (%s, infected %v); want %s", what, a.Address, a.Status, a.Infected, own)
	}
}

// brief is a response body on one short line, for a failure message.
func brief(body string) string {
	s := strings.Join(strings.Fields(body), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// selfCheckAttacks are the requests that name a seen address every way a
// visitor could: headers, query parameters, cookies, paths and bodies.
// status is what the page must answer (for the visitor's own address).
type selfCheckAttack struct {
	name, method, target, header, body string
	status                             int
}

func selfCheckAttacks(victim string) []selfCheckAttack {
	v6 := strings.Contains(victim, ":")
	bracket := victim
	if v6 {
		bracket = "[" + victim + "]"
	}
	h := func(name string) string { return name + ": " + victim + "\r\n" }
	var all strings.Builder
	headers := []string{"X-Forwarded-For", "X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "X-Client-IP",
		"X-Originating-IP", "Client-IP", "X-Cluster-Client-IP", "Fastly-Client-IP", "X-Forwarded", "Forwarded-For",
		"X-Remote-IP", "X-Remote-Addr", "X-ProxyUser-Ip", "X-Original-Forwarded-For", "X-Envoy-External-Address",
		"Akamai-Client-IP", "X-Azure-ClientIP", "X-Appengine-User-IP"}
	var out []selfCheckAttack
	for _, name := range headers {
		out = append(out, selfCheckAttack{name: "header " + name, target: "/api/v1/self", header: h(name), status: 200})
		all.WriteString(h(name))
	}
	all.WriteString(`Forwarded: for="` + bracket + `";proto=https` + "\r\n")
	all.WriteString("Cookie: ip=" + victim + "; address=" + victim + "\r\n")
	q := "ip=" + victim + "&address=" + victim + "&addr=" + victim + "&client=" + victim
	out = append(out,
		selfCheckAttack{name: "Forwarded", target: "/api/v1/self", header: `Forwarded: for="` + bracket + `"` + "\r\n", status: 200},
		selfCheckAttack{name: "X-Forwarded-For chain", target: "/api/v1/self", header: "X-Forwarded-For: " + victim + ", " + victim + "\r\nX-Forwarded-For: " + victim + "\r\n", status: 200},
		selfCheckAttack{name: "Via", target: "/api/v1/self", header: "Via: 1.1 " + bracket + "\r\n", status: 200},
		selfCheckAttack{name: "every header at once", target: "/api/v1/self", header: all.String(), status: 200},
		selfCheckAttack{name: "every header at once, page", target: "/", header: all.String(), status: 200},
		selfCheckAttack{name: "query ?ip= ?address=", target: "/api/v1/self?" + q, status: 200},
		selfCheckAttack{name: "query on the page", target: "/?" + q, status: 200},
		selfCheckAttack{name: "cookie", target: "/api/v1/self", header: "Cookie: ip=" + victim + "; address=" + victim + "; selfcheck=" + victim + "\r\n", status: 200},
		selfCheckAttack{name: "path /ADDR", target: "/" + victim, status: 404},
		selfCheckAttack{name: "path /api/v1/self/ADDR", target: "/api/v1/self/" + victim, status: 404},
		selfCheckAttack{name: "path /api/v1/self;ADDR", target: "/api/v1/self;" + victim, status: 404},
		selfCheckAttack{name: "path /api/v1/self%2FADDR", target: "/api/v1/self%2F" + victim, status: 404},
		selfCheckAttack{name: "json body on GET", target: "/api/v1/self", header: "Content-Type: application/json\r\n", body: `{"ip":"` + victim + `","address":"` + victim + `"}`, status: 200},
		selfCheckAttack{name: "form body on GET", target: "/api/v1/self", header: "Content-Type: application/x-www-form-urlencoded\r\n", body: q, status: 200},
		selfCheckAttack{name: "json POST", method: "POST", target: "/api/v1/self", header: "Content-Type: application/json\r\n", body: `{"ip":"` + victim + `"}`, status: 405},
		selfCheckAttack{name: "form POST to the page", method: "POST", target: "/", header: "Content-Type: application/x-www-form-urlencoded\r\n", body: q, status: 405},
		selfCheckAttack{name: "method override", method: "POST", target: "/api/v1/self?ip=" + victim, header: "X-HTTP-Method-Override: GET\r\n", status: 405},
	)
	if !v6 {
		out = append(out, selfCheckAttack{name: "absolute-form target naming the address", target: "http://" + victim + "/api/v1/self", header: "", status: 200},
			selfCheckAttack{name: "Host header naming the address", target: "/api/v1/self", header: "X-Forwarded-Host: " + victim + "\r\n", status: 200})
	}
	return out
}

// (a) serve, with the self-check trusting PROXY headers from loopback
// (127.0.0.0/9) and no X-Forwarded-For source: every header, parameter,
// cookie, path and body that names a seen address is answered for the
// connection's own address, whether it comes straight from a peer trusted
// for PROXY, from an untrusted peer, or through the trusted proxy.
func TestAttackSelfCheckServe(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb: {listen: \"\"}\ndns:\n  listen: []\nlisteners: []\n"+
		"selfcheck:\n  listen: %q\n  trusted_proxy: [127.0.0.0/9]\n", data, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	importSeen(t, data, attackTarget, attackTarget6)
	srv := startServe(t, addr, "--config", conf)

	// The control: through the trusted proxy, each target sees its own
	// result, so an answer for a target would show.
	for _, target := range []string{attackTarget, attackTarget6} {
		code, body := selfRequest(t, addr, "127.0.0.1", viaProxy(target), "GET", "/api/v1/self", "", "")
		var a selfAnswer
		if code != 200 || json.Unmarshal([]byte(body), &a) != nil || a.Address != target || a.Status != "seen" {
			t.Fatalf("control: %s through the trusted proxy: %d %s\nserver log:\n%s", target, code, body, srv.logs)
		}
	}

	// Each request comes from its own client address, so that the rate
	// limit (10 in a row) never hides an answer.
	n := 0
	next := func() int { n++; return n }
	sources := []struct {
		name string
		from func(i int) (local string, prefix []byte, own string)
	}{
		{"peer trusted for PROXY, no header", func(i int) (string, []byte, string) {
			a := fmt.Sprintf("127.0.%d.%d", i/250, i%250+2)
			return a, nil, a
		}},
		{"untrusted peer", func(i int) (string, []byte, string) {
			a := fmt.Sprintf("127.200.%d.%d", i/250, i%250+2)
			return a, nil, a
		}},
		{"through the trusted proxy", func(i int) (string, []byte, string) {
			a := fmt.Sprintf("203.0.%d.%d", 113+i/250, i%250+1)
			return "127.0.0.1", viaProxy(a), a
		}},
		{"through the trusted proxy, IPv6 client", func(i int) (string, []byte, string) {
			a := fmt.Sprintf("2001:db8:%x::7", 0x100+i)
			return "127.0.0.1", viaProxy(a), a
		}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			for _, victim := range []string{attackTarget, attackTarget6} {
				for _, at := range selfCheckAttacks(victim) {
					local, prefix, own := src.from(next())
					method := at.method
					if method == "" {
						method = "GET"
					}
					code, body := selfRequest(t, addr, local, prefix, method, at.target, at.header, at.body)
					ownAnswer(t, fmt.Sprintf("%s naming %s", at.name, victim), code, body, at.status, own, !strings.HasPrefix(at.target, "/?") && at.target != "/")
				}
			}
		})
	}

	// A PROXY header from a peer not trusted for it is not read: the
	// connection is a malformed HTTP request.
	t.Run("PROXY header from an untrusted peer", func(t *testing.T) {
		for _, victim := range []string{attackTarget, attackTarget6} {
			code, body := selfRequest(t, addr, fmt.Sprintf("127.200.9.%d", next()%250+1), viaProxy(victim), "GET", "/api/v1/self", "", "")
			ownAnswer(t, "PROXY v2 naming "+victim, code, body, 400, "", true)
			v1 := []byte(fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 50000 8082\r\n", attackTarget))
			code, body = selfRequest(t, addr, fmt.Sprintf("127.200.9.%d", next()%250+1), v1, "GET", "/api/v1/self", "", "")
			ownAnswer(t, "PROXY v1 naming "+attackTarget, code, body, 400, "", true)
		}
	})
}

// (b) The demo, attacked exactly as reported on issue 17: `curl -H
// 'X-Forwarded-For: 200.160.2.3' http://127.0.0.1:8082/api/v1/self`
// answered "seen" for 200.160.2.3. The address is made seen first; the
// demo must answer for 127.0.0.1, and trusts no PROXY header on its
// self-check either (the simulator talks to the sinkholes, not to it).
func TestAttackSelfCheckDemo(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	importSeen(t, data, demoAttackAddr)
	startDemo(t, data)
	const page = "127.0.0.1:8082"

	// The report's own command; the same request is among the attacks
	// below, so a machine without curl still runs it.
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.CommandContext(t.Context(), curl, "-sS", "-H", "X-Forwarded-For: "+demoAttackAddr, "http://"+page+"/api/v1/self").Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		ownAnswer(t, "curl -H 'X-Forwarded-For: "+demoAttackAddr+"'", 200, string(out), 200, "127.0.0.1", true)
	} else {
		t.Log("curl not found: the report's request is sent without it below")
	}
	local := 10
	from := func() string { local++; return fmt.Sprintf("127.0.0.%d", local) }
	for _, at := range selfCheckAttacks(demoAttackAddr) {
		method := at.method
		if method == "" {
			method = "GET"
		}
		l := from()
		code, body := selfRequest(t, page, l, nil, method, at.target, at.header, at.body)
		ownAnswer(t, at.name, code, body, at.status, l, !strings.HasPrefix(at.target, "/?") && at.target != "/")
	}
	// PROXY headers from loopback: the sinkholes believe them (the
	// simulator sends them), the self-check does not.
	v1 := []byte(fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 50000 8082\r\n", demoAttackAddr))
	for _, prefix := range [][]byte{viaProxy(demoAttackAddr), v1} {
		code, body := selfRequest(t, page, from(), prefix, "GET", "/api/v1/self", "", "")
		ownAnswer(t, "PROXY header naming "+demoAttackAddr, code, body, 400, "", true)
	}
	// Rotating X-Forwarded-For from one peer spends one budget.
	answered, limited := 0, 0
	for i := range 25 {
		code, body := selfRequest(t, page, "127.0.1.1", nil, "GET", "/api/v1/self", fmt.Sprintf("X-Forwarded-For: 200.160.%d.%d\r\n", i/200, i%200+1), "")
		switch code {
		case 200:
			answered++
			ownAnswer(t, "rotating X-Forwarded-For", code, body, 200, "127.0.1.1", true)
		case 429:
			limited++
		default:
			t.Fatalf("rotating X-Forwarded-For: status %d: %s", code, brief(body))
		}
	}
	if answered != 10 || limited != 15 {
		t.Errorf("rotating X-Forwarded-For from one peer: %d answered, %d rate-limited; want 10 and 15", answered, limited)
	}
}

// (c) The rate limit keys on the connection (or the source a trusted
// proxy's PROXY header names), never on a claimed address: rotating
// X-Forwarded-For from one peer, whether or not that peer is trusted for
// PROXY headers, hits the limit after the burst of 10; rotating the
// addresses of one IPv6 /64 through the trusted proxy does too, while
// another /64 and another IPv4 client keep their own budgets.
func TestAttackSelfCheckRateLimit(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb: {listen: \"\"}\ndns:\n  listen: []\nlisteners: []\n"+
		"selfcheck:\n  listen: %q\n  trusted_proxy: [127.0.0.1]\n", data, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	importSeen(t, data, attackTarget)
	startServe(t, addr, "--config", conf)

	const burst, tries = 10, 30
	tally := func(t *testing.T, what string, req func(i int) (code int, body string), wantOK int) {
		t.Helper()
		ok, limited := 0, 0
		for i := range tries {
			code, body := req(i)
			switch code {
			case 200:
				ok++
				if strings.Contains(body, "rustock") {
					t.Errorf("%s: answered with another address's result: %s", what, brief(body))
				}
			case 429:
				limited++
			default:
				t.Fatalf("%s: status %d: %s", what, code, brief(body))
			}
		}
		if ok != wantOK || limited != tries-wantOK {
			t.Errorf("%s: %d answered, %d rate-limited; want %d answered", what, ok, limited, wantOK)
		}
	}
	t.Run("X-Forwarded-For from the peer trusted for PROXY", func(t *testing.T) {
		tally(t, "rotating X-Forwarded-For", func(i int) (int, string) {
			return selfRequest(t, addr, "127.0.0.1", nil, "GET", "/api/v1/self", fmt.Sprintf("X-Forwarded-For: 198.51.100.%d\r\n", i+1), "")
		}, burst)
	})
	t.Run("X-Forwarded-For and friends from an untrusted peer", func(t *testing.T) {
		tally(t, "rotating claimed addresses", func(i int) (int, string) {
			a := fmt.Sprintf("198.51.100.%d", i+1)
			return selfRequest(t, addr, "127.0.0.2", nil, "GET", "/api/v1/self",
				"X-Forwarded-For: "+a+"\r\nX-Real-IP: "+a+"\r\nForwarded: for="+a+"\r\nTrue-Client-IP: "+a+"\r\n", "")
		}, burst)
	})
	t.Run("PROXY headers from an untrusted peer", func(t *testing.T) {
		// Not read at all: every one is a malformed request (400), none
		// is answered, whatever address it names.
		for i := range tries {
			code, body := selfRequest(t, addr, "127.0.0.3", viaProxy(fmt.Sprintf("198.51.100.%d", i+1)), "GET", "/api/v1/self", "", "")
			if code != 400 {
				t.Fatalf("PROXY header %d from an untrusted peer: status %d: %s", i, code, brief(body))
			}
		}
	})
	t.Run("one IPv6 /64 through the trusted proxy", func(t *testing.T) {
		tally(t, "rotating a /64", func(i int) (int, string) {
			return selfRequest(t, addr, "127.0.0.1", viaProxy(fmt.Sprintf("2001:db8:1:2:%x::%x", i*7919%65536, i+1)), "GET", "/api/v1/self", "", "")
		}, burst)
		tally(t, "one address per /64", func(i int) (int, string) {
			return selfRequest(t, addr, "127.0.0.1", viaProxy(fmt.Sprintf("2001:db8:1:%x::1", 0x100+i)), "GET", "/api/v1/self", "", "")
		}, tries)
	})
	t.Run("the target itself is limited too", func(t *testing.T) {
		tally(t, "the seen address through the trusted proxy", func(i int) (int, string) {
			code, body := selfRequest(t, addr, "127.0.0.1", viaProxy(attackTarget), "GET", "/api/v1/self", "", "")
			if code == 200 {
				body = strings.ReplaceAll(body, "rustock", "") // its own result
			}
			return code, body
		}, burst)
	})
}

// A forwarder the operator stops trusting (compromised, or moved) is no
// longer believed after SIGHUP: the trust lists reload with the
// configuration, as one transaction.
func TestAttackSelfCheckTrustRevoked(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp"))
	conf := filepath.Join(dir, "takedown.yaml")
	write := func(forwarders string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb: {listen: \"\"}\ndns:\n  listen: []\nlisteners: []\n"+
			"selfcheck:\n  listen: %q\n  trusted_forwarders: [%s]\n", data, addr, forwarders)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.0/24")
	importSeen(t, data, attackTarget)
	srv := startServe(t, addr, "--config", conf)
	// Each check comes from another forwarder address, so that once the
	// forwarders are no longer believed every check has a bucket of its
	// own; while they are, the checks share the target's bucket (10).
	local := 1
	ask := func() (code int, a selfAnswer, own string) {
		t.Helper()
		local++
		own = fmt.Sprintf("127.0.0.%d", local)
		code, body := selfRequest(t, addr, own, nil, "GET", "/api/v1/self", "X-Forwarded-For: "+attackTarget+"\r\n", "")
		if code == 200 && json.Unmarshal([]byte(body), &a) != nil {
			t.Fatalf("not an answer: %s", brief(body))
		}
		return code, a, own
	}
	if code, a, _ := ask(); code != 200 || a.Address != attackTarget || a.Status != "seen" {
		t.Fatalf("from a configured forwarder: status %d, answered for %s (%s); want %s, seen", code, a.Address, a.Status, attackTarget)
	}
	write("")
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reload runs in the background: wait (a bounded number of
	// checks) for its effect, then hold it.
	for i := 0; ; i++ {
		code, a, own := ask()
		if code == 200 && a.Address == own {
			break
		}
		if i == 100 {
			t.Fatalf("after the forwarders were removed and SIGHUP: status %d, answered for %s (%s); the header is still believed", code, a.Address, a.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 5 {
		if code, a, own := ask(); code != 200 || a.Address != own || a.Status == "seen" {
			t.Fatalf("after the reload: status %d, answered for %s (%s); want %s", code, a.Address, a.Status, own)
		}
	}
}

// startDemo runs `takedown demo --headless` on data until the test ends,
// and returns once its listeners are bound (the demo prints its URLs after
// binding). The demo's ports are fixed; a demo another test left running
// makes this one fail to start rather than be attacked by mistake.
func startDemo(t *testing.T, data string) {
	t.Helper()
	var (
		mu  sync.Mutex
		out bytes.Buffer
	)
	logs := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(binary, "--data", data, "demo", "--headless", "--duration", "3m",
			"--bots", "200", "--history-days", "3", "--rate", "5", "--every", "10s")
		cmd.Env = append(os.Environ(), "TAKEDOWN_ACTOR=e2e")
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); pw.Close(); close(exited) }()
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(pr)
			once := sync.Once{}
			for sc.Scan() {
				mu.Lock()
				out.Write(sc.Bytes())
				out.WriteByte('\n')
				mu.Unlock()
				if strings.Contains(sc.Text(), "http://127.0.0.1:8082") {
					once.Do(func() { close(ready) })
				}
			}
			io.Copy(io.Discard, pr)
		}()
		select {
		case <-ready:
			t.Cleanup(func() {
				cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
			if c, err := net.DialTimeout("tcp", "127.0.0.1:8082", 5*time.Second); err != nil {
				t.Fatalf("the demo's self-check does not accept connections: %v\n%s", err, logs())
			} else {
				c.Close()
			}
			return
		case <-exited:
			// The fixed ports may be held by another demo for a while.
			if attempt < 6 && strings.Contains(logs(), "are the demo ports") {
				time.Sleep(10 * time.Second)
				mu.Lock()
				out.Reset()
				mu.Unlock()
				continue
			}
			t.Fatalf("the demo exited before serving:\n%s", logs())
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the demo did not print its URLs within 2 minutes:\n%s", logs())
		}
	}
}
