package upgrade

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/testtool"
)

// pgFigures is what a PostgreSQL store holds, as a release recorded it in
// expected/postgres.json: the health counters, the contacts of the range,
// the rollups, and the aggregates (their count, hits and a digest of every
// row in key order).
type pgFigures struct {
	From, To      time.Time
	Health        store.Health
	Contacts      int64
	Rollups       []store.Rollup
	DayIPs        int
	Hits          uint64
	DayIPsSHA256  string
	SchemaVersion int
}

// figures reads s's figures over [from, to).
func figures(t *testing.T, s *postgres.EventStore, from, to time.Time) pgFigures {
	t.Helper()
	f := aggregates(t, s, from, to)
	var err error
	if f.Health, err = s.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.Contacts, err = s.CountEvents(t.Context(), from, to); err != nil {
		t.Fatal(err)
	}
	return f
}

// aggregates reads the rollups and aggregates of either store over [from,
// to): their count, hits and a digest of every row in key order.
func aggregates(t *testing.T, s store.EventStore, from, to time.Time) pgFigures {
	t.Helper()
	f := pgFigures{From: from, To: to}
	var err error
	if f.Rollups, err = s.Rollups(t.Context(), from, to); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	err = s.ScanDayIPs(t.Context(), from, to, func(a *store.DayIP) error {
		f.DayIPs++
		f.Hits += a.Hits
		fmt.Fprintf(h, "%d|%s|%s|%s|%s|%d|%s|%d|%d|%d|%d|%q\n", a.Day.Unix(), a.IP, a.Family, a.Case, a.Country, a.ASN, a.Org,
			a.FirstSeen.UnixNano(), a.LastSeen.UnixNano(), a.Hits, a.Protocols, a.BotIDs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.DayIPsSHA256 = hex.EncodeToString(h.Sum(nil))
	return f
}

// TestUpgradePostgres restores each release's PostgreSQL dump
// (testdata/<release>/postgres.sql.gz, written by that release's PostgreSQL
// store from the raw events of its SQLite fixture) into a new database,
// opens it with this build, which migrates it, and requires every figure
// the release recorded. The figures must also be those of the release's
// SQLite store: one takedown, two stores, the same aggregates.
func TestUpgradePostgres(t *testing.T) {
	psql := testtool.Need(t, "psql", "postgresql-client-15")
	dumps, _ := filepath.Glob(filepath.Join("testdata", "*", "postgres.sql.gz"))
	if len(dumps) == 0 {
		t.Fatal("no PostgreSQL fixture in testdata: run scripts/make-upgrade-fixture.sh")
	}
	srv := pgtest.Start(t, pgtest.Options{})
	for _, dump := range dumps {
		dir := filepath.Dir(dump)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, "expected", "postgres.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want pgFigures
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			dsn := srv.NewDatabase(t)
			f, err := os.Open(dump)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			restore := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn)
			restore.Stdin = zr
			if out, err := restore.CombinedOutput(); err != nil {
				t.Fatalf("psql < %s: %v\n%s", dump, err, out)
			}
			db, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatalf("this build cannot open the %s PostgreSQL store: %v", filepath.Base(dir), err)
			}
			defer db.Close()
			s := db.Events()
			got := figures(t, s, want.From, want.To)
			got.SchemaVersion = want.SchemaVersion
			if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
				t.Errorf("figures of the migrated store differ from what the release recorded\ngot:  %s\nwant: %s", g, w)
			}
			// And those of the release's SQLite store, from the same events.
			sq := sqliteFigures(t, filepath.Join(dir, "data"), want.From, want.To)
			if sq.DayIPsSHA256 != got.DayIPsSHA256 || sq.Hits != got.Hits || !slices.Equal(sq.Rollups, got.Rollups) {
				t.Errorf("the PostgreSQL and SQLite stores of %s disagree: %d aggregates %d hits vs SQLite's %d and %d", filepath.Base(dir), got.DayIPs, got.Hits, sq.DayIPs, sq.Hits)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sqliteFigures reads the aggregates of a copy of the SQLite fixture in
// data over [from, to) the way figures reads PostgreSQL's.
func sqliteFigures(t *testing.T, data string, from, to time.Time) pgFigures {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(cp, os.DirFS(data)); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenDir(t.Context(), cp)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := sqlite.NewEventStore(t.Context(), db, sqlite.EventStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	if err := es.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return aggregates(t, es, from, to)
}

// TestMakePostgresFixture writes a release's PostgreSQL fixture: with
// TAKEDOWN_MAKE_PG_FIXTURE=testdata/<release> (scripts/make-upgrade-fixture.sh
// sets it), it stores the raw events of that release's SQLite fixture in a
// new PostgreSQL database through this build's PostgreSQL store, in
// batches as a collector would, dumps it with pg_dump into
// <release>/postgres.sql.gz and records its figures in
// <release>/expected/postgres.json. Without the variable it does nothing: it
// is the generator, not a check.
func TestMakePostgresFixture(t *testing.T) {
	dir := os.Getenv("TAKEDOWN_MAKE_PG_FIXTURE")
	if dir == "" {
		t.Skip("generator: set TAKEDOWN_MAKE_PG_FIXTURE=testdata/<release>")
	}
	pgDump := testtool.Need(t, "pg_dump", "postgresql-client-15")
	cp := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(cp, os.DirFS(filepath.Join(dir, "data"))); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenDir(t.Context(), cp)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.SQL().QueryContext(t.Context(), `SELECT record FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for rows.Next() {
		var rec []byte
		if err := rows.Scan(&rec); err != nil {
			t.Fatal(err)
		}
		e, err := event.UnmarshalJSONL(rec)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	rows.Close()
	if len(evs) == 0 {
		t.Fatal("the SQLite fixture holds no raw events")
	}
	first, last := store.DayOf(evs[0].Timestamp), store.DayOf(evs[0].Timestamp)
	for _, e := range evs {
		first, last = min(first, store.DayOf(e.Timestamp)), max(last, store.DayOf(e.Timestamp))
	}
	from, to := time.Unix(first, 0).UTC(), time.Unix(last+86400, 0).UTC()

	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	pdb, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	s := pdb.Events()
	for lo := 0; lo < len(evs); lo += 1000 {
		hi := min(lo+1000, len(evs))
		if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: evs[lo:hi], Received: uint64(hi - lo)}); err != nil {
			t.Fatal(err)
		}
	}
	f := figures(t, s, from, to)
	var version int
	if err := s.Pool().QueryRow(t.Context(), `SELECT MAX(version) FROM schema_migrations WHERE component = 'events'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	f.SchemaVersion = version
	out, err := exec.Command(pgDump, "--no-owner", "--no-privileges", "--format=plain", "-d", dsn).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(out)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "postgres.sql.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "expected", "postgres.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s/postgres.sql.gz (%d bytes of SQL, %d events, schema version %d)", dir, len(out), len(evs), version)
}
