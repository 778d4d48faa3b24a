-- Definitions are scoped by namespace like everything else a node reads or writes: two
-- applications sharing one database may both define a job `sync`. The unique index moves
-- from `key` to `(namespace, key)`.
--
-- Additive for the rows: every existing definition (written by kaal before this migration or
-- by the Ruby gem, which has no namespace column) gets the default namespace `kaal`, and so do
-- rows a gem node inserts later. Works on the gem's tables as on ours (both name the old
-- index index_kaal_definitions_on_key). Runs in one transaction.
ALTER TABLE kaal_definitions ADD COLUMN IF NOT EXISTS namespace VARCHAR(255) NOT NULL DEFAULT 'kaal';
DROP INDEX IF EXISTS index_kaal_definitions_on_key;
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_definitions_on_namespace_and_key
    ON kaal_definitions (namespace, "key");
