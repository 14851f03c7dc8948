package evidence

import (
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

// LiveCopy is a consistent copy of a log directory taken without the
// writer lock, while a server may be appending: the files a restored log
// needs, cut at an entry boundary.
//
// Why it is consistent: checkpoint and rotation files are written whole
// (temporary name, rename) and never change; every checkpoint commits to
// entries already durable in the journal, because Append writes and fsyncs
// the journal before the log's size grows, and the tiles and bundles below
// the journal's start were written before that journal replaced the one
// before it (and never change; the copy reads them whether or not the
// rotation's background sync has made them durable yet). So the checkpoints listed first are all
// covered by the journal opened afterwards, which is cut after its last
// complete entry (an append in progress is left out), and by the full
// tiles below its start. Tiles of the journal's own range are left out:
// Open rewrites them from the journal.
type LiveCopy struct {
	Entries    uint64 // entries in the copy
	DataBytes  int64  // bytes of the journal copied
	Checkpoint uint64 // size of the latest copied checkpoint
	Files      []LiveFile
	journal    *os.File
}

// LiveFile is one file of a LiveCopy, named relative to the log dir with
// slashes.
type LiveFile struct {
	Name string
	Size int64
	Mode fs.FileMode
	Open func() io.Reader
}

// Close releases the journal.
func (c *LiveCopy) Close() error {
	if c.journal == nil {
		return nil
	}
	err := c.journal.Close()
	c.journal = nil
	return err
}

// lazyFile opens its file at the first Read.
type lazyFile struct {
	path string
	r    io.Reader
}

func (z *lazyFile) Read(p []byte) (int, error) {
	if z.r == nil {
		b, err := os.ReadFile(z.path)
		if err != nil {
			return 0, err
		}
		z.r = strings.NewReader(string(b))
	}
	return z.r.Read(p)
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
	if err := small(checkpointFile, 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// 2. The keys (after the rotation records, which name the current key).
	if err := small(keyFile, 0o600); err != nil {
		return nil, err
	}
	if err := small(keyPubFile, 0o644); err != nil {
		return nil, err
	}
	// 3. The journal, up to its last complete entry now.
	f, err := os.Open(filepath.Join(dir, journalFile))
	if err != nil {
		return nil, fmt.Errorf("evidence copy: %w", err)
	}
	c.journal = f
	start, fi, err := journalStart(f)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("evidence copy: %w", err)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, fi.Size()), b); err != nil {
		c.Close()
		return nil, fmt.Errorf("evidence copy: %w", err)
	}
	size := int64(journalHeader)
	c.Entries = start
	for rest := b[journalHeader:]; len(rest) >= entryHeader; {
		n := int(binary.BigEndian.Uint16(rest))
		if n <= NonceSize || len(rest) < entryHeader+n {
			break // an entry being written, or a crash's zeros: Open says the rest
		}
		rest = rest[entryHeader+n:]
		size += int64(entryHeader + n)
		c.Entries++
	}
	c.DataBytes = size
	jb := b[:size]
	c.Files = append(c.Files, LiveFile{Name: journalFile, Size: size, Mode: 0o600, Open: func() io.Reader { return strings.NewReader(string(jb)) }})
	// 4. The full tiles and bundles below the journal's start.
	for L := -1; ; L++ {
		shift := 0
		if L > 0 {
			shift = tileHeight * L
		}
		full := (start >> shift) / tileWidth
		if full == 0 {
			break
		}
		for N := range full {
			p := tilePath(L, N, tileWidth)
			fp := filepath.Join(dir, filepath.FromSlash(p))
			sz := int64(tileWidth * 32)
			if L < 0 {
				st, err := os.Stat(fp)
				if err != nil {
					c.Close()
					return nil, fmt.Errorf("evidence copy: %w", err)
				}
				sz = st.Size()
			}
			c.Files = append(c.Files, LiveFile{Name: p, Size: sz, Mode: 0o644, Open: func() io.Reader { return &lazyFile{path: fp} }})
		}
	}
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
			return nil, fmt.Errorf("evidence copy: checkpoint %d is beyond the %d complete entries of the journal", s, c.Entries)
		}
		c.Checkpoint = max(c.Checkpoint, s)
	}
	slices.SortFunc(c.Files, func(a, b LiveFile) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}
