package export

import (
	"bufio"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/testtool"
)

// consumerSets are the sets every consumer must accept: the fixture and an
// empty set (a day with no order in force must still load).
func consumerSets(tb testing.TB) map[string]*registry.ActiveSet {
	tb.Helper()
	return map[string]*registry.ActiveSet{"fixture": fixture(tb), "empty": newSet(fixtureAt, 7, nil)}
}

// writeExport writes one export into dir and returns its path.
func writeExport(tb testing.TB, dir, format string, set *registry.ActiveSet, opt Options) string {
	tb.Helper()
	path := filepath.Join(dir, format+".export")
	if err := os.WriteFile(path, []byte(exportString(tb, format, set, opt)), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// runTool runs a consumer and returns its combined output and error.
func runTool(tb testing.TB, prog string, args ...string) (string, error) {
	tb.Helper()
	out, err := exec.CommandContext(tb.Context(), prog, args...).CombinedOutput()
	return string(out), err
}

func TestRPZLoadsInNamedCheckzone(t *testing.T) {
	checkzone := testtool.Need(t, "named-checkzone", "bind9-utils")
	for setName, set := range consumerSets(t) {
		for _, action := range []string{ActionLocal, ActionNXDOMAIN} {
			t.Run(setName+"/"+action, func(t *testing.T) {
				path := writeExport(t, t.TempDir(), "rpz", set, sinkholeOpts(action))
				out, err := runTool(t, checkzone, "-i", "full", DefaultOrigin, path)
				if err != nil {
					t.Fatalf("named-checkzone rejected the RPZ: %v\n%s", err, out)
				}
				if want := "loaded serial " + itoa(int(set.Serial)); !strings.Contains(out, want) {
					t.Errorf("named-checkzone output lacks %q:\n%s", want, out)
				}
			})
		}
	}
}

func TestUnboundAcceptsLocalZones(t *testing.T) {
	checkconf := testtool.Need(t, "unbound-checkconf", "unbound")
	for setName, set := range consumerSets(t) {
		for _, action := range []string{ActionLocal, ActionNXDOMAIN} {
			t.Run(setName+"/"+action, func(t *testing.T) {
				dir := t.TempDir()
				path := writeExport(t, dir, "unbound", set, sinkholeOpts(action))
				conf := filepath.Join(dir, "unbound.conf")
				writeFile(t, conf, "server:\n\tusername: \"\"\n\tchroot: \"\"\n\tdirectory: \""+dir+"\"\n\tinclude: \""+path+"\"\n")
				if out, err := runTool(t, checkconf, conf); err != nil {
					t.Fatalf("unbound-checkconf rejected the export: %v\n%s", err, out)
				}
			})
		}
	}
}

func TestDnsmasqAcceptsConfig(t *testing.T) {
	dnsmasq := testtool.Need(t, "dnsmasq", "dnsmasq-base")
	for setName, set := range consumerSets(t) {
		for _, action := range []string{ActionLocal, ActionNXDOMAIN} {
			t.Run(setName+"/"+action, func(t *testing.T) {
				path := writeExport(t, t.TempDir(), "dnsmasq", set, sinkholeOpts(action))
				out, err := runTool(t, dnsmasq, "--test", "--conf-file="+path)
				if err != nil || !strings.Contains(out, "syntax check OK") {
					t.Fatalf("dnsmasq --test rejected the export: %v\n%s", err, out)
				}
			})
		}
	}
	t.Run("AAAA-only sinkhole", func(t *testing.T) {
		path := writeExport(t, t.TempDir(), "dnsmasq", fixture(t), Options{SinkholeAAAA: netip.MustParseAddr("2001:db8::53")})
		if out, err := runTool(t, dnsmasq, "--test", "--conf-file="+path); err != nil {
			t.Fatalf("dnsmasq --test rejected the export: %v\n%s", err, out)
		}
	})
}

func TestNftablesAcceptsRuleset(t *testing.T) {
	nft := testtool.Need(t, "nft", "nftables")
	for setName, set := range consumerSets(t) {
		t.Run(setName, func(t *testing.T) {
			path := writeExport(t, t.TempDir(), "nftables", set, Options{})
			out, err := runTool(t, nft, "-c", "-f", path)
			if err == nil {
				return
			}
			if strings.Contains(out, "Operation not permitted") || strings.Contains(out, "netlink") {
				// nft -c needs CAP_NET_ADMIN for the kernel's cache; say so
				// and check what can be checked without it.
				t.Logf("nft -c refused by the sandbox (%s): checking the sets' elements in Go instead", strings.TrimSpace(out))
				checkNftElements(t, path)
				return
			}
			t.Fatalf("nft -c rejected the ruleset: %v\n%s", err, out)
		})
	}
}

// checkNftElements is the fallback when nft cannot run: every element
// parses, is in the right set and overlaps no other.
func checkNftElements(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var set string
	var seen []netip.Prefix
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "set "); ok {
			set = strings.TrimSuffix(name, " {")
			continue
		}
		if line == "" || strings.ContainsAny(line, "{}=#;@") || strings.Contains(line, " ") {
			continue
		}
		s := strings.TrimSuffix(line, ",")
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				tb.Fatalf("element %q: %v", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4() != (set == "seized_v4") {
			tb.Errorf("element %s in set %s", p, set)
		}
		for _, q := range seen {
			if q.Overlaps(p) {
				tb.Errorf("elements %s and %s overlap", q, p)
			}
		}
		seen = append(seen, p)
	}
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
