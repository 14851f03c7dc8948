package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Maildir is a Mailer that delivers into a local maildir (new/, cur/,
// tmp/ under Dir) instead of talking SMTP: for a local mail pipeline that
// reads a maildir, and for the demo, which must not send mail anywhere.
// A message is written to tmp/ and synced; commit is called; then it is
// renamed into new/, which is atomic. The recipients are not part of a
// maildir delivery: they stay in the ledger.
type Maildir struct {
	Dir string
	// Now is the clock for file names; nil is time.Now.
	Now func() time.Time
}

var _ Mailer = (*Maildir)(nil)

// Send implements Mailer.
func (m *Maildir) Send(_ context.Context, _ string, _ []string, msg []byte, commit func() error) error {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(m.Dir, sub), 0o750); err != nil {
			return &SendError{Temporary: true, Err: fmt.Errorf("maildir: %w", err)}
		}
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	sum := sha256.Sum256(msg)
	name := fmt.Sprintf("%d.%s.takedown", now().UnixNano(), hex.EncodeToString(sum[:8]))
	tmp := filepath.Join(m.Dir, "tmp", name)
	if err := writeSynced(tmp, msg); err != nil {
		os.Remove(tmp)
		return &SendError{Temporary: true, Err: fmt.Errorf("maildir: %w", err)}
	}
	if commit != nil {
		if err := commit(); err != nil {
			os.Remove(tmp)
			return &SendError{Temporary: true, Err: fmt.Errorf("before delivery: %w", err)}
		}
	}
	if err := os.Rename(tmp, filepath.Join(m.Dir, "new", name)); err != nil {
		// The rename either happened or did not; a failure here leaves
		// the message in tmp/, not delivered.
		os.Remove(tmp)
		return &SendError{Temporary: true, Err: fmt.Errorf("maildir: %w", err)}
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
