package stats

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
)

// 64-bit bitmaps round-trip in both kinds; random hashes take the gaps
// kind and far fewer bytes than Roaring; clustered values keep Roaring;
// version-1 blobs (no kind byte) still decode.
func TestEncode64(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 4))
	random, clustered := roaring64.New(), roaring64.New()
	for range 20000 {
		random.Add(rng.Uint64())
		clustered.Add(0x2001_0db8_0000_0000 | uint64(rng.IntN(30000)))
	}
	for _, tc := range []struct {
		name string
		m    *roaring64.Bitmap
		kind byte
	}{
		{"random", random, kindGaps64},
		{"clustered", clustered, kindRoaring64},
		{"empty", roaring64.New(), kindGaps64},
		{"one", roaring64.BitmapOf(1 << 63), kindGaps64},
	} {
		b, err := append64(nil, tc.m)
		if err != nil {
			t.Fatal(err)
		}
		r := &decoder{b: b, version: encVersion}
		p, err := r.bytes()
		if err != nil || len(r.b) != 0 {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p[0] != tc.kind {
			t.Errorf("%s: kind %d, want %d", tc.name, p[0], tc.kind)
		}
		got, err := decode64(p, encVersion)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !got.Equals(tc.m) {
			t.Errorf("%s: round trip differs (%d values, want %d)", tc.name, got.GetCardinality(), tc.m.GetCardinality())
		}
		rb, _ := tc.m.ToBytes()
		if tc.name == "random" && len(p)*2 > len(rb) {
			t.Errorf("random: %d bytes, Roaring %d: want less than half", len(p), len(rb))
		}
		// Version 1: the portable encoding alone.
		old, err := decode64(rb, 1)
		if err != nil || !old.Equals(tc.m) {
			t.Errorf("%s: version 1 blob: %v", tc.name, err)
		}
	}
	// Gaps that go backwards, overflow or run short are refused.
	for _, bad := range [][]byte{
		{kindGaps64, 2, 5, 0},
		{kindGaps64, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{kindGaps64, 3, 1, 1},
		{kindGaps64, 200, 1},
		{7, 0},
		{},
	} {
		if _, err := decode64(bad, encVersion); err == nil {
			t.Errorf("% x decoded", bad)
		}
	}
	// A day encoded by version 1 (the portable encodings, version byte 1)
	// still decodes.
	d := sampleDay()
	var v1 bytes.Buffer
	v1.WriteByte(1)
	for _, s := range d.sets() {
		v4, _ := s.V4.ToBytes()
		v6, _ := s.V6.ToBytes()
		v1.Write(appendBytes(appendBytes(nil, v4), v6))
	}
	v1.WriteByte(1)
	ids, _ := d.BotIDs["c1"].ToBytes()
	v1.Write(appendBytes(appendBytes(nil, []byte("c1")), ids))
	got := newDay(d.Day)
	if err := got.decodeOverall(v1.Bytes()); err != nil {
		t.Fatal(err)
	}
	if got.All.Len() != d.All.Len() || got.BotIDs["c1"].GetCardinality() != 2 {
		t.Errorf("version 1 day: all %d ids %d", got.All.Len(), got.BotIDs["c1"].GetCardinality())
	}
}
