-- The three kaal tables, with the Ruby gem's table, column and index names so Ruby and Rust
-- nodes can share one database. Every statement is IF NOT EXISTS: a database whose tables
-- the gem (ActiveRecord) already created is accepted as it is.
--
-- Times are UTC in `timestamp(6) without time zone`, as ActiveRecord writes them; the lease
-- statements compute them as `statement_timestamp() AT TIME ZONE 'UTC'`, whatever the
-- session's TimeZone. Metadata is `jsonb`. Ids are `bigserial`: lost claims (conflicting
-- inserts) consume sequence values, and 2^63 of them do not run out.
--
-- created_at / updated_at have defaults so that writers which leave them out (the current
-- Ruby gem has no such columns on kaal_locks and kaal_dispatches) can still insert.

CREATE TABLE IF NOT EXISTS kaal_locks (
    id BIGSERIAL PRIMARY KEY,
    "key" VARCHAR(255) NOT NULL,
    acquired_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL,
    expires_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL,
    created_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_locks_on_key ON kaal_locks ("key");
CREATE INDEX IF NOT EXISTS index_kaal_locks_on_expires_at ON kaal_locks (expires_at);

CREATE TABLE IF NOT EXISTS kaal_dispatches (
    id BIGSERIAL PRIMARY KEY,
    "key" VARCHAR(255) NOT NULL,
    fire_time TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL,
    dispatched_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL,
    node_id VARCHAR(255) NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'dispatched',
    created_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_dispatches_on_key_and_fire_time
    ON kaal_dispatches ("key", fire_time);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_dispatched_at ON kaal_dispatches (dispatched_at);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_status ON kaal_dispatches (status);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_node_id ON kaal_dispatches (node_id);
CREATE INDEX IF NOT EXISTS index_kaal_dispatches_on_fire_time ON kaal_dispatches (fire_time);

CREATE TABLE IF NOT EXISTS kaal_definitions (
    id BIGSERIAL PRIMARY KEY,
    "key" VARCHAR(255) NOT NULL,
    cron VARCHAR(255) NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    source VARCHAR(50) NOT NULL DEFAULT 'code',
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    disabled_at TIMESTAMP(6) WITHOUT TIME ZONE,
    created_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_definitions_on_key ON kaal_definitions ("key");
CREATE INDEX IF NOT EXISTS index_kaal_definitions_on_enabled ON kaal_definitions (enabled);
CREATE INDEX IF NOT EXISTS index_kaal_definitions_on_source ON kaal_definitions (source);
