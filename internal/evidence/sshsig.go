package evidence

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

// SSH signatures in the format of OpenSSH's PROTOCOL.sshsig, so that
// `ssh-keygen -Y verify` checks an evidence manifest with no project code.

// Namespace is the SSHSIG namespace of evidence manifest signatures.
const Namespace = "takedown-evidence"

// Principal is the signer identity written in a package's allowed_signers.
const Principal = "evidence@takedown"

const (
	sshsigMagic   = "SSHSIG"
	sshsigVersion = 1
	sshsigHash    = "sha512"
	armorBegin    = "-----BEGIN SSH SIGNATURE-----"
	armorEnd      = "-----END SSH SIGNATURE-----"
)

// signedData is what an SSHSIG signature covers.
func sshsigSignedData(namespace string, msg []byte) []byte {
	h := sha512.Sum512(msg)
	return append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace string
		Reserved  string
		HashAlg   string
		Hash      []byte
	}{namespace, "", sshsigHash, h[:]})...)
}

type sshsigBlob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// SSHSign returns an armored SSH signature of msg by k in namespace.
func SSHSign(k *Key, namespace string, msg []byte) ([]byte, error) {
	signer, err := ssh.NewSignerFromKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("ssh signer: %w", err)
	}
	sig, err := signer.Sign(rand.Reader, sshsigSignedData(namespace, msg))
	if err != nil {
		return nil, fmt.Errorf("ssh sign: %w", err)
	}
	blob := append([]byte(sshsigMagic), ssh.Marshal(sshsigBlob{
		Version:   sshsigVersion,
		PublicKey: signer.PublicKey().Marshal(),
		Namespace: namespace,
		HashAlg:   sshsigHash,
		Signature: ssh.Marshal(sig),
	})...)
	enc := base64.StdEncoding.EncodeToString(blob)
	var b strings.Builder
	b.WriteString(armorBegin + "\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n" + armorEnd + "\n")
	return []byte(b.String()), nil
}

// ParseSSHSig parses an armored SSH signature and returns the signer's
// Ed25519 key, namespace, hash algorithm and signature.
func ParseSSHSig(armored []byte) (pub ed25519.PublicKey, namespace, hashAlg string, sig *ssh.Signature, err error) {
	s := strings.TrimSpace(string(armored))
	body, ok := strings.CutPrefix(s, armorBegin)
	if !ok {
		return nil, "", "", nil, errors.New("ssh signature: missing BEGIN SSH SIGNATURE line")
	}
	body, ok = strings.CutSuffix(body, armorEnd)
	if !ok {
		return nil, "", "", nil, errors.New("ssh signature: missing END SSH SIGNATURE line")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		return nil, "", "", nil, fmt.Errorf("ssh signature: %w", err)
	}
	rest, ok := bytes.CutPrefix(raw, []byte(sshsigMagic))
	if !ok {
		return nil, "", "", nil, errors.New("ssh signature: bad magic")
	}
	var blob sshsigBlob
	if err := ssh.Unmarshal(rest, &blob); err != nil {
		return nil, "", "", nil, fmt.Errorf("ssh signature: %w", err)
	}
	if blob.Version != sshsigVersion {
		return nil, "", "", nil, fmt.Errorf("ssh signature: version %d not supported", blob.Version)
	}
	pk, err := ssh.ParsePublicKey(blob.PublicKey)
	if err != nil {
		return nil, "", "", nil, fmt.Errorf("ssh signature: %w", err)
	}
	ck, ok := pk.(ssh.CryptoPublicKey)
	if !ok {
		return nil, "", "", nil, errors.New("ssh signature: not an Ed25519 key")
	}
	pub, ok = ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return nil, "", "", nil, errors.New("ssh signature: not an Ed25519 key")
	}
	sig = new(ssh.Signature)
	if err := ssh.Unmarshal(blob.Signature, sig); err != nil {
		return nil, "", "", nil, fmt.Errorf("ssh signature: %w", err)
	}
	return pub, blob.Namespace, blob.HashAlg, sig, nil
}

// SSHVerify checks an armored SSH signature of msg by trusted in namespace.
func SSHVerify(trusted ed25519.PublicKey, namespace string, msg, armored []byte) error {
	pub, ns, alg, sig, err := ParseSSHSig(armored)
	if err != nil {
		return err
	}
	if !pub.Equal(trusted) {
		return fmt.Errorf("ssh signature: made by key %s, not the trusted key %s", Fingerprint(pub), Fingerprint(trusted))
	}
	if ns != namespace {
		return fmt.Errorf("ssh signature: namespace %q, want %q", ns, namespace)
	}
	if alg != sshsigHash {
		return fmt.Errorf("ssh signature: hash %q, want %q", alg, sshsigHash)
	}
	sp, err := ssh.NewPublicKey(trusted)
	if err != nil {
		return err
	}
	if err := sp.Verify(sshsigSignedData(namespace, msg), sig); err != nil {
		return fmt.Errorf("ssh signature: does not verify: %w", err)
	}
	return nil
}
