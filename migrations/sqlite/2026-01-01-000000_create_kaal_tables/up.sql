-- The three kaal tables, with the Ruby gem's table, column and index names so Ruby and Rust
-- nodes can share one database. Every statement is IF NOT EXISTS: a database whose tables
-- the gem (ActiveRecord) already created is accepted as it is.
--
-- Times are UTC text in ActiveRecord's format, `YYYY-MM-DD HH:MM:SS.ffffff`: the fixed-width
-- prefix makes text order equal time order, so comparisons and indexes work on the text.
--
-- `id` is a plain INTEGER PRIMARY KEY (no AUTOINCREMENT): with AUTOINCREMENT every lost
-- claim (a conflicting insert) would still write sqlite_sequence.
--
-- created_at / updated_at have defaults so that writers which leave them out (the current
-- Ruby gem has no such columns on kaal_locks and kaal_dispatches) can still insert.

CREATE TABLE IF NOT EXISTS kaal_locks (
    id INTEGER PRIMARY KEY NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    acquired_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_at DATETIME(6) NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_locks_on_key ON kaal_locks ("key");
CREATE INDEX IF NOT EXISTS index_kaal_locks_on_expires_at ON kaal_locks (expires_at);

CREATE TABLE IF NOT EXISTS kaal_dispatches (
    id INTEGER PRIMARY KEY NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    fire_time DATETIME(6) NOT NULL,
    dispatched_at DATETIME(6) NOT NULL,
    node_id VARCHAR(255) NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'dispatched',
    created_at DATETIME(6) NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_at DATETIME(6) NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_dispatches_on_key_and_fire_time
    ON kaal_dispatches ("key", fire_time);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_dispatched_at ON kaal_dispatches (dispatched_at);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_status ON kaal_dispatches (status);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_node_id ON kaal_dispatches (node_id);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_fire_time ON kaal_dispatches (fire_time);

CREATE TABLE IF NOT EXISTS kaal_definitions (
    id INTEGER PRIMARY KEY NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    cron VARCHAR(255) NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    source VARCHAR(50) NOT NULL DEFAULT 'code',
    metadata TEXT NOT NULL DEFAULT '{}',
    disabled_at DATETIME(6),
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_definitions_on_key ON kaal_definitions ("key");
CREATE INDEX IF NOT EXISTS index_kaal_definitions_on_enabled ON kaal_definitions (enabled);
CREATE INDEX IF NOT EXISTS index_kaal_definitions_on_source ON kaal_definitions (source);
