-- Node registry (kaal_nodes) for node_id uniqueness, liveness and clock offsets, all by the
-- database's clock. The dispatch log needs no change: a claim is now committed by an
-- insert-only `claimed` row (status fits VARCHAR(50)), started by moving it to `dispatched`.
-- Additive only: existing rows of every table are kept.
CREATE TABLE IF NOT EXISTS kaal_nodes (
    id BIGSERIAL PRIMARY KEY,
    namespace VARCHAR(255) NOT NULL,
    node_id VARCHAR(255) NOT NULL,
    instance VARCHAR(64) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid BIGINT NOT NULL,
    version VARCHAR(64) NOT NULL,
    started_at TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL,
    last_seen TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_nodes_on_namespace_and_node_id
    ON kaal_nodes (namespace, node_id);
