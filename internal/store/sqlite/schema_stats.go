package sqlite

// statsMigrations is the schema of the analytics' own tables (caches of
// per-day address sets), owned by package stats. Append only.
var statsMigrations = []string{}
