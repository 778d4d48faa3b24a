DROP TABLE IF EXISTS kaal_definitions;
DROP TABLE IF EXISTS kaal_dispatches;
DROP TABLE IF EXISTS kaal_locks;
