package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"
)

// AuditResult says what an audit covered.
type AuditResult struct {
	Leaves      uint64 // entries re-hashed
	Checkpoints int    // checkpoints whose root was recomputed
	Latest      uint64 // size of the latest checkpoint checked
}

// Audit re-reads every stored entry, re-hashes it, compares every full hash
// tile and entry bundle on disk with the recomputed ones and checks the
// root of every kept checkpoint. It reads what the Log knew when it started
// and does not block Append.
func (l *Log) Audit(ctx context.Context) error {
	_, err := l.AuditResult(ctx)
	return err
}

// AuditResult is Audit that also says what it covered.
func (l *Log) AuditResult(ctx context.Context) (AuditResult, error) {
	var res AuditResult
	n := l.Size()
	k, chain, _ := l.Keys()
	cps, err := readCheckpoints(l.dir, k.Name, chain)
	if err != nil {
		return res, err
	}
	// Checkpoints made after this Log's view are for the next audit.
	for len(cps) > 0 && cps[len(cps)-1].Size > n {
		cps = cps[:len(cps)-1]
	}
	var t tree
	cpi := 0
	checkRoots := func() error {
		for cpi < len(cps) && cps[cpi].Size == t.n {
			if root := frontierRoot(t.frontier); root != cps[cpi].Root {
				return fmt.Errorf("evidence log does not match its checkpoint of size %d: entries hash to root %s, checkpoint says %s (entries edited, removed or reordered)",
					t.n, b64(root), b64(cps[cpi].Root))
			}
			res.Latest = cps[cpi].Size
			res.Checkpoints++
			cpi++
		}
		return nil
	}
	if err := checkRoots(); err != nil {
		return res, err
	}
	var files []tileFile
	var enc []byte
	for b := uint64(0); b*tileWidth < n; b++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		err := l.forBundle(b, n, func(i uint64, nonce, rec []byte) error {
			enc = binary.BigEndian.AppendUint16(enc[:0], uint16(len(nonce)+len(rec)))
			enc = append(append(enc, nonce...), rec...)
			files = t.push(LeafHash(nonce, rec), enc, files[:0])
			for _, f := range files {
				got, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(f.path)))
				if err != nil {
					return fmt.Errorf("evidence log: %w", err)
				}
				if !bytes.Equal(got, f.data) {
					what := "hash tile"
					if f.path[len("tile/"):][0] == 'e' {
						what = "entry bundle"
					}
					return fmt.Errorf("evidence log edited: %s %s does not match the entries it covers (entry %d)", what, f.path, i)
				}
			}
			return checkRoots()
		})
		if err != nil {
			return res, err
		}
	}
	if cpi < len(cps) {
		return res, fmt.Errorf("evidence log truncated: it holds %d entries but its checkpoint of size %d commits to more", n, cps[cpi].Size)
	}
	// The latest checkpoint's partial tiles, when written, are the tree's.
	if c := res.Latest; c > 0 && c == t.n {
		for _, f := range t.partials() {
			got, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(f.path)))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return res, fmt.Errorf("evidence log: %w", err)
			}
			if !bytes.Equal(got, f.data) {
				return res, fmt.Errorf("evidence log edited: partial tile %s does not match the entries it covers", f.path)
			}
		}
	}
	res.Leaves = n
	return res, nil
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }
