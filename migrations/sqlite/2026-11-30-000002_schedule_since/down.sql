-- Definitions no longer record when their schedule came into force; kaal before this
-- migration counts what is owed from created_at.
ALTER TABLE kaal_definitions DROP COLUMN schedule_since;
