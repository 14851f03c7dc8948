package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/config"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/testtool"
)

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// freePort returns a loopback port free on TCP and UDP a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testtool.FreeBothPort(t))
}

// bindable checks that addr can be bound again on TCP (and UDP).
func bindable(t *testing.T, addr string, udp bool) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("tcp %s is still bound: %v", addr, err)
	} else {
		l.Close()
	}
	if udp {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Errorf("udp %s is still bound: %v", addr, err)
		} else {
			pc.Close()
		}
	}
}

type noLookups struct{}

func (noLookups) Lookup(context.Context, netip.Addr, time.Time, time.Time) ([]store.DayIP, error) {
	return nil, nil
}

// New acquires every component in turn; when the Nth fails, everything
// acquired before it is released: no socket or file stays open and every
// port can be bound again. Close releases a whole App that never ran.
func TestNewReleasesOnFailure(t *testing.T) {
	dir, db, es := testStores(t)

	ports := map[string]string{}
	for _, k := range []string{"http", "tcp", "dns", "web", "metrics", "selfcheck", "taken"} {
		ports[k] = freePort(t)
	}
	taken, err := net.Listen("tcp", ports["taken"])
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	badRules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(badRules, []byte("rules:\n  - family: x\n    colour: blue\n"), 0o644)
	notGeo := filepath.Join(t.TempDir(), "country.mmdb")
	os.WriteFile(notGeo, []byte("not a database"), 0o644)
	evidenceIsAFile := t.TempDir()
	os.WriteFile(filepath.Join(evidenceIsAFile, "evidence"), nil, 0o644)

	base := func() *config.Config {
		c := config.Default()
		c.Data = dir
		c.Evidence.Enabled = true
		c.Listeners = []config.Listener{{Kind: "http", Listen: ports["http"]}, {Kind: "tcp", Listen: ports["tcp"]}}
		c.DNS.Listen = []string{ports["dns"]}
		c.Web.MetricsListen = ports["metrics"]
		c.SelfCheck.Listen = ports["selfcheck"]
		return c
	}
	newApp := func(c *config.Config) (*App, error) {
		return New(t.Context(), Options{Config: c, Registry: db, Events: es, Registerer: prometheus.NewRegistry(),
			Web: &WebOptions{Listen: ports["web"]}, SelfCheck: noLookups{}, Notify: &NotifyStores{}})
	}
	checkReleased := func(t *testing.T, before int) {
		t.Helper()
		if after := openFDs(t); after != before {
			t.Errorf("%d file descriptors open after New, %d before", after, before)
		}
		bindable(t, ports["http"], false)
		bindable(t, ports["tcp"], false)
		bindable(t, ports["dns"], true)
		bindable(t, ports["web"], false)
		bindable(t, ports["metrics"], false)
		bindable(t, ports["selfcheck"], false)
	}

	// Once whole, to open what the process keeps (the poller, the
	// store's files) before counting; Close releases every component.
	for i := range 2 {
		before := openFDs(t)
		a, err := newApp(base())
		if err != nil {
			t.Fatal(err)
		}
		if a.evidence == nil || a.dns == nil || a.web == nil || a.selfcheck == nil || len(a.conns) != 2 {
			t.Fatal("test is wrong: a component is not enabled")
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
		if i == 1 {
			checkReleased(t, before)
		}
	}

	for _, tc := range []struct {
		name  string
		edit  func(c *config.Config)
		error string
	}{
		{"geo", func(c *config.Config) { c.Geo.Country = notGeo }, "geo"},
		{"rules", func(c *config.Config) { c.Pipeline.Rules = badRules }, "pipeline.rules"},
		{"evidence", func(c *config.Config) { c.Data = evidenceIsAFile }, "evidence"},
		{"second listener", func(c *config.Config) { c.Listeners[1].Listen = ports["taken"] }, "listeners[1]"},
		{"dns", func(c *config.Config) { c.DNS.Listen = []string{ports["dns"], ports["taken"]} }, "dns"},
		{"web metrics", func(c *config.Config) { c.Web.MetricsListen = ports["taken"] }, "web.metrics_listen"},
		{"selfcheck", func(c *config.Config) { c.SelfCheck.Listen = ports["taken"] }, "selfcheck"},
		{"notify", func(c *config.Config) {
			c.Notify.Enabled = true
			c.Notify.SMTP.PasswordFile = filepath.Join(dir, "no-such-password")
		}, "notify.smtp.password_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(c)
			before := openFDs(t)
			a, err := newApp(c)
			if err == nil {
				a.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.error) {
				t.Fatalf("New: %v; want an error about %s", err, tc.error)
			}
			checkReleased(t, before)
		})
	}
}
