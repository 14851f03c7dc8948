package sqlite

// registryMigrations is the schema of court orders, indicators and the
// audit trail. Append only.
var registryMigrations = []string{
	`CREATE TABLE orders (
		id INTEGER PRIMARY KEY,
		case_id TEXT NOT NULL UNIQUE,
		court TEXT NOT NULL,
		title TEXT NOT NULL DEFAULT '',
		family TEXT NOT NULL DEFAULT '',
		notes TEXT NOT NULL DEFAULT '',
		effective INTEGER NOT NULL, -- unix nanoseconds, UTC
		expires INTEGER NOT NULL,
		revoked INTEGER NOT NULL DEFAULT 0,
		revoked_at INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL
	);
	CREATE TABLE indicators (
		id INTEGER PRIMARY KEY,
		order_id INTEGER NOT NULL REFERENCES orders(id),
		kind TEXT NOT NULL,
		value TEXT NOT NULL,
		family TEXT NOT NULL DEFAULT '',
		note TEXT NOT NULL DEFAULT '',
		source TEXT NOT NULL DEFAULT '',
		valid_from INTEGER NOT NULL DEFAULT 0,
		valid_until INTEGER NOT NULL DEFAULT 0,
		UNIQUE (order_id, kind, value)
	);
	CREATE INDEX indicators_value ON indicators(value);
	CREATE TABLE audit (
		id INTEGER PRIMARY KEY,
		at INTEGER NOT NULL,
		actor TEXT NOT NULL,
		order_id INTEGER,
		action TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE registry_serial (id INTEGER PRIMARY KEY CHECK (id = 1), serial INTEGER NOT NULL);
	INSERT INTO registry_serial VALUES (1, 0);`,
	// Generated names of a dga indicator that the collateral-damage guard
	// refused at import (issue 19): never served, listed by order show.
	`CREATE TABLE generated_skips (
		indicator_id INTEGER NOT NULL REFERENCES indicators(id),
		name TEXT NOT NULL,
		day INTEGER NOT NULL, -- unix nanoseconds of the UTC day
		reason TEXT NOT NULL,
		PRIMARY KEY (indicator_id, name, day)
	);`,
}
