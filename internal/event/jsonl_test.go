package event

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// jsonlReference is the record as encoding/json makes it: what
// MarshalJSONL must give, byte for byte.
func jsonlReference(e *Event) ([]byte, error) {
	return json.Marshal(record{V: SchemaVersion, Event: e})
}

var trickyStrings = []string{
	"", "a", "rustock", "/gate.php?id=1&x=<2>", `quote " and \ backslash`, "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "héllo wörld", "日本語", "\u2028\u2029", "bad \xff\xfe utf8", "\xc3", "emoji 🦠",
	"</script><script>alert(1)</script>", "a\u0000b", "\xed\xa0\x80 surrogate",
}

// randomEvent fills every field of Event (found by reflection, so a field
// added later is covered too) with a random value, empty about a third of
// the time.
func randomEvent(r *rand.Rand) Event {
	var e Event
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if r.IntN(3) == 0 {
			continue
		}
		switch f.Interface().(type) {
		case string:
			if r.IntN(2) == 0 {
				f.SetString(trickyStrings[r.IntN(len(trickyStrings))])
			} else {
				b := make([]byte, r.IntN(12))
				for j := range b {
					b[j] = byte(r.IntN(256))
				}
				f.SetString(string(b))
			}
		case time.Time:
			zones := []*time.Location{time.UTC, time.FixedZone("CET", 3600), time.FixedZone("odd", -(9*3600 + 30*60 + 15)), time.FixedZone("far", 25*3600)}
			t := time.Unix(r.Int64N(1<<36)-1<<35, r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
			if r.IntN(4) == 0 {
				t = t.Truncate(time.Second)
			}
			f.Set(reflect.ValueOf(t))
		case netip.Addr:
			var a netip.Addr
			switch r.IntN(4) {
			case 0:
				a = netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), 0, byte(r.IntN(256))})
			case 1:
				var b [16]byte
				for j := range b {
					b[j] = byte(r.IntN(3))
				}
				a = netip.AddrFrom16(b)
			case 2:
				a = netip.AddrFrom16(netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(256))}).As16())
			case 3:
				a = netip.MustParseAddr("fe80::1").WithZone(trickyStrings[1+r.IntN(len(trickyStrings)-1)])
			}
			f.Set(reflect.ValueOf(a))
		case float64:
			fs := []float64{0.5, 1, 1e-9, 1e-7, 1e-6, 123456789, 1e21, 1e20, -0.25, 0.1 + 0.2, math.SmallestNonzeroFloat64, math.MaxFloat64, r.Float64(), -r.Float64() * 1e-8}
			f.SetFloat(fs[r.IntN(len(fs))])
		case bool:
			f.SetBool(true)
		case []byte:
			b := make([]byte, r.IntN(20))
			for j := range b {
				b[j] = byte(r.IntN(256))
			}
			f.SetBytes(b)
		default:
			switch f.Kind() {
			case reflect.Int, reflect.Int64:
				f.SetInt(r.Int64N(1<<40) - 1<<39)
			case reflect.Uint16, reflect.Uint32, reflect.Uint64:
				f.SetUint(r.Uint64() >> (64 - f.Type().Bits()))
			default:
				panic("randomEvent: no generator for field " + v.Type().Field(i).Name + " of type " + f.Type().String())
			}
		}
	}
	return e
}

// TestMarshalJSONLAsEncodingJSON: the hand-written encoder gives
// encoding/json's bytes, and its errors, for events with every field set
// or empty, strings that need escapes, odd times, addresses and floats.
func TestMarshalJSONLAsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(20110316, 1))
	for i := range 20000 {
		e := randomEvent(r)
		got, gerr := MarshalJSONL(&e)
		want, werr := jsonlReference(&e)
		if (gerr != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("event %d (%+v):\n got %s (%v)\nwant %s (%v)", i, e, got, gerr, want, werr)
		}
	}
	// Special values that must take encoding/json's way, for its error.
	for _, e := range []Event{
		{ID: "x", Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "x", Timestamp: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "x", Timestamp: time.Now(), Confidence: math.NaN()},
		{ID: "x", Timestamp: time.Now(), Confidence: math.Inf(-1)},
		{ID: "x", Timestamp: time.Now().In(time.FixedZone("x", 24*3600))},
		{},
	} {
		got, gerr := MarshalJSONL(&e)
		want, werr := jsonlReference(&e)
		if (gerr != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Errorf("%+v:\n got %s (%v)\nwant %s (%v)", e, got, gerr, want, werr)
		}
	}
}

// FuzzMarshalJSONL: any event the fuzzer makes encodes as encoding/json
// encodes it.
func FuzzMarshalJSONL(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(20110316), uint64(0))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		e := randomEvent(rand.New(rand.NewPCG(a, b)))
		got, gerr := MarshalJSONL(&e)
		want, werr := jsonlReference(&e)
		if (gerr != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v)\nwant %s (%v)", got, gerr, want, werr)
		}
	})
}

func BenchmarkMarshalJSONL(b *testing.B) {
	e := Event{ID: "3f9c0d6a1b2e4c58-0000000000000001", Timestamp: time.Now().UTC(), Sensor: "sink-1", Listener: "dns:127.0.0.1:53",
		Protocol: "dns", Transport: "udp", SrcIP: netip.MustParseAddr("198.51.100.7"), SrcPort: 53000, SrcASN: 64500, SrcGeo: "DE",
		DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 53, Case: "MS-2011-03", Family: "rustock", Confidence: 0.9,
		QName: "www.d00001.test", QType: "A", RCode: "NOERROR", Matched: "d00001.test", ResponseSize: 76}
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			MarshalJSONL(&e)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for b.Loop() {
			jsonlReference(&e)
		}
	})
}
