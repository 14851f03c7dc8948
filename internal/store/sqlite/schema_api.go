package sqlite

// apiMigrations is the schema of API tokens, owned by package api (see
// tokens.go). Append only.
//
// api_tokens holds one row per token: its public id, the SHA-256 of its
// secret (the secret itself is never stored), role, networks (as
// token.Networks.String), note and times in unix nanoseconds (0: none).
var apiMigrations = []string{
	`CREATE TABLE api_tokens (
		id TEXT PRIMARY KEY,
		hash BLOB NOT NULL UNIQUE,
		role TEXT NOT NULL,
		networks TEXT NOT NULL DEFAULT '',
		note TEXT NOT NULL DEFAULT '',
		created INTEGER NOT NULL,
		expires INTEGER NOT NULL DEFAULT 0,
		revoked INTEGER NOT NULL DEFAULT 0
	);`,
}
