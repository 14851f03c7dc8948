package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/proxyproto"
	"github.com/takedown/takedown/internal/testtool"
)

// selfAnswer is the part of /api/v1/self the test reads.
type selfAnswer struct {
	Address  string `json:"address"`
	Status   string `json:"status"`
	Infected bool   `json:"infected"`
	Families []struct {
		Family    string `json:"family"`
		FirstSeen string `json:"first_seen"`
		LastSeen  string `json:"last_seen"`
		DaysSeen  int    `json:"days_seen"`
		Cleanup   *struct {
			Name  string `json:"name"`
			Tools []struct {
				Name string `json:"name"`
				URL  string `json:"url"`
			} `json:"tools"`
		} `json:"cleanup"`
	} `json:"families"`
}

// selfRequest opens a connection to addr from local (a loopback address),
// writes prefix (a PROXY header or nothing) and one HTTP request, and
// returns the status and body.
func selfRequest(t *testing.T, addr, local string, prefix []byte, method, target, header, body string) (int, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: selfcheck.example\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n%s", method, target, header, len(body), body)
	if _, err := c.Write(append(prefix, req...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", method, target, local, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Cache-Control") != "no-store" && resp.StatusCode == 200 {
		t.Errorf("%s: Cache-Control %q", target, resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, string(b)
}

func viaProxy(client string) []byte {
	return proxyproto.AppendV2(nil, proxyproto.Header{Version: 2, Command: proxyproto.CmdProxy, Transport: proxyproto.TransportTCP,
		Src: netip.AddrPortFrom(netip.MustParseAddr(client), 51000), Dst: netip.MustParseAddrPort("127.0.0.1:8082")})
}

// The whole binary: events for two addresses are imported; through a
// trusted PROXY v2 header each address sees its own families and dates, a
// third sees "not seen"; nothing else a visitor sends (query strings,
// X-Forwarded-For from an untrusted peer, JSON bodies, a PROXY header from
// an untrusted peer) makes it answer for another address.
func TestSelfCheck(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	port := testtool.FreePort(t, "tcp")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "takedown.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("data: %s\nweb: {listen: \"\"}\ndns:\n  listen: []\nlisteners: []\n"+
		"selfcheck:\n  listen: %q\n  trusted_proxy: [127.0.0.1]\n", data, addr)), 0o644); err != nil {
		t.Fatal(err)
	}

	const (
		first  = "198.51.100.23"  // rustock, three days, one of them also DNS
		second = "2001:db8:77::5" // kelihos over TCP today, and an unclassified UDP beacon
		third  = "203.0.113.99"   // never seen
	)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	at := func(daysAgo int, hour int) string {
		return today.AddDate(0, 0, -daysAgo).Add(time.Duration(hour) * time.Hour).Format(time.RFC3339)
	}
	day := func(daysAgo int) string { return today.AddDate(0, 0, -daysAgo).Format(time.DateOnly) }
	lines := []string{
		fmt.Sprintf(`{"v":1,"id":"sc-1","timestamp":%q,"protocol":"http","src_ip":%q,"family":"rustock"}`, at(30, 1), first), // outside 14 days
		fmt.Sprintf(`{"v":1,"id":"sc-2","timestamp":%q,"protocol":"http","src_ip":%q,"family":"rustock"}`, at(10, 1), first),
		fmt.Sprintf(`{"v":1,"id":"sc-3","timestamp":%q,"protocol":"https","src_ip":%q,"family":"rustock"}`, at(4, 2), first),
		fmt.Sprintf(`{"v":1,"id":"sc-4","timestamp":%q,"protocol":"dns","src_ip":%q,"family":"rustock","qname":"x.example","qtype":"A"}`, at(4, 3), first),
		fmt.Sprintf(`{"v":1,"id":"sc-5","timestamp":%q,"protocol":"http","src_ip":%q,"family":"rustock"}`, at(1, 0), first),
		fmt.Sprintf(`{"v":1,"id":"sc-6","timestamp":%q,"protocol":"tcp","src_ip":%q,"family":"kelihos"}`, at(0, 0), second),
		fmt.Sprintf(`{"v":1,"id":"sc-7","timestamp":%q,"protocol":"udp","src_ip":%q}`, at(2, 5), second),
	}
	events := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(events, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "--data", data, "events", "import", "--format", "jsonl", events)

	srv := startServe(t, addr, "--config", conf)

	answer := func(t *testing.T, local string, prefix []byte, method, target, header, body string) selfAnswer {
		t.Helper()
		code, b := selfRequest(t, addr, local, prefix, method, target, header, body)
		if code != 200 {
			t.Fatalf("%s %s: status %d: %s\nserver log:\n%s", method, target, code, b, srv.logs)
		}
		var a selfAnswer
		if err := json.Unmarshal([]byte(b), &a); err != nil {
			t.Fatalf("%s: %v\n%s", target, err, b)
		}
		return a
	}
	fams := func(a selfAnswer) string {
		var s []string
		for _, f := range a.Families {
			s = append(s, fmt.Sprintf("%s %s..%s/%d", f.Family, f.FirstSeen, f.LastSeen, f.DaysSeen))
		}
		return strings.Join(s, "; ")
	}

	t.Run("each address its own", func(t *testing.T) {
		for _, tc := range []struct {
			client, status, families string
		}{
			{first, "seen", fmt.Sprintf("rustock %s..%s/3", day(10), day(1))},
			{second, "seen", fmt.Sprintf("kelihos %s..%s/1; unknown %s..%s/1", day(0), day(0), day(2), day(2))},
			{third, "not_seen", ""},
		} {
			a := answer(t, "127.0.0.1", viaProxy(tc.client), "GET", "/api/v1/self", "", "")
			if a.Address != tc.client || a.Status != tc.status || fams(a) != tc.families {
				t.Errorf("via PROXY from %s: address %s, status %s, families %q; want %s, %q", tc.client, a.Address, a.Status, fams(a), tc.status, tc.families)
			}
			if tc.client == first && (a.Families[0].Cleanup == nil || a.Families[0].Cleanup.Name != "Rustock" || len(a.Families[0].Cleanup.Tools) == 0) {
				t.Errorf("no clean-up advice for rustock: %+v", a.Families[0].Cleanup)
			}
		}
	})

	t.Run("nothing else chooses the address", func(t *testing.T) {
		// The untrusted peer 127.0.0.2 (not in trusted_proxy) names first
		// every way it can; the answer is about 127.0.0.2.
		names := "X-Forwarded-For: " + first + "\r\nX-Real-IP: " + first + "\r\nForwarded: for=" + first + "\r\nTrue-Client-IP: " + first + "\r\nCookie: ip=" + first + "\r\n"
		for _, tc := range []struct{ name, method, target, header, body string }{
			{"query string", "GET", "/api/v1/self?ip=" + first + "&address=" + first, "", ""},
			{"headers", "GET", "/api/v1/self", names, ""},
			{"json body", "GET", "/api/v1/self", "Content-Type: application/json\r\n", `{"ip":"` + first + `","address":"` + first + `"}`},
		} {
			a := answer(t, "127.0.0.2", nil, tc.method, tc.target, tc.header, tc.body)
			if a.Address != "127.0.0.2" || a.Status != "not_seen" {
				t.Errorf("%s from an untrusted peer: answer for %s, %s", tc.name, a.Address, a.Status)
			}
		}
		// Through the trusted proxy, as third, naming first.
		a := answer(t, "127.0.0.1", viaProxy(third), "GET", "/api/v1/self?ip="+first, names, "")
		if a.Address != third || a.Status != "not_seen" {
			t.Errorf("third naming first through the proxy: answer for %s, %s", a.Address, a.Status)
		}
		// A JSON POST is refused, and a PROXY header from an untrusted
		// peer is not read (the request is malformed).
		if code, b := selfRequest(t, addr, "127.0.0.1", viaProxy(third), "POST", "/api/v1/self", "Content-Type: application/json\r\n", `{"ip":"`+first+`"}`); code != 405 || strings.Contains(b, first) {
			t.Errorf("POST: %d %s", code, b)
		}
		if code, b := selfRequest(t, addr, "127.0.0.2", viaProxy(first), "GET", "/api/v1/self", "", ""); code != 400 || strings.Contains(b, "rustock") {
			t.Errorf("PROXY header from an untrusted peer: %d %s", code, b)
		}
	})

	t.Run("page", func(t *testing.T) {
		code, b := selfRequest(t, addr, "127.0.0.1", viaProxy(first), "GET", "/", "Accept-Language: en-GB,en;q=0.8\r\n", "")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		for _, want := range []string{first, "Rustock", day(10), day(1), "Microsoft Safety Scanner", "may be shared"} {
			if !strings.Contains(b, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(b, "<script") {
			t.Error("the page has a script")
		}
	})
}
