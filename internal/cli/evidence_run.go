package cli

// The bodies of the `takedown evidence …` commands: they open the log (or
// read a package), call the evidence packages, which return data, and print
// what they got. at is the log (logAt: the data dir's evidence folder, a
// replica of the shared store's log on PostgreSQL). They work while a
// server has the log open too: a write (a checkpoint, an export's custody
// record) takes the log's writer lock for its duration and catches up with
// the server's appends (and the shared store's) first.

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/evidence/bundle"
)

// printEvidenceKey prints the log's public key (OpenSSH and note verifier
// forms), its fingerprint and origin, making the key first if the log has
// none.
func printEvidenceKey(ctx context.Context, w io.Writer, at logAt) error {
	k, err := evidence.CurrentKey(ctx, at.dir, at.opts)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n%s\nfingerprint %s\norigin %s\n", k.SSHPublicKey(), k.VerifierKey(), k.Fingerprint(), k.Name)
	return err
}

// writeEvidenceKey writes the public key to file out as one OpenSSH line
// ("ssh-ed25519 AAAA… evidence@takedown"), exactly what `evidence verify
// --key` reads, and prints where and the fingerprint.
func writeEvidenceKey(ctx context.Context, w io.Writer, at logAt, out string) error {
	k, err := evidence.CurrentKey(ctx, at.dir, at.opts)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(k.SSHPublicKey()+" "+evidence.Principal+"\n"), 0o644); err != nil {
		return fmt.Errorf("evidence key: %w", err)
	}
	_, err = fmt.Fprintf(w, "public key written to %s\nfingerprint %s\norigin %s\n", out, k.Fingerprint(), k.Name)
	return err
}

// evidenceCheckpoint opens the log (which audits it), writes a checkpoint
// and prints its signed note.
func evidenceCheckpoint(ctx context.Context, w io.Writer, at logAt) error {
	l, err := evidence.Open(ctx, at.dir, at.opts)
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

// evidenceAudit re-hashes the whole log against every checkpoint and prints
// what it covered. A failed audit is an error naming the first problem.
func evidenceAudit(ctx context.Context, w io.Writer, at logAt) error {
	l, err := evidence.Open(ctx, at.dir, at.opts) // Open re-hashes everything already
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

// evidenceRotateKey opens the log, rotates its key and prints the new
// public key and what a recipient needs to know.
func evidenceRotateKey(ctx context.Context, w io.Writer, at logAt, who string) error {
	l, err := evidence.Open(ctx, at.dir, at.opts)
	if err != nil {
		return err
	}
	res, err := l.RotateKey(ctx, who)
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "evidence key rotated: the old key signed tree sizes up to %d (the rotation record is entry %d), the new key signs every later one\nold key %s\nnew key %s\n%s\n%s\n",
		res.LastOldSize, res.LastOldSize-1, res.Old.Fingerprint(), res.New.Fingerprint(), res.New.SSHPublicKey(), res.New.VerifierKey())
	return err
}

// exportArgs are the arguments of `takedown evidence export`.
type exportArgs struct {
	Case     string
	From, To time.Time
	Out      string // -o DIR, required
	Who      string // who exports; the command fills in actor()
	ForWhom  string // --for
}

// evidenceExport writes an evidence package and prints where, how to
// verify it and the checkpoint it ends at.
func evidenceExport(ctx context.Context, w io.Writer, at logAt, a exportArgs) error {
	l, err := evidence.Open(ctx, at.dir, at.opts)
	if err != nil {
		return err
	}
	err = bundle.Export(ctx, l, bundle.Selection{Case: a.Case, From: a.From, To: a.To}, a.Out, a.Who, a.ForWhom)
	var cpNote []byte
	if err == nil {
		var c evidence.Checkpoint
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

// verifyKey reads the trusted key of `evidence verify --key`: the
// contents of the file keyArg names, or else keyArg itself.
func verifyKey(keyArg string) []byte {
	kb, err := os.ReadFile(keyArg)
	if err != nil {
		return []byte(keyArg) // the key itself, not a file
	}
	return kb
}

// printVerifyReport writes one line per check of rep and a verdict line.
func printVerifyReport(w io.Writer, rep bundle.Report) {
	fmt.Fprintf(w, "package %s, trusted key %s\n", rep.Dir, rep.Fingerprint)
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
		return
	}
	fmt.Fprintf(w, "VERIFIED: all %d checks passed\n", len(rep.Checks))
}
