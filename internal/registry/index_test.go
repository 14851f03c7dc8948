package registry

import (
	"net/netip"
	"testing"
)

func TestIndex(t *testing.T) {
	set := &ActiveSet{Entries: []Entry{
		{Kind: KindDomain, Value: "evil.com", Case: "a", Family: "rustock"},
		{Kind: KindHost, Value: "www.bad.net", Case: "b"},
		{Kind: KindIP, Value: "93.184.216.34", Prefix: netip.MustParsePrefix("93.184.216.34/32"), Case: "c"},
		{Kind: KindCIDR, Value: "93.184.0.0/16", Prefix: netip.MustParsePrefix("93.184.0.0/16"), Case: "d"},
		{Kind: KindCIDR, Value: "93.184.216.0/24", Prefix: netip.MustParsePrefix("93.184.216.0/24"), Case: "e"},
	}}
	ix := NewIndex(set)
	names := map[string]string{
		"evil.com": "a", "EVIL.com.": "a", "x.y.evil.com": "a", "notevil.com": "", "www.bad.net": "b", "bad.net": "", "a.www.bad.net": "",
	}
	for n, want := range names {
		e, ok := ix.LookupName(n)
		got := ""
		if ok {
			got = e.Case
		}
		if got != want {
			t.Errorf("LookupName(%q) = %q; want %q", n, got, want)
		}
	}
	addrs := map[string]string{
		"93.184.216.34": "c", "::ffff:93.184.216.34": "c", "93.184.216.1": "e", "93.184.1.1": "d", "93.185.0.1": "",
	}
	for a, want := range addrs {
		e, ok := ix.LookupAddr(netip.MustParseAddr(a))
		got := ""
		if ok {
			got = e.Case
		}
		if got != want {
			t.Errorf("LookupAddr(%s) = %q; want %q", a, got, want)
		}
	}
}
