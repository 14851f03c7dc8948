package evidence

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed commitment to the log's first Size leaves: a C2SP
// tlog-checkpoint signed note (origin, size, base64 root hash, then an
// Ed25519 note signature by the log's key).
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
	Note   []byte // the signed note exactly as written and shipped
}

// checkpointText formats the note body of a checkpoint.
func checkpointText(origin string, size uint64, root tlog.Hash) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// signCheckpoint makes the signed note for (size, root).
func signCheckpoint(k *Key, size uint64, root tlog.Hash) (Checkpoint, error) {
	s, err := k.noteSigner()
	if err != nil {
		return Checkpoint{}, err
	}
	msg, err := note.Sign(&note.Note{Text: checkpointText(k.Name, size, root)}, s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: k.Name, Size: size, Root: root, Note: msg}, nil
}

// OpenCheckpoint parses a signed checkpoint note and checks that pub signed
// it under the name given by the note's origin line. Signatures by other
// keys (witness cosignatures) are ignored, as C2SP requires.
func OpenCheckpoint(msg []byte, pub ed25519.PublicKey) (Checkpoint, error) {
	origin, _, ok := strings.Cut(string(msg), "\n")
	if !ok || !validKeyName(origin) {
		return Checkpoint{}, errors.New("checkpoint: malformed origin line")
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return Checkpoint{}, errors.New("checkpoint: not signed by the trusted key")
		}
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	c.Note = msg
	return c, nil
}

// parseCheckpointText parses the three checkpoint lines; extension lines
// after them are allowed and ignored.
func parseCheckpointText(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root hash lines")
	}
	size, err := strconv.ParseUint(lines[1], 10, 63)
	if err != nil || (lines[1] != "0" && strings.HasPrefix(lines[1], "0")) {
		return Checkpoint{}, fmt.Errorf("checkpoint: bad tree size %q", truncate(lines[1], 30))
	}
	raw, err := decodeB64(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("checkpoint: bad root hash %q", truncate(lines[2], 60))
	}
	var c Checkpoint
	c.Origin = lines[0]
	c.Size = size
	copy(c.Root[:], raw)
	return c, nil
}
