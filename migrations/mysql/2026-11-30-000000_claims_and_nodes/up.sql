-- Node registry (kaal_nodes) for node_id uniqueness, liveness and clock offsets, all by the
-- database's clock. The dispatch log needs no change: a claim is now committed by an
-- insert-only `claimed` row, started by moving it to `dispatched`. Additive only.
-- Binary collation like the key columns: ids that differ are different ids.
CREATE TABLE IF NOT EXISTS kaal_nodes (
    id BIGINT NOT NULL AUTO_INCREMENT,
    namespace VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    node_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    instance VARCHAR(64) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid BIGINT NOT NULL,
    version VARCHAR(64) NOT NULL,
    started_at DATETIME(6) NOT NULL,
    last_seen DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY index_kaal_nodes_on_namespace_and_node_id (namespace, node_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
