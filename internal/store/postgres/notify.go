package postgres

// notifyMigrations is the schema of the subscribers and the delivery
// ledger, as SQLite's (internal/store/sqlite/schema_notify.go). Append
// only.
var notifyMigrations = []string{}
