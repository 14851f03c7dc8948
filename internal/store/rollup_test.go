package store

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestRollupFold(t *testing.T) {
	ip1, ip2, ip3 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::3")
	// ip1 is new (inserted); ip2 existed with DNS only and now connects
	// directly; ip3 is new but arrives through the upsert, resolver only.
	fresh := Delta{Key: DayKey{Day: 86400, IP: ip1, Family: "f"}, Case: "c", Country: "DE", ASN: 64500, Hits: 3, Protocols: ProtoHTTP}
	upserts := []Delta{
		{Key: DayKey{Day: 86400, IP: ip2, Family: "f"}, Case: "c", Country: "DE", ASN: 64500, Hits: 2, Protocols: ProtoHTTP, BotIDs: []string{"b2"}},
		{Key: DayKey{Day: 0, IP: ip3, Family: "f"}, Case: "c", Country: "NL", ASN: 64501, Hits: 1, Protocols: ProtoDNS, BotIDs: []string{"b3"}},
	}
	f := NewRollupFold()
	f.Inserted(&fresh)
	f.Expect(upserts)
	rows := []UpsertedRow{
		{Day: 86400, IP: ip2.AsSlice(), Family: "f", Case: "c", Country: "DE", ASN: 64500, Before: ProtoDNS, After: ProtoDNS | ProtoHTTP, BotIDs: "b1"},
		{Day: 0, IP: ip3.AsSlice(), Family: "f", Case: "c", Country: "NL", ASN: 64501, Before: 0, After: ProtoDNS},
	}
	for _, r := range rows {
		if err := f.Upserted(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Upserted(UpsertedRow{Day: 86400, IP: ip3.AsSlice(), Family: "f"}); err == nil {
		t.Error("a row matching no expected delta was folded in")
	}
	want := []RollupDelta{
		{Key: RollupKey{Day: 0, Country: "NL", ASN: 64501, Family: "f", Case: "c"}, IPs: 0, ResolverIPs: 1, Hits: 1},
		{Key: RollupKey{Day: 86400, Country: "DE", ASN: 64500, Family: "f", Case: "c"}, IPs: 2, ResolverIPs: -1, Hits: 5},
	}
	if got := f.Rollups(); !reflect.DeepEqual(got, want) {
		t.Errorf("Rollups() =\n%+v\nwant\n%+v", got, want)
	}
	// Only the existing row whose list grew needs its bot ids written.
	wantBots := []BotIDsUpdate{{Day: 86400, IP: ip2.AsSlice(), Family: "f", IDs: "b1\nb2"}}
	if got := f.BotIDUpdates(); !reflect.DeepEqual(got, wantBots) {
		t.Errorf("BotIDUpdates() = %+v, want %+v", got, wantBots)
	}
}
