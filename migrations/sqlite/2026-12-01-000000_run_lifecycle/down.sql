-- Dispatch-log rows no longer record their run: kaal before this migration reads only the
-- gem's columns. The lifecycle of every row (started, finished, attempt, error) is lost.
ALTER TABLE kaal_dispatches DROP COLUMN error;
ALTER TABLE kaal_dispatches DROP COLUMN attempt;
ALTER TABLE kaal_dispatches DROP COLUMN finished_at;
ALTER TABLE kaal_dispatches DROP COLUMN started_at;
