package evidence

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// Fuzz targets for the parsers of the proof, checkpoint and key formats: a
// recipient's verifier (internal/evidence/bundle) reads them from a
// directory it does not trust.

func fuzzKey(tb testing.TB) *Key {
	tb.Helper()
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	return &Key{Name: "fuzz.example/log", priv: ed25519.NewKeyFromSeed(seed)}
}

func FuzzOpenCheckpoint(f *testing.F) {
	k := fuzzKey(f)
	c, err := signCheckpoint(k, 42, LeafHash(make([]byte, NonceSize), []byte("x")))
	must(f, err)
	f.Add(c.Note)
	f.Add([]byte("fuzz.example/log\n1\nAAAA\n\n— fuzz.example/log AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := OpenCheckpoint(b, k.Public())
		if err != nil {
			return
		}
		// Whatever verifies must say what its signed text says.
		if !bytes.HasPrefix(b, []byte(checkpointText(c.Origin, c.Size, c.Root))) {
			t.Fatalf("verified checkpoint %+v does not start with its text", c)
		}
	})
}

func FuzzParseRangeProof(f *testing.F) {
	f.Add(RangeProof{Size: 10, Lo: 2, Hi: 5, Nodes: []Node{{0, 2, LeafHash(nil, []byte("a"))}, {8, 2, LeafHash(nil, []byte("b"))}}}.Marshal())
	f.Add([]byte(rangeProofHeader + "\nsize 1\nrange 0 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseRangeProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("range proof does not round-trip:\n%q\n%q", b, p.Marshal())
		}
		if p.Hi > p.Lo && p.Hi-p.Lo < 1<<12 {
			p.Root(make([]tlog.Hash, p.Hi-p.Lo)) // must not panic
		}
	})
}

func FuzzParseConsistencyProof(f *testing.F) {
	f.Add(ConsistencyProof{Old: 3, New: 7, Proof: []tlog.Hash{LeafHash(nil, nil)}}.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseConsistencyProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("consistency proof does not round-trip: %q", b)
		}
		p.Verify(tlog.Hash{}, tlog.Hash{}) // must not panic
	})
}

func FuzzParseInclusionProof(f *testing.F) {
	k := fuzzKey(f)
	c, err := signCheckpoint(k, 5, LeafHash(nil, nil))
	must(f, err)
	f.Add(InclusionProof{Extra: make([]byte, NonceSize), Index: 4, Proof: []tlog.Hash{{1}, {2}}, Checkpoint: c.Note}.Marshal())
	f.Add(InclusionProof{Index: 0, Checkpoint: c.Note}.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseInclusionProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("tlog-proof does not round-trip: %q", b)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k := fuzzKey(f)
	f.Add([]byte(k.SSHPublicKey()))
	f.Add([]byte(k.VerifierKey()))
	f.Add([]byte(Principal + ` namespaces="x" ` + k.SSHPublicKey()))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := ParsePublicKey(b)
		if err == nil && len(pub) != ed25519.PublicKeySize {
			t.Fatalf("parsed a %d-byte key", len(pub))
		}
	})
}
