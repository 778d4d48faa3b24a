-- When each definition's current schedule (cron and enabled state) came into force: set on
-- insert, moved when the cron changes or a disabled definition is enabled again. A fire time
-- from before it is never owed, so recovery after a disabled hour or a cron change does not
-- replay the past.
--
-- Additive: existing rows (and rows the Ruby gem writes, which does not know the column)
-- keep NULL, which kaal reads as created_at. One statement: MySQL's DDL commits implicitly.
ALTER TABLE kaal_definitions ADD COLUMN schedule_since DATETIME(6) NULL;
