package sshsig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/takedown/takedown/internal/testtool"
)

func testKey(tb testing.TB, b byte) ed25519.PrivateKey {
	tb.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestSignVerify: a signature verifies for its key, namespace and message
// only.
func TestSignVerify(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	msg := []byte("e3b0c442  README.md\n")
	sig, err := Sign(k, "takedown-test", msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub(k), "takedown-test", msg, sig); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	flipped := bytes.Clone(sig)
	flipped[len(armorBegin)+20] ^= 0x01
	for name, tc := range map[string]struct {
		key     ed25519.PublicKey
		ns      string
		msg     []byte
		sig     []byte
		errHave string
	}{
		"another key":       {pub(other), "takedown-test", msg, sig, "not the trusted key"},
		"another namespace": {pub(k), "file", msg, sig, "namespace"},
		"changed message":   {pub(k), "takedown-test", append(bytes.Clone(msg), 'x'), sig, "does not verify"},
		"armour damaged":    {pub(k), "takedown-test", msg, flipped, "ssh signature"},
		"no armour":         {pub(k), "takedown-test", msg, []byte("AAAA\n"), "BEGIN SSH SIGNATURE"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Verify(tc.key, tc.ns, tc.msg, tc.sig)
			if err == nil || !strings.Contains(err.Error(), tc.errHave) {
				t.Fatalf("Verify: %v, want an error with %q", err, tc.errHave)
			}
		})
	}
}

// TestSSHKeygen: ssh-keygen -Y verify accepts what Sign makes, and Verify
// accepts what ssh-keygen -Y sign makes.
func TestSSHKeygen(t *testing.T) {
	keygen := testtool.Need(t, "ssh-keygen", "openssh-client")
	k := testKey(t, 3)
	sp, err := ssh.NewPublicKey(pub(k))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed_signers")
	line := "signer@test namespaces=\"takedown-test\" " + string(ssh.MarshalAuthorizedKey(sp))
	if err := os.WriteFile(allowed, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := []byte("a message\nof two lines\n")
	msgFile := filepath.Join(dir, "msg")
	if err := os.WriteFile(msgFile, msg, 0o644); err != nil {
		t.Fatal(err)
	}

	sig, err := Sign(k, "takedown-test", msg)
	if err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "ours.sig")
	if err := os.WriteFile(sigFile, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(ns string) ([]byte, error) {
		cmd := exec.CommandContext(t.Context(), keygen, "-Y", "verify", "-f", allowed, "-I", "signer@test", "-n", ns, "-s", sigFile)
		cmd.Stdin = bytes.NewReader(msg)
		return cmd.CombinedOutput()
	}
	if out, err := verify("takedown-test"); err != nil {
		t.Fatalf("ssh-keygen -Y verify of our signature: %v\n%s", err, out)
	}
	if out, err := verify("other"); err == nil {
		t.Fatalf("ssh-keygen -Y verify accepted another namespace:\n%s", out)
	}

	blk, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), keygen, "-Y", "sign", "-f", keyFile, "-n", "takedown-test", msgFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	theirs, err := os.ReadFile(msgFile + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub(k), "takedown-test", msg, theirs); err != nil {
		t.Fatalf("Verify of ssh-keygen's signature: %v", err)
	}
}

// TestFingerprint: the fingerprint is the one ssh-keygen -l prints.
func TestFingerprint(t *testing.T) {
	keygen := testtool.Need(t, "ssh-keygen", "openssh-client")
	k := testKey(t, 4)
	sp, err := ssh.NewPublicKey(pub(k))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(p, ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), keygen, "-l", "-f", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(pub(k))
	if !strings.HasPrefix(fp, "SHA256:") || !strings.Contains(string(out), fp) {
		t.Fatalf("ssh-keygen -l says %q, Fingerprint %q", out, fp)
	}
}

func FuzzParseSSHSig(f *testing.F) {
	k := testKey(f, 3)
	sig, err := Sign(k, "takedown-evidence", []byte("manifest\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := Verify(pub(k), "takedown-evidence", []byte("manifest\n"), b); err == nil && !bytes.Equal(b, sig) {
			// Ed25519 signatures are deterministic; only armour whitespace may differ.
			if _, perr := Parse(b); perr != nil {
				t.Fatal("verified a signature that does not parse")
			}
		}
	})
}
