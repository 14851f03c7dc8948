package evidence

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// LiveCopy is a consistent copy of a log directory taken without its lock,
// while a server may be appending: the files that are the log's source of
// truth, cut at an entry boundary. index and hashes are left out: they are
// derived, and Open rebuilds them.
//
// Why it is consistent: checkpoint and rotation files are written whole
// (temporary name, rename) and never change; every checkpoint commits to
// entries already durable in data, because Append writes and fsyncs data
// before the log's size grows. So the checkpoints listed first are all
// covered by the data read afterwards, which is cut after its last complete
// entry (an append in progress is left out).
type LiveCopy struct {
	Entries    uint64 // entries in the copied data
	DataBytes  int64  // bytes of data copied
	Checkpoint uint64 // size of the latest copied checkpoint
	Files      []LiveFile
	data       *os.File
}

// LiveFile is one file of a LiveCopy, named relative to the log dir with
// slashes.
type LiveFile struct {
	Name string
	Size int64
	Mode fs.FileMode
	Open func() io.Reader
}

// Close releases the data file.
func (c *LiveCopy) Close() error {
	if c.data == nil {
		return nil
	}
	err := c.data.Close()
	c.data = nil
	return err
}

// CopyLive takes a LiveCopy of the log in dir. The caller reads the files
// (Open) and then calls Close.
func CopyLive(dir string) (*LiveCopy, error) {
	c := &LiveCopy{}
	small := func(name string, mode fs.FileMode) error {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return fmt.Errorf("evidence copy: %w", err)
		}
		c.Files = append(c.Files, LiveFile{Name: name, Size: int64(len(b)), Mode: mode, Open: func() io.Reader { return strings.NewReader(string(b)) }})
		return nil
	}
	// 1. Checkpoints and rotation records: whole, immutable files.
	for _, sub := range []string{checkpointDir, rotationDir} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("evidence copy: %w", err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".tmp") {
				continue
			}
			if err := small(path.Join(sub, e.Name()), 0o644); err != nil {
				return nil, err
			}
		}
	}
	// 2. The keys (after the rotation records, which name the current key).
	if err := small(keyFile, 0o600); err != nil {
		return nil, err
	}
	if err := small(keyPubFile, 0o644); err != nil {
		return nil, err
	}
	// 3. data, up to its last complete entry now.
	f, err := os.Open(filepath.Join(dir, "data"))
	if err != nil {
		return nil, fmt.Errorf("evidence copy: %w", err)
	}
	c.data = f
	fi, err := f.Stat()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("evidence copy: %w", err)
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, fi.Size()), 1<<20)
	var hdr [entryHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break // end, or an entry being written
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		if n == 0 || n > DefaultMaxRecordSize {
			break // zeros after a crash; Open says the rest
		}
		if d, err := r.Discard(int(NonceSize + n)); err != nil || d != int(NonceSize+n) {
			break
		}
		c.Entries++
		c.DataBytes += entryHeader + NonceSize + n
	}
	size := c.DataBytes
	c.Files = append(c.Files, LiveFile{Name: "data", Size: size, Mode: 0o600, Open: func() io.Reader { return io.NewSectionReader(f, 0, size) }})
	// Every checkpoint copied must be covered (see above); one that is not
	// means the log was not written by this program's rules.
	for _, lf := range c.Files {
		name, ok := strings.CutPrefix(lf.Name, checkpointDir+"/")
		if !ok {
			continue
		}
		var s uint64
		if _, err := fmt.Sscanf(name, "%d", &s); err != nil {
			continue
		}
		if s > c.Entries {
			c.Close()
			return nil, fmt.Errorf("evidence copy: checkpoint %d is beyond the %d complete entries of data", s, c.Entries)
		}
		c.Checkpoint = max(c.Checkpoint, s)
	}
	slices.SortFunc(c.Files, func(a, b LiveFile) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}
