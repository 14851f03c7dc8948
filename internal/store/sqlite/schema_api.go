package sqlite

// apiMigrations is the schema of API tokens and dashboard sessions, owned
// by package api. Append only.
var apiMigrations = []string{}
