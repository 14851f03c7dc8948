package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
)

// IDs are those earlier releases gave the same rows, so re-importing an
// old file stays a no-op: SHA-256 over "layout\0name\0value\0…" in name
// order, the first 16 bytes in hex (computed independently).
func TestIDsUnchanged(t *testing.T) {
	in := "timestamp,src_ip,protocol\n2011-03-17 10:00:01,192.0.2.7,tcp\n"
	evs, err := ReadShadowserver(strings.NewReader(in), "a.csv")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ss-dbc57cb85c6597998cb4d71a8d8ae68a"; len(evs) != 1 || evs[0].ID != want {
		t.Fatalf("got %+v, want one event with ID %s", evs, want)
	}
}

// endless is a Shadowserver report that never ends: row i has its own
// address.
type endless struct {
	buf []byte
	i   int
}

func (r *endless) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		if r.i == 0 {
			r.buf = append(r.buf, "timestamp,protocol,src_ip\n"...)
		}
		r.i++
		r.buf = fmt.Appendf(r.buf, "2011-03-17 10:00:00,tcp,10.%d.%d.%d\n", r.i>>16&255, r.i>>8&255, r.i&255)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Scan yields events as it reads them: on an input that never ends, it
// hands over the first rows and stops when told.
func TestScanStreams(t *testing.T) {
	errEnough := errors.New("enough")
	for _, format := range []string{FormatShadowserver, FormatJSONL} {
		t.Run(format, func(t *testing.T) {
			var r io.Reader = &endless{}
			if format == FormatJSONL {
				r = &endlessJSONL{}
			}
			var got []string
			err := Scan(r, "endless", format, func(e *event.Event) error {
				got = append(got, e.SrcIP.String())
				if len(got) == 100_000 {
					return errEnough
				}
				return nil
			})
			if !errors.Is(err, errEnough) {
				t.Fatalf("Scan returned %v, want the callback's error", err)
			}
			if got[0] != "10.0.0.1" || got[99_999] != "10.1.134.160" {
				t.Fatalf("first and last addresses %s, %s", got[0], got[99_999])
			}
		})
	}
}

type endlessJSONL struct {
	buf []byte
	i   int
}

func (r *endlessJSONL) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		r.i++
		r.buf = fmt.Appendf(r.buf, `{"v":1,"timestamp":"2011-03-17T10:00:00Z","protocol":"tcp","src_ip":"10.%d.%d.%d"}`+"\n", r.i>>16&255, r.i>>8&255, r.i&255)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// stores returns a new empty SQLite and PostgreSQL store (the latter
// skipped where PostgreSQL is missing) for each subtest.
func stores(t *testing.T) map[string]func(t *testing.T) store.Importer {
	var srv *pgtest.Server
	return map[string]func(t *testing.T) store.Importer{
		"sqlite": func(t *testing.T) store.Importer {
			db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), sqlite.FileName))
			if err != nil {
				t.Fatal(err)
			}
			st, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{MaxPending: 1000})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close(); db.Close() })
			return st
		},
		"postgres": func(t *testing.T) store.Importer {
			if srv == nil {
				srv = pgtest.Start(t, pgtest.Options{})
			}
			st, err := postgres.Open(t.Context(), srv.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st.Events()
		},
	}
}

// writeReport writes n rows of the HTTP layout from offset on: 3 rows per
// address, over two days, every 7th row a machine_name.
func writeReport(t *testing.T, path string, offset, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString(httpHeader + "\n")
	for i := offset; i < offset+n; i++ {
		ip := i / 3
		vals := map[string]string{"timestamp": time.Date(2011, 3, 17, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 7 * time.Second).Format(time.DateTime),
			"protocol": "tcp", "src_ip": fmt.Sprintf("10.%d.%d.%d", ip>>16&255, ip>>8&255, ip&255), "infection": "rustock",
			"src_geo": []string{"US", "DE", "BR"}[ip%3], "src_asn": fmt.Sprint(64500 + ip%5), "http_host": "c2.example"}
		if i%7 == 0 {
			vals["machine_name"] = fmt.Sprintf("PC-%d", ip)
		}
		b.WriteString(row(httpHeader, vals) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

type state struct {
	health  store.Health
	dayIPs  []store.DayIP
	rollups []store.Rollup
}

func stateOf(t *testing.T, st store.EventStore) state {
	t.Helper()
	from, to := time.Date(2011, 3, 16, 0, 0, 0, 0, time.UTC), time.Date(2011, 3, 20, 0, 0, 0, 0, time.UTC)
	if err := st.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var s state
	var err error
	if s.health, err = st.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := st.ScanDayIPs(t.Context(), from, to, func(a *store.DayIP) error { s.dayIPs = append(s.dayIPs, *a); return nil }); err != nil {
		t.Fatal(err)
	}
	if s.rollups, err = st.Rollups(t.Context(), from, to); err != nil {
		t.Fatal(err)
	}
	return s
}

func fileSHA(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Bad rows in two files are all reported as file:line, in order, and
// nothing is stored, although the good rows before them (several batches)
// were already written in the transaction.
func TestImportBadRowsTwoFiles(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")
			writeReport(t, a, 0, 3*chunkRows)
			writeReport(t, b, 3*chunkRows, 100)
			appendLines(t, a, "2011-03-17 25:00:00,tcp,10.0.0.1", strings.Repeat(",", strings.Count(httpHeader, ",")))
			appendLines(t, b, "x")
			before := stateOf(t, st)
			_, err := Import(t.Context(), st, []string{a, b, filepath.Join(dir, "missing.csv")}, Options{Format: FormatShadowserver, Workers: 3})
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("err %v, want *Error", err)
			}
			var got []string
			for _, p := range ie.Problems {
				got = append(got, p.String())
			}
			fields := strings.Count(httpHeader, ",") + 1
			want := []string{
				fmt.Sprintf("%s:%d: 3 fields, the header has %d", a, 3*chunkRows+2, fields),
				fmt.Sprintf(`%s:%d: bad timestamp "" (want YYYY-MM-DD HH:MM:SS, UTC); empty src_ip`, a, 3*chunkRows+3),
				fmt.Sprintf("%s:%d: 1 fields, the header has %d", b, 102, fields),
				filepath.Join(dir, "missing.csv") + ": open " + filepath.Join(dir, "missing.csv") + ": no such file or directory",
			}
			if !slices.Equal(got, want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if after := stateOf(t, st); !reflect.DeepEqual(after, before) {
				t.Fatalf("a failed import changed the store: %+v", after.health)
			}
		})
	}
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
}

// An import in many chunks on several workers stores exactly what the
// whole input in one batch stores, hands over each file's SHA-256 and row
// count, spools the fresh records, and a second import stores nothing.
func TestImportIdempotentAndSameAsOneBatch(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st, ref := open(t), open(t)
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")
			writeReport(t, a, 0, 2*chunkRows+17)
			writeReport(t, b, 2*chunkRows, 1000) // 17 rows repeat a's
			all, err := ReadFiles([]string{a, b}, FormatShadowserver)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Store(t.Context(), ref, all, nil); err != nil {
				t.Fatal(err)
			}
			for i, want := range []int{len(all) - 17, 0} {
				res, err := Import(t.Context(), st, []string{a, b}, Options{Format: FormatShadowserver, Workers: 4, SpoolDir: dir})
				if err != nil {
					t.Fatalf("import %d: %v", i+1, err)
				}
				wantFiles := []FileStat{{a, fileSHA(t, a), fileSize(t, a), 2*chunkRows + 17}, {b, fileSHA(t, b), fileSize(t, b), 1000}}
				if !reflect.DeepEqual(res.Files, wantFiles) || res.Read != len(all) {
					t.Fatalf("import %d: files %+v, read %d; want %+v, %d", i+1, res.Files, res.Read, wantFiles, len(all))
				}
				if res.Inserted != want || res.Duplicates != len(all)-want {
					t.Fatalf("import %d: inserted %d, duplicates %d; want %d, %d", i+1, res.Inserted, res.Duplicates, want, len(all)-want)
				}
				spooled := 0
				ids := map[string]bool{}
				if err := res.EachFresh(func(recs [][]byte) error {
					for _, r := range recs {
						e, err := event.UnmarshalJSONL(r)
						if err != nil || ids[e.ID] {
							return fmt.Errorf("spooled record %q: %v (or a repeated ID)", r, err)
						}
						ids[e.ID] = true
						spooled++
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				res.Close()
				if spooled != want {
					t.Fatalf("import %d: %d fresh records spooled, want %d", i+1, spooled, want)
				}
				got, wantState := stateOf(t, st), stateOf(t, ref)
				if i == 1 { // received moves with each import
					wantState.health.Received += uint64(len(all))
					wantState.health.Listeners[0].Received += uint64(len(all))
				}
				if !reflect.DeepEqual(got, wantState) {
					t.Fatalf("import %d: the store differs from one batch of the same events:\nhealth %+v\nwant   %+v\n%d aggregates, want %d",
						i+1, got.health, wantState.health, len(got.dayIPs), len(wantState.dayIPs))
				}
			}
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A cancelled import stores nothing and leaves no goroutine blocked.
func TestImportCancelled(t *testing.T) {
	st := stores(t)["sqlite"](t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a.csv")
	writeReport(t, a, 0, 10*chunkRows)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	prepare := func(*event.Event) bool {
		n++ // counted racily, only to cancel somewhere in the middle
		if n == 3*chunkRows {
			cancel()
		}
		return true
	}
	before := stateOf(t, st)
	if _, err := Import(ctx, st, []string{a}, Options{Format: FormatShadowserver, Workers: 1, Prepare: prepare}); err == nil {
		t.Fatal("cancelled import succeeded")
	}
	if after := stateOf(t, st); !reflect.DeepEqual(after, before) {
		t.Fatalf("a cancelled import changed the store: %+v", after.health)
	}
}
