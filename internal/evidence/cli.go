package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// The functions below are the logic of the `takedown evidence …` commands;
// the CLI parses flags and calls them. dir is the log directory (the data
// dir's evidence/ folder). Commands that open the log fail while another
// process (a running server) holds it.

// KeyCommand prints the public key (OpenSSH and note verifier forms) and
// its fingerprint, making the key first if the log has none.
func KeyCommand(ctx context.Context, w io.Writer, dir string, opts Options) error {
	k, err := loadOrMakeKey(ctx, dir, opts)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n%s\nfingerprint %s\norigin %s\n", k.SSHPublicKey(), k.VerifierKey(), k.Fingerprint(), k.Name)
	return err
}

// KeyFileCommand writes the public key to file out as one OpenSSH line
// ("ssh-ed25519 AAAA… evidence@takedown"), exactly what `evidence verify
// --key` reads, and prints where and the fingerprint.
func KeyFileCommand(ctx context.Context, w io.Writer, dir string, opts Options, out string) error {
	k, err := loadOrMakeKey(ctx, dir, opts)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(k.SSHPublicKey()+" "+Principal+"\n"), 0o644); err != nil {
		return fmt.Errorf("evidence key: %w", err)
	}
	_, err = fmt.Fprintf(w, "public key written to %s\nfingerprint %s\norigin %s\n", out, k.Fingerprint(), k.Name)
	return err
}

// loadOrMakeKey reads the log's current key, opening the log (which makes
// the key) when it has none yet.
func loadOrMakeKey(ctx context.Context, dir string, opts Options) (*Key, error) {
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

// CheckpointCommand opens the log (which audits it), writes a checkpoint
// and prints it.
func CheckpointCommand(ctx context.Context, w io.Writer, dir string, opts Options) error {
	l, err := Open(ctx, dir, opts)
	if err != nil {
		return err
	}
	c, err := l.Checkpoint(ctx)
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = w.Write(c.Note)
	return err
}

// AuditCommand re-hashes the whole log against every checkpoint and prints
// what it covered. A failed audit is an error naming the first problem.
func AuditCommand(ctx context.Context, w io.Writer, dir string, opts Options) error {
	l, err := Open(ctx, dir, opts) // Open re-hashes everything already
	if err != nil {
		return fmt.Errorf("evidence audit failed: %w", err)
	}
	defer l.Close()
	res, err := l.AuditResult(ctx)
	if err != nil {
		return fmt.Errorf("evidence audit failed: %w", err)
	}
	_, err = fmt.Fprintf(w, "evidence audit passed: %d entries re-hashed, %d checkpoints reproduced (latest size %d)\n", res.Leaves, res.Checkpoints, res.Latest)
	return err
}

// ExportArgs are the arguments of `takedown evidence export`.
type ExportArgs struct {
	Case     string
	From, To time.Time
	Out      string // -o DIR
	Who      string // default: $USER
	ForWhom  string // --for
}

// ExportCommand writes an evidence package and prints where and what.
func ExportCommand(ctx context.Context, w io.Writer, dir string, opts Options, a ExportArgs) error {
	if a.Out == "" {
		return errors.New("evidence export: -o DIR is required")
	}
	if a.Who == "" {
		a.Who = os.Getenv("USER")
		if a.Who == "" {
			a.Who = "operator"
		}
	}
	l, err := Open(ctx, dir, opts)
	if err != nil {
		return err
	}
	err = Export(ctx, l, Selection{Case: a.Case, From: a.From, To: a.To}, a.Out, a.Who, a.ForWhom)
	var cpNote []byte
	if err == nil {
		var c Checkpoint
		c, err = l.Checkpoint(ctx)
		cpNote = c.Note
	}
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "evidence package written to %s\nverify with: takedown evidence verify %s --key 'ssh-ed25519 %s'\ncheckpoint:\n%s",
		a.Out, a.Out, l.Key().SSHPublicKey()[len("ssh-ed25519 "):], cpNote)
	return err
}

// VerifyReport verifies the package in dir against the key in keyArg (a
// file holding the key, or the key itself) and writes one line per check.
// ok is true only when every check passed; err is for an unusable key.
func VerifyReport(w io.Writer, dir, keyArg string) (ok bool, err error) {
	if keyArg == "" {
		return false, errors.New("evidence verify: --key is required: the key shipped inside a package is not trusted")
	}
	kb, err := os.ReadFile(keyArg)
	if err != nil {
		kb = []byte(keyArg)
	}
	rep, err := Verify(dir, kb)
	if err != nil {
		return false, fmt.Errorf("evidence verify: %w", err)
	}
	fmt.Fprintf(w, "package %s, trusted key %s\n", dir, rep.Fingerprint)
	failed := 0
	for _, c := range rep.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "%s  %-20s %s\n", mark, c.Name, c.Detail)
	}
	if failed > 0 {
		fmt.Fprintf(w, "NOT VERIFIED: %d of %d checks failed\n", failed, len(rep.Checks))
		return false, nil
	}
	fmt.Fprintf(w, "VERIFIED: all %d checks passed\n", len(rep.Checks))
	return true, nil
}
