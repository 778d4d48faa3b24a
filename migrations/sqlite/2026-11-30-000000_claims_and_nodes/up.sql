-- Node registry (kaal_nodes) for node_id uniqueness, liveness and clock offsets, all by the
-- database's clock. The dispatch log needs no change: a claim is now committed by an
-- insert-only `claimed` row, started by moving it to `dispatched`. Additive only.
CREATE TABLE IF NOT EXISTS kaal_nodes (
    id INTEGER PRIMARY KEY NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    node_id VARCHAR(255) NOT NULL,
    instance VARCHAR(64) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid BIGINT NOT NULL,
    version VARCHAR(64) NOT NULL,
    started_at DATETIME(6) NOT NULL,
    last_seen DATETIME(6) NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_nodes_on_namespace_and_node_id
    ON kaal_nodes (namespace, node_id);
