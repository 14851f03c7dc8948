package stats

import (
	"net/netip"
	"testing"
)

func sampleDay() *Day {
	d := newDay(86400 * 15000)
	d.addDirect(netip.MustParseAddr("198.51.100.1"), "kelihos", [4]string{"US", "64500", "kelihos", "c1"}, []string{"bot-1", "bot-2"})
	d.addDirect(netip.MustParseAddr("2001:db8::1"), "rustock", [4]string{"DE", "3320", "rustock", "c1"}, nil)
	d.Resolvers.Add(netip.MustParseAddr("192.0.2.53"))
	d.finish()
	return d
}

func TestDayEncodingRoundTrip(t *testing.T) {
	d := sampleDay()
	d.optimize()
	overall, err := d.EncodeOverall()
	if err != nil {
		t.Fatal(err)
	}
	got := newDay(d.Day)
	if err := got.decodeOverall(overall); err != nil {
		t.Fatal(err)
	}
	if got.All.Len() != 2 || got.Resolvers.Len() != 1 || got.IDAddrs.Len() != 1 || got.BotIDs["c1"].GetCardinality() != 2 {
		t.Errorf("overall: all %d resolvers %d id %d", got.All.Len(), got.Resolvers.Len(), got.IDAddrs.Len())
	}
	for _, dim := range Dims {
		b, err := d.EncodeDim(dim)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.decodeDim(dim, b); err != nil {
			t.Fatal(err)
		}
		if len(got.By[dim]) != len(d.By[dim]) {
			t.Errorf("%s: %d keys, want %d", dim, len(got.By[dim]), len(d.By[dim]))
		}
		for k, s := range d.By[dim] {
			if got.By[dim][k].Len() != s.Len() {
				t.Errorf("%s %s: %d, want %d", dim, k, got.By[dim][k].Len(), s.Len())
			}
		}
	}
	// Truncations are errors, never panics or silent partial days.
	for i := range overall {
		if err := newDay(0).decodeOverall(overall[:i]); err == nil {
			t.Fatalf("truncated overall part (%d of %d bytes) decoded", i, len(overall))
		}
	}
}

// FuzzDecodeDay feeds arbitrary bytes to the cache decoders: a corrupt
// cache row must be an error (the day is rebuilt), never a panic.
func FuzzDecodeDay(f *testing.F) {
	d := sampleDay()
	o, _ := d.EncodeOverall()
	c, _ := d.EncodeDim(ByCountry)
	f.Add(o)
	f.Add(c)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = newDay(0).decodeOverall(b)
		_ = newDay(0).decodeDim(ByCountry, b)
	})
}
