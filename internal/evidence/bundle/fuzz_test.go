package bundle

import (
	"bytes"
	"testing"

	"github.com/takedown/takedown/internal/evidence"
)

// Fuzz targets for the parsers of a package's own files (the proofs' and
// the checkpoint's are in internal/evidence): a recipient's verifier reads
// them from a directory it does not trust.

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
		if l.shown != (nonce != nil) || (nonce != nil && len(nonce) != evidence.NonceSize) {
			t.Fatalf("line %q: shown %v with nonce %x", s, l.shown, nonce)
		}
	})
}
