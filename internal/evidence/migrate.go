package evidence

// Migration of the earlier layout (data, index, hashes) to tlog-tiles,
// once, at the first Open by this version. data was that layout's source
// of truth: entries of a 4-byte big-endian record length, the 16-byte
// nonce and the record. index and hashes were derived from it and are not
// read. The entries are re-hashed into tiles and every kept checkpoint's
// root is checked on the way, as the old Open did; a log that does not
// reproduce its checkpoints is refused and left as it was.
//
// Crash safety: the tiles are written first and fsynced; the journal is
// then created atomically (rename), which is the switch; data, index and
// hashes are removed last. A crash before the switch migrates again at the
// next Open (the tiles are rewritten); after it, the old files are removed.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	oldEntryHeader   = 4       // old layout: record length
	oldMaxRecordSize = 1 << 20 // old layout's bound
)

var oldFiles = []string{"data", "index", "hashes"}

// migrate converts a log of the old layout (writer lock held).
func (l *Log) migrate(ctx context.Context) error {
	_, err := os.Stat(filepath.Join(l.dir, "data"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	if _, err := os.Stat(filepath.Join(l.dir, journalFile)); err == nil {
		return removeOld(l.dir) // migrated; a crash kept the old files
	}
	// Nobody else may use the log while it changes layout.
	if err := flock(l.lock, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		flock(l.lock, syscall.LOCK_SH) // a failed conversion may have dropped the shared lock
		return fmt.Errorf("evidence log %s is open in another process (a running server?) and needs a one-time migration to the tlog-tiles layout: stop it and run again: %w", l.dir, err)
	}
	defer flock(l.lock, syscall.LOCK_SH)
	cps, err := readCheckpoints(l.dir, l.key.Name, l.chain)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(l.dir, "data"))
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var t tree
	var files []tileFile
	var enc []byte
	cpi := 0
	var off int64
	flush := func() error {
		for _, tf := range files {
			if err := writeTile(l.dir, tf); err != nil {
				return fmt.Errorf("evidence migration: %w", err)
			}
		}
		files = files[:0]
		return nil
	}
	for {
		if t.n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		for cpi < len(cps) && cps[cpi].Size == t.n {
			if root := frontierRoot(t.frontier); root != cps[cpi].Root {
				return fmt.Errorf("evidence log does not match its checkpoint of size %d: entries hash to root %s, checkpoint says %s (entries edited, removed or reordered)",
					t.n, b64(root), b64(cps[cpi].Root))
			}
			cpi++
		}
		var hdr [oldEntryHeader]byte
		_, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			break
		}
		size := int(binary.BigEndian.Uint32(hdr[:]))
		if err == nil && size == 0 {
			rest, rerr := io.ReadAll(r)
			if rerr != nil || !allZero(rest) {
				return fmt.Errorf("evidence data: entry %d at offset %d: record length 0 out of range", t.n, off)
			}
			l.log.Warn("evidence migration: dropping a zero-filled tail (crash during append)", "entry", t.n, "offset", off)
			break
		}
		if err == nil && size > oldMaxRecordSize {
			return fmt.Errorf("evidence data: entry %d at offset %d: record length %d out of range", t.n, off, size)
		}
		if err == nil && NonceSize+size > MaxEntrySize {
			return fmt.Errorf("evidence data: entry %d has a record of %d bytes; tlog-tiles entries hold at most %d: this log cannot be migrated", t.n, size, DefaultMaxRecordSize)
		}
		enc = binary.BigEndian.AppendUint16(enc[:0], uint16(NonceSize+size))
		if err == nil {
			enc = append(enc, make([]byte, NonceSize+size)...)
			_, err = io.ReadFull(r, enc[entryHeader:])
		}
		if err == io.ErrUnexpectedEOF {
			l.log.Warn("evidence migration: dropping a torn last entry (crash during append)", "entry", t.n, "offset", off)
			break
		}
		if err != nil {
			return fmt.Errorf("evidence data: entry %d: %w", t.n, err)
		}
		e := enc[entryHeader:]
		files = t.push(LeafHash(e[:NonceSize], e[NonceSize:]), enc, files)
		off += int64(oldEntryHeader + size + NonceSize)
		if len(files) >= 256 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(cps) > 0 && cps[len(cps)-1].Size == t.n {
		files = append(files, t.partials()...) // what the checkpoint file names
	}
	if err := flush(); err != nil {
		return err
	}
	if cpi < len(cps) {
		return fmt.Errorf("evidence log truncated: it holds %d entries but its checkpoint of size %d commits to more; it does not extend its last checkpoint", t.n, cps[len(cps)-1].Size)
	}
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("evidence migration: sync tiles: %w", err)
	}
	jb := append(journalHead(t.n&^(tileWidth-1)), t.pend...)
	if err := writeFileSync(filepath.Join(l.dir, journalFile), jb, 0o600); err != nil {
		return fmt.Errorf("evidence migration: %w", err)
	}
	if len(cps) > 0 {
		if err := writeFileSync(filepath.Join(l.dir, checkpointFile), cps[len(cps)-1].Note, 0o644); err != nil {
			return fmt.Errorf("evidence migration: %w", err)
		}
	}
	l.log.Info("evidence log migrated to the tlog-tiles layout", "entries", t.n, "checkpoints", len(cps))
	return removeOld(l.dir)
}

func removeOld(dir string) error {
	for _, name := range oldFiles {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("evidence migration: %w", err)
		}
	}
	return syncDir(dir)
}
