-- The three kaal tables, with the Ruby gem's table, column and index names so Ruby and Rust
-- nodes can share one database. Verified on MariaDB 10.11; written for MySQL 8.0.13+ too.
--
-- * Every table is CREATE TABLE IF NOT EXISTS with its indexes declared inside it, so a
--   database whose tables the gem (ActiveRecord) already created is accepted as it is, and a
--   second run does nothing (MySQL 8 has no CREATE INDEX IF NOT EXISTS; declaring the indexes
--   in the table keeps one file valid on both servers). kaal checks at start that the unique
--   indexes its statements rely on exist.
-- * `key` is a reserved word: always quoted.
-- * `key` columns use the binary collation utf8mb4_bin: keys that differ only in case or
--   accents are different keys. (utf8mb4_bin is PAD SPACE: 'a' and 'a ' compare equal. Lock
--   keys kaal builds end in a digit, so this never matters for them.)
-- * Times are UTC DATETIME(6) (microseconds). Defaults use UTC_TIMESTAMP(6), not
--   CURRENT_TIMESTAMP, which follows the session's time zone.
-- * metadata is JSON (on MariaDB an alias of LONGTEXT with a JSON_VALID check).

CREATE TABLE IF NOT EXISTS kaal_locks (
    id BIGINT NOT NULL AUTO_INCREMENT,
    `key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    acquired_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    updated_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    PRIMARY KEY (id),
    UNIQUE KEY index_kaal_locks_on_key (`key`),
    KEY index_kaal_locks_on_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS kaal_dispatches (
    id BIGINT NOT NULL AUTO_INCREMENT,
    `key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    fire_time DATETIME(6) NOT NULL,
    dispatched_at DATETIME(6) NOT NULL,
    node_id VARCHAR(255) NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'dispatched',
    created_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    updated_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    PRIMARY KEY (id),
    UNIQUE KEY index_kaal_dispatches_on_key_and_fire_time (`key`, fire_time),
    KEY index_kaal_dispatches_on_dispatched_at (dispatched_at),
    KEY index_kaal_dispatches_on_status (status),
    KEY index_kaal_dispatches_on_node_id (node_id),
    KEY index_kaal_dispatches_on_fire_time (fire_time)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS kaal_definitions (
    id BIGINT NOT NULL AUTO_INCREMENT,
    `key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    cron VARCHAR(255) NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    source VARCHAR(50) NOT NULL DEFAULT 'code',
    metadata JSON NOT NULL DEFAULT ('{}'),
    disabled_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY index_kaal_definitions_on_key (`key`),
    KEY index_kaal_definitions_on_enabled (enabled),
    KEY index_kaal_definitions_on_source (source)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
