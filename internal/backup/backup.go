// Package backup copies a deployment's data dir, while takedown serve runs,
// into one file, and restores such a file into an empty data dir. It is
// for the embedded SQLite store and the evidence log; a PostgreSQL store
// is backed up with pg_dump (docs/deploy.md), and this package then copies
// the rest of the data dir.
//
// The file is a tar archive, mode 0600:
//
//	takedown.db          the store as of one instant (VACUUM INTO)
//	evidence/…           the evidence log's data, keys, checkpoints and rotations
//	…                    every other regular file of the data dir, as it is
//	SHA256SUMS           sha256sum -c form, over every member above
//	MANIFEST.json        what was copied and the SHA-256 of every member
//
// Consistency: the evidence log is copied first (cut after its last
// complete entry; evidence.CopyLive), then the store is copied in one read
// transaction. The server appends an event to the log only after the store
// has committed it, so every event in the copied log is in the copied
// store; the store may hold a few events more, stored during the copy.
// Restore appends those to the log, as the server does at start after a
// crash between a commit and its append. The restored data dir is then
// exactly the deployment as of the moment the store was copied.
//
// It is not a tool for files other processes keep half-written: the access
// log and other plain files are copied as they are at that moment.
package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// Format names the archive layout in the manifest.
const Format = "takedown-backup/1"

// Member names.
const (
	ManifestName = "MANIFEST.json"
	SumsName     = "SHA256SUMS"
	evidenceDir  = "evidence"
)

// Manifest describes a backup; it is the archive's last member.
type Manifest struct {
	Format   string    `json:"format"`
	Created  time.Time `json:"created"`
	Data     string    `json:"data_dir"`
	Store    string    `json:"store"` // "sqlite", or "postgresql (not included: pg_dump)"
	Evidence *struct {
		Entries    uint64 `json:"entries"`
		DataBytes  int64  `json:"data_bytes"`
		Checkpoint uint64 `json:"checkpoint"`
	} `json:"evidence,omitempty"`
	Files []File `json:"files"`
}

// File is one member of the archive.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"`
	SHA256 string `json:"sha256"`
}

// Options configures Create.
type Options struct {
	// Store is the open SQLite store of the data dir; nil when the store
	// is PostgreSQL (then only the data dir's files are copied).
	Store *sqlite.DB
	// Logger receives progress; nil discards.
	Logger *slog.Logger
	// Now is the clock of the manifest; nil means time.Now.
	Now func() time.Time
}

// skip reports whether a data dir file is left out: the live database
// files (the store goes in as its snapshot), the evidence log's lock and
// derived files, temporary files.
func skip(rel string) bool {
	switch rel {
	case sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm", sqlite.FileName + "-journal":
		return true
	}
	if strings.HasSuffix(rel, ".tmp") {
		return true
	}
	return rel == evidenceDir || strings.HasPrefix(rel, evidenceDir+"/")
}

// Create writes a backup of data dir data to out (which must not exist),
// mode 0600, and returns its manifest.
func Create(ctx context.Context, data, out string, opts Options) (Manifest, error) {
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m := Manifest{Format: Format, Created: now().UTC().Truncate(time.Second), Data: data, Store: "sqlite"}
	if opts.Store == nil {
		m.Store = "postgresql (not included: pg_dump it, docs/deploy.md)"
	}
	if _, err := os.Stat(out); err == nil {
		return m, fmt.Errorf("backup: %s exists", out)
	}
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := &archive{tw: tar.NewWriter(f), mtime: m.Created}

	// 1. The evidence log, first (see the package comment).
	evDir := filepath.Join(data, evidenceDir)
	if evidence.Exists(evDir) {
		lc, err := evidence.CopyLive(evDir)
		if err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		for _, lf := range lc.Files {
			if err := w.add(path.Join(evidenceDir, lf.Name), lf.Size, lf.Mode, lf.Open()); err != nil {
				lc.Close()
				return m, err
			}
		}
		lc.Close()
		m.Evidence = &struct {
			Entries    uint64 `json:"entries"`
			DataBytes  int64  `json:"data_bytes"`
			Checkpoint uint64 `json:"checkpoint"`
		}{lc.Entries, lc.DataBytes, lc.Checkpoint}
		lg.Info("backup: evidence log copied", "entries", lc.Entries, "checkpoint", lc.Checkpoint)
	}

	// 2. The store, as of one instant after the log was copied.
	if opts.Store != nil {
		snapDir, err := os.MkdirTemp(filepath.Dir(out), ".takedown-backup-")
		if err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		defer os.RemoveAll(snapDir)
		snap := filepath.Join(snapDir, sqlite.FileName)
		if err := opts.Store.BackupTo(ctx, snap); err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		sf, err := os.Open(snap)
		if err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		fi, err := sf.Stat()
		if err == nil {
			err = w.add(sqlite.FileName, fi.Size(), 0o600, sf)
		}
		sf.Close()
		if err != nil {
			return m, err
		}
		lg.Info("backup: store copied", "bytes", fi.Size())
	}

	// 3. Every other regular file of the data dir.
	err = filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(data, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // directories come with their files; sockets and links are not data
		}
		if abs, _ := filepath.Abs(p); abs == mustAbs(tmp) {
			return nil // the backup itself, when written into the data dir
		}
		rf, err := os.Open(p)
		if err != nil {
			return err
		}
		defer rf.Close()
		fi, err := rf.Stat()
		if err != nil {
			return err
		}
		// A file that grows meanwhile is copied up to its size now.
		return w.add(rel, fi.Size(), fi.Mode().Perm(), io.LimitReader(rf, fi.Size()))
	})
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}

	// 4. SHA256SUMS and the manifest.
	m.Files = w.files
	var sums bytes.Buffer
	for _, fl := range w.files {
		fmt.Fprintf(&sums, "%s  %s\n", fl.SHA256, fl.Name)
	}
	if err := w.add(SumsName, int64(sums.Len()), 0o600, &sums); err != nil {
		return m, err
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	mb = append(mb, '\n')
	if err := w.add(ManifestName, int64(len(mb)), 0o600, bytes.NewReader(mb)); err != nil {
		return m, err
	}
	if err := w.tw.Close(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	ok = true
	return m, nil
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// archive writes tar members and records their sums.
type archive struct {
	tw    *tar.Writer
	mtime time.Time
	files []File
}

func (a *archive) add(name string, size int64, mode fs.FileMode, r io.Reader) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: int64(mode.Perm()), ModTime: a.mtime, Format: tar.FormatPAX}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(a.tw, io.TeeReader(io.LimitReader(r, size), h))
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("backup: %s: %d bytes read, %d expected (file shrank while copied)", name, n, size)
	}
	if name != SumsName && name != ManifestName {
		a.files = append(a.files, File{Name: name, Size: size, Mode: uint32(mode.Perm()), SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return nil
}

// ErrNotEmpty is returned by Restore for a data dir that holds anything.
var ErrNotEmpty = errors.New("data dir is not empty")

// CheckEmpty returns ErrNotEmpty (wrapped, naming an entry) when data
// exists and holds anything.
func CheckEmpty(data string) error {
	ents, err := os.ReadDir(data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		names := make([]string, 0, 3)
		for _, e := range ents[:min(3, len(ents))] {
			names = append(names, e.Name())
		}
		return fmt.Errorf("%w: %s holds %s: restore only into an empty or new data dir", ErrNotEmpty, data, strings.Join(names, ", "))
	}
	return nil
}

// ErrCorrupt marks a backup file that fails its manifest.
var ErrCorrupt = errors.New("backup file corrupt")

// Extract unpacks backup file into the empty or new data dir data,
// checking every member against the manifest; on any failure it removes
// what it wrote. It returns the manifest.
func Extract(file, data string) (m Manifest, err error) {
	if err := CheckEmpty(data); err != nil {
		return m, err
	}
	f, err := os.Open(file)
	if err != nil {
		return m, err
	}
	defer f.Close()
	if err := os.MkdirAll(data, 0o700); err != nil {
		return m, err
	}
	defer func() {
		if err != nil {
			ents, _ := os.ReadDir(data)
			for _, e := range ents {
				os.RemoveAll(filepath.Join(data, e.Name()))
			}
		}
	}()
	tr := tar.NewReader(f)
	got := map[string]File{}
	var order []string
	var manifest, sums []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		name := hdr.Name
		if hdr.Typeflag != tar.TypeReg || name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "\\") {
			return m, fmt.Errorf("%w: member %q is not a plain relative file", ErrCorrupt, name)
		}
		if _, dup := got[name]; dup || manifest != nil {
			return m, fmt.Errorf("%w: member %q repeated or after the manifest", ErrCorrupt, name)
		}
		switch name {
		case ManifestName:
			if manifest, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
				return m, fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			continue
		case SumsName:
			if sums, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
				return m, fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			continue
		}
		p := filepath.Join(data, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return m, err
		}
		mode := fs.FileMode(hdr.Mode).Perm() &^ 0o022
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
		if err != nil {
			return m, err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(out, h), tr)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) {
			return m, fmt.Errorf("%w: %s cut short", ErrCorrupt, name)
		}
		if err != nil {
			return m, fmt.Errorf("restore %s: %w", name, err)
		}
		got[name] = File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		order = append(order, name)
	}
	if manifest == nil {
		return m, fmt.Errorf("%w: no %s (a cut-short file?)", ErrCorrupt, ManifestName)
	}
	if err := json.Unmarshal(manifest, &m); err != nil || m.Format != Format {
		return m, fmt.Errorf("%w: %s is not a %s manifest: %v", ErrCorrupt, ManifestName, Format, err)
	}
	var problems []string
	listed := map[string]bool{}
	for _, fl := range m.Files {
		listed[fl.Name] = true
		g, ok := got[fl.Name]
		switch {
		case !ok:
			problems = append(problems, fl.Name+" is missing")
		case g.Size != fl.Size || g.SHA256 != fl.SHA256:
			problems = append(problems, fl.Name+" does not match its SHA-256")
		}
	}
	for _, name := range order {
		if !listed[name] {
			problems = append(problems, name+" is not in the manifest")
		}
	}
	if sums != nil {
		var want bytes.Buffer
		for _, fl := range m.Files {
			fmt.Fprintf(&want, "%s  %s\n", fl.SHA256, fl.Name)
		}
		if !bytes.Equal(want.Bytes(), sums) {
			problems = append(problems, SumsName+" disagrees with the manifest")
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return m, fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	return m, nil
}
