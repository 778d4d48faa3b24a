-- Back to one definition per key. Fails (and changes nothing) while two namespaces define
-- the same key: remove one of them first.
ALTER TABLE kaal_definitions
    DROP INDEX index_kaal_definitions_on_namespace_and_key,
    ADD UNIQUE KEY index_kaal_definitions_on_key (`key`),
    DROP COLUMN namespace;
