package sqlite

// statsMigrations is the schema of the analytics' own tables (caches of
// per-day address sets), owned by package stats. Append only.
//
// stats_day_sets holds, per closed UTC day (unix seconds of its midnight),
// the encoded Roaring sets of package stats: part ” is the overall sets,
// the other parts one dimension each (country, asn, family, case). fp is
// the day's fingerprint when the sets were built (StatsStore.Fingerprints):
// a row whose fp differs from the current one is stale and rebuilt. The
// rows are a cache: deleting them loses nothing.
var statsMigrations = []string{
	`CREATE TABLE stats_day_sets (
		day INTEGER NOT NULL,
		part TEXT NOT NULL,
		fp INTEGER NOT NULL,
		data BLOB NOT NULL
	);
	CREATE UNIQUE INDEX stats_day_sets_key ON stats_day_sets (day, part);`,
	`-- Hourly sets (internal/stats/hourly.go, docs/counting.md): per UTC day
	-- and part ("day", "h00"…"h23", "k:country", "k:asn", "k:case") the
	-- encoded Roaring sets the event writer adds in the transaction that
	-- writes the aggregates, one blob per write, merged by the writer when
	-- a part has more than stats.CompactAfter. A rowid table: the blobs
	-- are large (megabytes once merged).
	CREATE TABLE stats_sets (
		id INTEGER PRIMARY KEY,
		day INTEGER NOT NULL,
		part TEXT NOT NULL,
		data BLOB NOT NULL
	);
	CREATE INDEX stats_sets_part ON stats_sets (day, part, id);
	-- sets_from is the first day whose aggregates are all written with
	-- their sets: the day after the last one aggregated before this
	-- migration (any day on a new store). Older days are answered from
	-- their aggregates as before.
	CREATE TABLE stats_sets_state (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		sets_from INTEGER NOT NULL
	);
	INSERT INTO stats_sets_state SELECT 1, COALESCE(MAX(day) + 86400, -4611686018427387904) FROM event_day_ip;`,
	`-- The raw events of the at most two hours a window cuts (stats'
	-- ScanEventSources) are read through this index, not by a scan of
	-- their whole day.
	CREATE INDEX IF NOT EXISTS events_ts ON events (ts);`,
	`-- The raw scans by time use the events' (day, ts, id) index
	-- (eventsMigrations) since.
	DROP INDEX IF EXISTS events_ts;`,
}
