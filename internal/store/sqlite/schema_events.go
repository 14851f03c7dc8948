package sqlite

// eventsMigrations is the schema of raw events and aggregates, owned by the
// event pipeline. Append only.
var eventsMigrations = []string{}
