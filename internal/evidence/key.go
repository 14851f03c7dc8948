package evidence

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/mod/sumdb/note"

	"github.com/takedown/takedown/internal/sshsig"
)

// Principal is the signer identity of the log's key in allowed_signers
// files (a package's, a recipient's) and in the key file `evidence key -o`
// writes.
const Principal = "evidence@takedown"

// Key file names inside the log directory.
const (
	keyFile    = "key"     // note signer key ("PRIVATE+KEY+…"), mode 0600
	keyPubFile = "key.pub" // note verifier key, then the OpenSSH public key
)

// algEd25519 is the note key algorithm byte for Ed25519.
const algEd25519 = 1

// Key is the log's signing key: an Ed25519 key whose note name is the log's
// origin. The same key signs checkpoints (C2SP signed notes) and export
// manifests (SSHSIG).
type Key struct {
	Name string // the note key name, equal to the checkpoint origin
	priv ed25519.PrivateKey
}

// Public returns the Ed25519 public key.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// noteSigner returns the note signer for checkpoints.
func (k *Key) noteSigner() (note.Signer, error) { return note.NewSigner(k.signerKey()) }

// signerKey is the note signer key, as the key file holds it.
func (k *Key) signerKey() string {
	return "PRIVATE+KEY+" + k.Name + "+" + fmt.Sprintf("%08x", keyHash(k.Name, k.Public())) + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{algEd25519}, k.priv.Seed()...))
}

// VerifierKey returns the note verifier key ("name+hash+base64").
func (k *Key) VerifierKey() string {
	v, err := note.NewEd25519VerifierKey(k.Name, k.Public())
	if err != nil {
		panic(err) // only fails for a bad name, which loadKey rejects
	}
	return v
}

// SSHPublicKey returns the public key in OpenSSH authorized_keys form,
// without a trailing newline.
func (k *Key) SSHPublicKey() string { return sshAuthorizedKey(k.Public()) }

// Fingerprint returns the OpenSSH SHA256 fingerprint of the public key.
func (k *Key) Fingerprint() string { return sshsig.Fingerprint(k.Public()) }

// SSHSign returns an armored SSH signature (SSHSIG) of msg by k in
// namespace, which `ssh-keygen -Y verify` checks.
func (k *Key) SSHSign(namespace string, msg []byte) ([]byte, error) {
	return sshsig.Sign(k.priv, namespace, msg)
}

func sshAuthorizedKey(pub ed25519.PublicKey) string {
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(sp)), "\n")
}

// keyHash is the note key hash: the first 4 bytes of
// SHA-256(name || "\n" || 0x01 || pub), big endian.
func keyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algEd25519})
	h.Write(pub)
	s := h.Sum(nil)
	return uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])
}

// LoadKey reads the log's key from dir without creating one.
func LoadKey(dir string) (*Key, error) {
	b, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("read evidence key: %w", err)
	}
	return parseSignerKey(strings.TrimSpace(string(b)))
}

// CurrentKey returns the current signing key of the log in dir, opening
// the log (which makes the key) when it has none yet.
func CurrentKey(ctx context.Context, dir string, opts Options) (*Key, error) {
	k, err := LoadKey(dir)
	if errors.Is(err, fs.ErrNotExist) {
		l, err := Open(ctx, dir, opts)
		if err != nil {
			return nil, err
		}
		k = l.Key()
		if err := l.Close(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return k, nil
}

// loadOrCreateKey reads the key in dir, or makes one named origin (mode
// 0600) when there is none.
func loadOrCreateKey(dir, origin string) (*Key, bool, error) {
	k, err := LoadKey(dir)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if k, err = newKey(origin); err != nil {
		return nil, false, err
	}
	if err := writeKey(dir, k); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// newKey makes a key named origin (a random name under takedown.invalid
// when empty).
func newKey(origin string) (*Key, error) {
	if origin == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		origin = "takedown.invalid/evidence/" + hex.EncodeToString(b[:])
	}
	if !validKeyName(origin) {
		return nil, fmt.Errorf("evidence origin %q: must be non-empty, without spaces or '+'", origin)
	}
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, fmt.Errorf("make evidence key: %w", err)
	}
	return parseSignerKey(skey)
}

// writeKey writes k as dir's key (mode 0600) and its public forms.
func writeKey(dir string, k *Key) error {
	if err := writeFileSync(filepath.Join(dir, keyFile), []byte(k.signerKey()+"\n"), 0o600); err != nil {
		return fmt.Errorf("write evidence key: %w", err)
	}
	pub := k.VerifierKey() + "\n" + k.SSHPublicKey() + "\n"
	if err := writeFileSync(filepath.Join(dir, keyPubFile), []byte(pub), 0o644); err != nil {
		return fmt.Errorf("write evidence public key: %w", err)
	}
	return nil
}

func validKeyName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " +\t\n\r") && strings.ToValidUTF8(name, "") == name
}

// parseSignerKey parses a note signer key "PRIVATE+KEY+name+hash+base64".
func parseSignerKey(skey string) (*Key, error) {
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return nil, errors.New("evidence key: not a note signer key")
	}
	name, rest, ok1 := strings.Cut(rest, "+")
	_, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validKeyName(name) {
		return nil, errors.New("evidence key: malformed note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, errors.New("evidence key: not an Ed25519 note signer key")
	}
	k := &Key{Name: name, priv: ed25519.NewKeyFromSeed(raw[1:])}
	if _, err := k.noteSigner(); err != nil {
		return nil, fmt.Errorf("evidence key: %w", err)
	}
	return k, nil
}

// ParsePublicKey parses a trusted Ed25519 public key given as an OpenSSH
// authorized-key line ("ssh-ed25519 AAAA…"), an allowed_signers line, a
// note verifier key ("name+hash+base64"), base64 of the 32 key bytes, or
// the 32 raw bytes. It also reads what `takedown evidence key` prints (both
// key forms, then "fingerprint SHA256:…" and "origin NAME" lines): the
// origin line is informational, and a fingerprint line must be the key's.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	s := strings.TrimSpace(string(b))
	// A file may hold several lines (key.pub holds the note key and the
	// OpenSSH key); every key-looking line must name the same key.
	var found ed25519.PublicKey
	var fingerprints []string
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "origin ") {
			continue
		}
		if fp, ok := strings.CutPrefix(line, "fingerprint "); ok {
			fingerprints = append(fingerprints, strings.TrimSpace(fp))
			continue
		}
		k, err := parsePublicKeyLine(line)
		if err != nil {
			return nil, err
		}
		if found != nil && !found.Equal(k) {
			return nil, errors.New("public key: the lines name different keys")
		}
		found = k
	}
	if found == nil {
		return nil, errors.New("public key: empty")
	}
	for _, fp := range fingerprints {
		if fp != sshsig.Fingerprint(found) {
			return nil, fmt.Errorf("public key: the fingerprint line says %s, the key is %s", truncate(fp, 60), sshsig.Fingerprint(found))
		}
	}
	return found, nil
}

func parsePublicKeyLine(line string) (ed25519.PublicKey, error) {
	if i := strings.Index(line, "ssh-ed25519 "); i >= 0 {
		sp, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line[i:]))
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		ck, ok := sp.(ssh.CryptoPublicKey)
		if !ok {
			return nil, errors.New("public key: not an Ed25519 key")
		}
		pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("public key: not an Ed25519 key")
		}
		return pub, nil
	}
	if strings.Count(line, "+") >= 2 {
		// note verifier key: name+hash+base64(0x01 || key)
		_, rest, _ := strings.Cut(line, "+")
		_, b64key, _ := strings.Cut(rest, "+")
		raw, err := base64.StdEncoding.DecodeString(b64key)
		if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != algEd25519 {
			return nil, errors.New("public key: malformed note verifier key")
		}
		if _, err := note.NewVerifier(line); err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		return ed25519.PublicKey(raw[1:]), nil
	}
	raw, err := base64.StdEncoding.DecodeString(line)
	if err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	return nil, fmt.Errorf("public key: %q is not an Ed25519 key in a known form (ssh-ed25519, note verifier key, base64)", truncate(line, 40))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// writeFileSync writes a file via a temporary name, fsyncs it, renames it
// into place and fsyncs the directory.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
