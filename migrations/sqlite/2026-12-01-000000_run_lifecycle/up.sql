-- The run lifecycle of each dispatch-log row: when its job started and finished (by the
-- store's clock), which attempt ran last, and why a run failed, timed out, was abandoned or
-- skipped. The row's id (the rowid) is the run's fencing token: no column for it.
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
