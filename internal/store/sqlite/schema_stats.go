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
}
