-- The run lifecycle of each dispatch-log row: when its job started and finished (by the
-- store's clock), which attempt ran last, and why a run failed, timed out, was abandoned or
-- skipped. The row's id (the rowid) is the run's fencing token: no column for it. SQLite
-- gives a new row the largest id in the table plus one (the tables kaal creates have no
-- AUTOINCREMENT, see the first migration), so a later claim's token is larger than that of
-- every row still in the log; only after the row with the largest id is deleted (by
-- `cleanup`, or by hand) can its id be given again.
--
-- Additive: a row of any status still means "this fire time is taken", as the Ruby gem
-- reads it. Existing rows, and rows the gem writes (it does not know these columns), keep
-- started_at / finished_at / error NULL and attempt 0: kaal reads them as runs without a
-- lifecycle, never reported as running. Times are text in ActiveRecord's format, like
-- fire_time.
ALTER TABLE kaal_dispatches ADD COLUMN started_at DATETIME(6);
ALTER TABLE kaal_dispatches ADD COLUMN finished_at DATETIME(6);
ALTER TABLE kaal_dispatches ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kaal_dispatches ADD COLUMN error TEXT;
