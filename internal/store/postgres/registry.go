package postgres

// registryMigrations is the registry's schema (orders, indicators, audit
// trail, serial), as SQLite's (internal/store/sqlite/schema_registry.go).
// Append only.
var registryMigrations = []string{}
