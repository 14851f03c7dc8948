package export

import (
	"sync"
	"testing"

	"github.com/takedown/takedown/internal/registry"
)

// benchSet is the benchmarks' input: 100,000 domains and 10,000 prefixes.
var benchSet = sync.OnceValue(func() *registry.ActiveSet { return SyntheticSet(100_000, 10_000, fixtureAt) })

func benchmarkExport(b *testing.B, name string) {
	set := benchSet()
	e, err := Lookup(name)
	if err != nil {
		b.Fatal(err)
	}
	opt := sinkholeOpts(ActionLocal)
	var w countingWriter
	if err := e.Export(&w, set, opt); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(w.n)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Export(&w, set, opt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExportRPZ(b *testing.B)      { benchmarkExport(b, "rpz") }
func BenchmarkExportHosts(b *testing.B)    { benchmarkExport(b, "hosts") }
func BenchmarkExportDnsmasq(b *testing.B)  { benchmarkExport(b, "dnsmasq") }
func BenchmarkExportUnbound(b *testing.B)  { benchmarkExport(b, "unbound") }
func BenchmarkExportNftables(b *testing.B) { benchmarkExport(b, "nftables") }
func BenchmarkExportSuricata(b *testing.B) { benchmarkExport(b, "suricata") }
func BenchmarkExportSTIX(b *testing.B)     { benchmarkExport(b, "stix") }
func BenchmarkExportCSV(b *testing.B)      { benchmarkExport(b, "csv") }
func BenchmarkExportJSON(b *testing.B)     { benchmarkExport(b, "json") }

func TestSyntheticSet(t *testing.T) {
	set := SyntheticSet(1000, 100, fixtureAt)
	if len(set.Entries) != 1100 {
		t.Fatalf("%d entries, want 1100", len(set.Entries))
	}
	p := planOf(set)
	if len(p.names) != 1000 || len(p.addrs) != 100 || len(p.skipped) != 0 || p.covered != 0 {
		t.Errorf("plan: %d names, %d prefixes, %d skipped, %d covered; want 1000 distinct names and 100 distinct prefixes",
			len(p.names), len(p.addrs), len(p.skipped), p.covered)
	}
	m, err := Measure("rpz", set, sinkholeOpts(ActionLocal), 2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Bytes < 1000*40 || m.Entries != 1100 {
		t.Errorf("Measure = %+v: too small", m)
	}
}
