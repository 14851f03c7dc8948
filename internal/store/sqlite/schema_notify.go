package sqlite

// notifyMigrations is the schema of subscribers and the delivery ledger,
// owned by package notify (see notify.go). Append only.
//
// notify_subscribers holds one row per subscriber: contacts and formats
// are newline-separated, networks as netscope.Networks.String, created in
// unix nanoseconds.
//
// notify_deliveries is the ledger: one row per (subscriber, UTC day as
// unix seconds), with the composed message and its Message-ID, the state
// (pending, sent, failed, in_doubt), the attempts, the next attempt and
// the lease (unix nanoseconds; 0: none) that keeps two processes from
// sending the same delivery at once, and committing (see notify.Store's
// MarkCommitting).
var notifyMigrations = []string{
	`CREATE TABLE notify_subscribers (
		id TEXT PRIMARY KEY,
		org TEXT NOT NULL,
		contacts TEXT NOT NULL,
		networks TEXT NOT NULL,
		formats TEXT NOT NULL,
		cadence TEXT NOT NULL,
		tlp TEXT NOT NULL,
		created INTEGER NOT NULL
	);
	CREATE TABLE notify_deliveries (
		subscriber TEXT NOT NULL,
		day INTEGER NOT NULL,
		message_id TEXT NOT NULL UNIQUE,
		state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt INTEGER NOT NULL DEFAULT 0,
		lease_until INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		created INTEGER NOT NULL,
		sent INTEGER NOT NULL DEFAULT 0,
		rows INTEGER NOT NULL,
		recipients TEXT NOT NULL,
		message BLOB NOT NULL,
		PRIMARY KEY (subscriber, day)
	);
	CREATE INDEX notify_deliveries_pending ON notify_deliveries (state, next_attempt) WHERE state = 'pending';`,
	// State in_doubt and the committing flag (1 from the moment the whole
	// message was handed to the server until the answer is recorded).
	// SQLite cannot change a CHECK constraint in place: the table is
	// rebuilt.
	`CREATE TABLE notify_deliveries_v2 (
		subscriber TEXT NOT NULL,
		day INTEGER NOT NULL,
		message_id TEXT NOT NULL UNIQUE,
		state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'in_doubt')),
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt INTEGER NOT NULL DEFAULT 0,
		lease_until INTEGER NOT NULL DEFAULT 0,
		committing INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		created INTEGER NOT NULL,
		sent INTEGER NOT NULL DEFAULT 0,
		rows INTEGER NOT NULL,
		recipients TEXT NOT NULL,
		message BLOB NOT NULL,
		PRIMARY KEY (subscriber, day)
	);
	INSERT INTO notify_deliveries_v2 (subscriber, day, message_id, state, attempts, next_attempt, lease_until, last_error, created, sent, rows, recipients, message)
		SELECT subscriber, day, message_id, state, attempts, next_attempt, lease_until, last_error, created, sent, rows, recipients, message FROM notify_deliveries;
	DROP TABLE notify_deliveries;
	ALTER TABLE notify_deliveries_v2 RENAME TO notify_deliveries;
	CREATE INDEX notify_deliveries_pending ON notify_deliveries (state, next_attempt) WHERE state = 'pending';`,
}
