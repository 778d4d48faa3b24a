-- Definitions are scoped by namespace like everything else a node reads or writes: two
-- applications sharing one database may both define a job `sync`. The unique index moves
-- from `key` to `(namespace, key)`.
--
-- Additive for the rows: every existing definition (written by kaal before this migration or
-- by the Ruby gem, which has no namespace column) gets the default namespace `kaal`, and so do
-- rows a gem node inserts later. Works on the gem's tables as on ours (both name the old
-- index index_kaal_definitions_on_key).
--
-- One ALTER TABLE: MySQL's DDL commits implicitly, so separate statements could stop half-way
-- and leave a migration that can neither be re-run nor recorded. Binary collation like the
-- key columns: namespaces that differ are different namespaces.
ALTER TABLE kaal_definitions
    ADD COLUMN namespace VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL
        DEFAULT 'kaal',
    DROP INDEX index_kaal_definitions_on_key,
    ADD UNIQUE KEY index_kaal_definitions_on_namespace_and_key (namespace, `key`);
