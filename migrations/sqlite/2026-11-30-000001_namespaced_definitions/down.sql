-- Back to one definition per key. Fails (and changes nothing) while two namespaces define
-- the same key: remove one of them first.
DROP INDEX IF EXISTS index_kaal_definitions_on_namespace_and_key;
CREATE UNIQUE INDEX IF NOT EXISTS index_kaal_definitions_on_key ON kaal_definitions ("key");
ALTER TABLE kaal_definitions DROP COLUMN namespace;
