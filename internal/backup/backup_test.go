package backup

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/evidence"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/sqlite"
)

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func testEvent(i int) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("bk-%06d", i), Timestamp: time.Date(2011, 9, 6, 0, 0, i, 0, time.UTC), Protocol: event.ProtoHTTP, Transport: "tcp",
		SrcIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), SrcPort: 1024, DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80,
		Case: "c-1", Family: "rustock", HTTPMethod: "POST", HTTPURL: "/login.php", HTTPHost: "c2.example",
	}
}

// deployment makes a data dir with n events stored, the first logged of
// them appended to the evidence log (as if the server had not appended the
// rest yet), and a plain file.
func deployment(t *testing.T, n, logged int) (data string, db *sqlite.DB) {
	t.Helper()
	ctx := t.Context()
	data = filepath.Join(t.TempDir(), "data")
	db, err := sqlite.OpenDir(ctx, data)
	must(t, err)
	t.Cleanup(func() { db.Close() })
	es, err := sqlite.NewEventStore(ctx, db, sqlite.EventStoreOptions{})
	must(t, err)
	defer es.Close()
	b := &store.Batch{}
	for i := range n {
		b.Events = append(b.Events, *testEvent(i))
	}
	if _, err := es.WriteBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	l, err := evidence.Open(ctx, filepath.Join(data, "evidence"), evidence.Options{})
	must(t, err)
	recs, err := b.EncodeRecords()
	must(t, err)
	_, err = l.Append(ctx, recs[:logged])
	must(t, err)
	_, err = l.Checkpoint(ctx)
	must(t, err)
	must(t, l.Close())
	must(t, os.WriteFile(filepath.Join(data, "dashboard-users"), []byte("admin:x\n"), 0o600))
	return data, db
}

// TestBackupRestore: the store and the log come back, the log gains the
// stored events it lacked, the manifest lists every member's SHA-256, and
// the file is 0600.
func TestBackupRestore(t *testing.T) {
	data, db := deployment(t, 40, 25)
	out := filepath.Join(t.TempDir(), "b.tar")
	m, err := Create(t.Context(), data, out, Options{Store: db})
	must(t, err)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode: %v %v", fi.Mode(), err)
	}
	if m.Evidence == nil || m.Evidence.Entries != 25 || m.Evidence.Checkpoint != 25 {
		t.Fatalf("manifest evidence %+v", m.Evidence)
	}
	names := map[string]bool{}
	for _, f := range m.Files {
		names[f.Name] = true
		if len(f.SHA256) != 64 {
			t.Errorf("%s: sha256 %q", f.Name, f.SHA256)
		}
	}
	for _, want := range []string{"takedown.db", "evidence/journal", "evidence/key", "evidence/key.pub", "evidence/checkpoints/00000000000000000025", "dashboard-users"} {
		if !names[want] {
			t.Errorf("manifest lacks %s: %v", want, names)
		}
	}
	if names["evidence/lock"] || names["evidence/wlock"] || names["takedown.db-wal"] {
		t.Errorf("manifest holds a lock, derived or live file: %v", names)
	}
	if _, err := Create(t.Context(), data, out, Options{Store: db}); err == nil {
		t.Fatal("backup over an existing file succeeded")
	}

	to := filepath.Join(t.TempDir(), "restored")
	res, err := Restore(t.Context(), out, to, nil)
	must(t, err)
	if res.Health.Stored != 40 || res.Entries != 40 || res.Appended != 15 {
		t.Fatalf("restored: %d stored, %d log entries, %d appended; want 40, 40, 15", res.Health.Stored, res.Entries, res.Appended)
	}
	if _, err := Restore(t.Context(), out, to, nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v", err)
	}
}

// TestCopyLiveTornEntry: an append in progress (a partial last entry) is
// left out of the copy, which then opens cleanly.
func TestCopyLiveTornEntry(t *testing.T) {
	data, _ := deployment(t, 10, 10)
	ev := filepath.Join(data, "evidence")
	f, err := os.OpenFile(filepath.Join(ev, "journal"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	f.Write([]byte{0, 50, 1, 2, 3}) // a length and part of a nonce
	f.Close()
	lc, err := evidence.CopyLive(ev)
	must(t, err)
	defer lc.Close()
	if lc.Entries != 10 {
		t.Fatalf("copied %d entries, want the 10 complete ones", lc.Entries)
	}
	dst := t.TempDir()
	for _, lf := range lc.Files {
		p := filepath.Join(dst, filepath.FromSlash(lf.Name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o700))
		b, err := io.ReadAll(lf.Open())
		must(t, err)
		must(t, os.WriteFile(p, b, 0o600))
	}
	l, err := evidence.Open(t.Context(), dst, evidence.Options{})
	must(t, err)
	defer l.Close()
	if l.Size() != 10 {
		t.Fatalf("copy opens with %d entries", l.Size())
	}
}

// rewrite copies a backup, applying edit to each member (returning the
// new content, or nil to drop it) and optionally adding one.
func rewrite(t *testing.T, src string, edit func(name string, b []byte) []byte, extra *tar.Header, extraBody []byte) string {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	out := filepath.Join(t.TempDir(), "edited.tar")
	f, err := os.Create(out)
	must(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	if extra != nil {
		extra.Size = int64(len(extraBody))
		must(t, tw.WriteHeader(extra))
		tw.Write(extraBody)
	}
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		b, err := io.ReadAll(tr)
		must(t, err)
		b = edit(h.Name, b)
		if b == nil {
			continue
		}
		h.Size = int64(len(b))
		must(t, tw.WriteHeader(h))
		tw.Write(b)
	}
	must(t, tw.Close())
	return out
}

// TestRestoreRefuses: a damaged, cut or padded file, or one with a member
// outside the data dir, is refused as corrupt and leaves the dir empty.
func TestRestoreRefuses(t *testing.T) {
	data, db := deployment(t, 5, 5)
	good := filepath.Join(t.TempDir(), "b.tar")
	_, err := Create(t.Context(), data, good, Options{Store: db})
	must(t, err)
	cases := map[string]string{
		"member changed": rewrite(t, good, func(n string, b []byte) []byte {
			if n == "dashboard-users" {
				return []byte("admin:y\n")
			}
			return b
		}, nil, nil),
		"member dropped": rewrite(t, good, func(n string, b []byte) []byte {
			if n == "evidence/key" {
				return nil
			}
			return b
		}, nil, nil),
		"no manifest": rewrite(t, good, func(n string, b []byte) []byte {
			if n == ManifestName {
				return nil
			}
			return b
		}, nil, nil),
		"unlisted member": rewrite(t, good, func(_ string, b []byte) []byte { return b },
			&tar.Header{Name: "extra", Mode: 0o600, Typeflag: tar.TypeReg}, []byte("x")),
		"path outside": rewrite(t, good, func(_ string, b []byte) []byte { return b },
			&tar.Header{Name: "../escape", Mode: 0o600, Typeflag: tar.TypeReg}, []byte("x")),
		"manifest edited to match nothing": rewrite(t, good, func(n string, b []byte) []byte {
			if n == ManifestName {
				var m Manifest
				must(t, json.Unmarshal(b, &m))
				m.Files[0].SHA256 = strings.Repeat("0", 64)
				b, _ = json.Marshal(m)
			}
			return b
		}, nil, nil),
	}
	raw, err := os.ReadFile(good)
	must(t, err)
	cut := filepath.Join(t.TempDir(), "cut.tar")
	must(t, os.WriteFile(cut, raw[:len(raw)/2], 0o600))
	cases["cut short"] = cut
	for name, file := range cases {
		t.Run(name, func(t *testing.T) {
			to := filepath.Join(t.TempDir(), "r")
			_, err := Restore(t.Context(), file, to, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore: %v, want ErrCorrupt", err)
			}
			ents, _ := os.ReadDir(to)
			if len(ents) != 0 {
				t.Fatalf("left %d entries in the data dir", len(ents))
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(to), "escape")); err == nil {
				t.Fatal("a member was written outside the data dir")
			}
		})
	}
}
