package sqlite

// apiMigrations is the schema of API tokens, owned by package api (see
// tokens.go), and of the dashboard's login sessions (sessions.go) and
// users (users.go). Append only.
//
// api_tokens holds one row per token: its public id, the SHA-256 of its
// secret (the secret itself is never stored), role, networks (as
// netscope.Networks.String), note and times in unix nanoseconds (0: none).
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
	// web_sessions holds one row per dashboard session under the SHA-256
	// of its cookie value (the value itself is never stored); expires in
	// unix nanoseconds.
	`CREATE TABLE web_sessions (
		key BLOB PRIMARY KEY,
		user TEXT NOT NULL,
		role TEXT NOT NULL,
		csrf TEXT NOT NULL,
		expires INTEGER NOT NULL
	);
	CREATE INDEX web_sessions_expires ON web_sessions (expires);`,
	// The API's reads of one network's rows (select.go): a network token
	// named by ASN or country reads its rows through these indexes, day by
	// day, instead of every row of the window. They cost one B-tree
	// insert each per new aggregate key on the write path.
	`CREATE INDEX event_day_ip_asn ON event_day_ip (asn, day);
	CREATE INDEX event_day_ip_country ON event_day_ip (country, day);`,
	// dashboard_users holds the dashboard's users (users.go), in the
	// store as on PostgreSQL, where several dashboard nodes share them:
	// name, role (admin or analyst) and the password's PBKDF2 hash in
	// web.HashPassword's form (the password itself is never stored).
	`CREATE TABLE dashboard_users (
		name TEXT PRIMARY KEY,
		role TEXT NOT NULL,
		hash TEXT NOT NULL
	);`,
}
