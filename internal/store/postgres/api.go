package postgres

// apiMigrations is the schema of API tokens, dashboard sessions and
// dashboard users, as SQLite's (internal/store/sqlite/schema_api.go).
// Append only.
var apiMigrations = []string{}
