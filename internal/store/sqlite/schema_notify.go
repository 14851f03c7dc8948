package sqlite

// notifyMigrations is the schema of subscribers and the delivery ledger,
// owned by package notify. Append only.
var notifyMigrations = []string{}
