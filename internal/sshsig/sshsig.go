// Package sshsig signs and verifies messages in OpenSSH's SSHSIG format
// (PROTOCOL.sshsig, armored "BEGIN SSH SIGNATURE"), so that
// `ssh-keygen -Y verify` checks what it signs with no project code.
//
// It handles Ed25519 keys and SHA-512 only. It is not a general SSH
// library: it knows nothing of allowed_signers files, of principals, or of
// what the signed messages mean; callers choose the namespace.
package sshsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	magic      = "SSHSIG"
	version    = 1
	hashAlg    = "sha512"
	armorBegin = "-----BEGIN SSH SIGNATURE-----"
	armorEnd   = "-----END SSH SIGNATURE-----"
)

// signedData is what an SSHSIG signature covers.
func signedData(namespace string, msg []byte) []byte {
	h := sha512.Sum512(msg)
	return append([]byte(magic), ssh.Marshal(struct {
		Namespace string
		Reserved  string
		HashAlg   string
		Hash      []byte
	}{namespace, "", hashAlg, h[:]})...)
}

type blob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// Sign returns an armored SSH signature of msg by priv in namespace.
func Sign(priv ed25519.PrivateKey, namespace string, msg []byte) ([]byte, error) {
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ssh signer: %w", err)
	}
	sig, err := signer.Sign(rand.Reader, signedData(namespace, msg))
	if err != nil {
		return nil, fmt.Errorf("ssh sign: %w", err)
	}
	raw := append([]byte(magic), ssh.Marshal(blob{
		Version:   version,
		PublicKey: signer.PublicKey().Marshal(),
		Namespace: namespace,
		HashAlg:   hashAlg,
		Signature: ssh.Marshal(sig),
	})...)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString(armorBegin + "\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n" + armorEnd + "\n")
	return []byte(b.String()), nil
}

// Signature is a parsed SSH signature.
type Signature struct {
	PublicKey ed25519.PublicKey // the signer's key, as the signature names it
	Namespace string
	HashAlg   string
	Sig       *ssh.Signature
}

// Parse parses an armored SSH signature made by an Ed25519 key. It does
// not verify it.
func Parse(armored []byte) (Signature, error) {
	s := strings.TrimSpace(string(armored))
	body, ok := strings.CutPrefix(s, armorBegin)
	if !ok {
		return Signature{}, errors.New("ssh signature: missing BEGIN SSH SIGNATURE line")
	}
	body, ok = strings.CutSuffix(body, armorEnd)
	if !ok {
		return Signature{}, errors.New("ssh signature: missing END SSH SIGNATURE line")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		return Signature{}, fmt.Errorf("ssh signature: %w", err)
	}
	rest, ok := bytes.CutPrefix(raw, []byte(magic))
	if !ok {
		return Signature{}, errors.New("ssh signature: bad magic")
	}
	var b blob
	if err := ssh.Unmarshal(rest, &b); err != nil {
		return Signature{}, fmt.Errorf("ssh signature: %w", err)
	}
	if b.Version != version {
		return Signature{}, fmt.Errorf("ssh signature: version %d not supported", b.Version)
	}
	pk, err := ssh.ParsePublicKey(b.PublicKey)
	if err != nil {
		return Signature{}, fmt.Errorf("ssh signature: %w", err)
	}
	ck, ok := pk.(ssh.CryptoPublicKey)
	if !ok {
		return Signature{}, errors.New("ssh signature: not an Ed25519 key")
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return Signature{}, errors.New("ssh signature: not an Ed25519 key")
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(b.Signature, sig); err != nil {
		return Signature{}, fmt.Errorf("ssh signature: %w", err)
	}
	return Signature{PublicKey: pub, Namespace: b.Namespace, HashAlg: b.HashAlg, Sig: sig}, nil
}

// Verify checks an armored SSH signature of msg by trusted in namespace.
func Verify(trusted ed25519.PublicKey, namespace string, msg, armored []byte) error {
	s, err := Parse(armored)
	if err != nil {
		return err
	}
	if !s.PublicKey.Equal(trusted) {
		return fmt.Errorf("ssh signature: made by key %s, not the trusted key %s", Fingerprint(s.PublicKey), Fingerprint(trusted))
	}
	if s.Namespace != namespace {
		return fmt.Errorf("ssh signature: namespace %q, want %q", s.Namespace, namespace)
	}
	if s.HashAlg != hashAlg {
		return fmt.Errorf("ssh signature: hash %q, want %q", s.HashAlg, hashAlg)
	}
	sp, err := ssh.NewPublicKey(trusted)
	if err != nil {
		return err
	}
	if err := sp.Verify(signedData(namespace, msg), s.Sig); err != nil {
		return fmt.Errorf("ssh signature: does not verify: %w", err)
	}
	return nil
}

// Fingerprint returns the OpenSSH SHA256 fingerprint ("SHA256:…") of pub,
// as `ssh-keygen -l` prints it.
func Fingerprint(pub ed25519.PublicKey) string {
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "invalid key"
	}
	return ssh.FingerprintSHA256(sp)
}
