package evidence

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// Fuzz targets for every parser of a package's files: a recipient's
// verifier reads them from a directory it does not trust.

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

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  README.md\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  checkpoints/00000000000000000001.txt\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		for name := range m {
			if name == "" || name[0] == '/' || bytes.Contains([]byte(name), []byte("..")) && (name == ".." || bytes.HasPrefix([]byte(name), []byte("../"))) {
				t.Fatalf("manifest accepted path %q", name)
			}
		}
	})
}

func FuzzParseLeafLine(f *testing.F) {
	f.Add("27\t745d94ff4f60815291de3c82b9de2081\t9a7805646600da0c996c28655fecece37e97c48c710c7e05c0d2d50659c5ec11")
	f.Add("29\t-\t639de1860215d7d630cd928b5eb4c62bdbac999d9f0ce79425c0d843d2a8204c")
	f.Fuzz(func(t *testing.T, s string) {
		l, nonce, err := ParseLeafLine(s)
		if err != nil {
			return
		}
		if l.shown != (nonce != nil) || (nonce != nil && len(nonce) != NonceSize) {
			t.Fatalf("line %q: shown %v with nonce %x", s, l.shown, nonce)
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
