package sqlite

// eventsMigrations is the schema of raw events and aggregates, owned by the
// event pipeline. Append only.
//
// Times: day is unix seconds of a UTC midnight; ts, first_seen and
// last_seen are unix nanoseconds. ip is the address's bytes, 4 for IPv4
// (IPv4-mapped IPv6 is unmapped) and 16 for IPv6, so a CIDR is a byte range
// and byte order is address order within a family.
var eventsMigrations = []string{
	`-- Raw events: appended in seq order (never reused, so the aggregate
	-- watermark stays valid after purges), with a small unique index on
	-- (day, id) for idempotence and purges.
	CREATE TABLE events (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		day INTEGER NOT NULL,
		id TEXT NOT NULL,
		ts INTEGER NOT NULL,
		case_id TEXT NOT NULL DEFAULT '',
		record BLOB NOT NULL -- the JSON-lines record (docs/events.md)
	);
	CREATE UNIQUE INDEX events_day_id ON events (day, id);

	-- One row per (UTC day, source address, family); attributes are those
	-- of the key's first stored event. prev_protocols is the mask before
	-- the last update, read back by the writer to move the rollups.
	CREATE TABLE event_day_ip (
		day INTEGER NOT NULL,
		ip BLOB NOT NULL,
		family TEXT NOT NULL,
		case_id TEXT NOT NULL,
		country TEXT NOT NULL,
		asn INTEGER NOT NULL,
		org TEXT NOT NULL,
		first_seen INTEGER NOT NULL,
		last_seen INTEGER NOT NULL,
		hits INTEGER NOT NULL,
		protocols INTEGER NOT NULL,
		prev_protocols INTEGER NOT NULL DEFAULT 0,
		bot_ids TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (day, ip, family)
	) WITHOUT ROWID;
	-- No secondary index: every reader works day by day (a window is a
	-- range of days; one address or CIDR is a seek per day), and each
	-- index would cost a B-tree insert per new key on the write path.

	-- Daily totals per (day, country, ASN, family, case): ips counts sources
	-- with a direct connection, resolver_ips those seen only through DNS.
	CREATE TABLE event_rollups (
		day INTEGER NOT NULL,
		country TEXT NOT NULL,
		asn INTEGER NOT NULL,
		family TEXT NOT NULL,
		case_id TEXT NOT NULL,
		ips INTEGER NOT NULL,
		resolver_ips INTEGER NOT NULL,
		hits INTEGER NOT NULL,
		PRIMARY KEY (day, country, asn, family, case_id)
	) WITHOUT ROWID;

	-- Aggregates are written in sorted runs, not per batch: watermark is
	-- the last events rowid they include. After a crash the writer rebuilds
	-- them from the events after it.
	CREATE TABLE event_aggregate_state (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		watermark INTEGER NOT NULL
	);
	INSERT INTO event_aggregate_state VALUES (1, 0);

	-- Pipeline health since the data dir was created.
	CREATE TABLE event_health (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		received INTEGER NOT NULL,
		stored INTEGER NOT NULL,
		dropped INTEGER NOT NULL
	);
	INSERT INTO event_health VALUES (1, 0, 0, 0);`,
	`-- Pipeline health per listener (event.Event's listener; "unnamed" for
	-- events that name none), moved in the same transaction as
	-- event_health.
	CREATE TABLE event_listener_health (
		name TEXT PRIMARY KEY,
		received INTEGER NOT NULL,
		stored INTEGER NOT NULL,
		dropped INTEGER NOT NULL
	) WITHOUT ROWID;`,
	`-- Per-source budget (docs/security.md): a summary record stands for
	-- several contacts (its "count"). summarised counts the contacts
	-- beyond the first of every stored summary record; event_day_summarised
	-- the same per UTC day, so that the contacts of a day are its records
	-- plus these. Moved in the same transaction as event_health.
	ALTER TABLE event_health ADD COLUMN summarised INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE event_day_summarised (
		day INTEGER PRIMARY KEY,
		contacts INTEGER NOT NULL
	);`,
	`-- Compact raw events (docs/events.md, "Storage"): a record is the
	-- compact encoding (event.AppendCompact; a JSON-lines record, first
	-- byte '{', for rows written before and for the rare event it cannot
	-- carry), without the ID and timestamp the columns hold; repeated
	-- strings are rows of event_strings. id becomes the packed ID
	-- (event.PackID: a kind byte, then at most 16 bytes for the IDs this
	-- product makes); ip is the source address's bytes, as in event_day_ip, so
	-- that one network's events of a day are a range of (day, ip). Older
	-- rows keep ip NULL and are read through their record. case_id is no
	-- longer written: nothing reads it, and the record holds the case.
	CREATE TABLE event_strings (
		id INTEGER PRIMARY KEY,
		s TEXT NOT NULL UNIQUE
	);
	ALTER TABLE events ADD COLUMN ip BLOB;
	UPDATE events SET id = CASE
		WHEN length(id) = 33 AND substr(id, 17, 1) = '-' AND NOT (substr(id, 1, 16) || substr(id, 18)) GLOB '*[^0-9a-f]*'
			-- the counter without its leading zero bytes
			THEN unhex('01' || substr(id, 1, 16) || substr(substr(id, 18), 1 + 2 * ((length(substr(id, 18)) - length(ltrim(substr(id, 18), '0'))) / 2)))
		WHEN length(id) = 35 AND substr(id, 1, 3) = 'ss-' AND NOT substr(id, 4) GLOB '*[^0-9a-f]*'
			THEN unhex('02' || substr(id, 4))
		WHEN length(id) = 35 AND substr(id, 1, 3) = 'jl-' AND NOT substr(id, 4) GLOB '*[^0-9a-f]*'
			THEN unhex('03' || substr(id, 4))
		ELSE unhex('00' || hex(id)) END
	WHERE typeof(id) = 'text';
	CREATE INDEX events_day_ip ON events (day, ip);`,
	`-- An aggregate's AS organisation is a row of event_strings (org_ref,
	-- org then ''), like the raw events' strings: written out, it was a
	-- sixth of the store (40 bytes a row, 14 per event at Rustock's three
	-- check-ins a day). org keeps the text when org_ref is 0: rows written
	-- before, and an organisation the string table does not hold.
	ALTER TABLE event_day_ip ADD COLUMN org_ref INTEGER NOT NULL DEFAULT 0;`,
	`-- A key's best direct event for reports (store/detail.go): detail is
	-- its seq in events (-1: a tie, read the key's raw events; 0: no direct
	-- event), detail_rank its store.DetailRank. Keys stored before read as
	-- -2, which no later event changes: their earlier events are unranked.
	ALTER TABLE event_day_ip ADD COLUMN detail INTEGER NOT NULL DEFAULT -2;
	ALTER TABLE event_day_ip ADD COLUMN detail_rank INTEGER NOT NULL DEFAULT 0;`,
	`-- Idempotence and the raw scans by time share one index: (day, ts,
	-- id), unique. An event's timestamp is part of what it is (the IDs
	-- this product makes are a node's counter, or a hash of the row or
	-- line that holds the timestamp), so a repeat has the same day, time
	-- and ID, as it had the same day and ID. (day, id) was a random place
	-- in its index for every Shadowserver row (the ID is a hash), and the
	-- (ts) index a second index to write per event; in (day, ts, id), a
	-- day's events in time order are appended at its end. The stats
	-- component drops its (ts) index (statsMigrations).
	CREATE UNIQUE INDEX events_day_ts_id ON events (day, ts, id);
	DROP INDEX events_day_id;`,
}
