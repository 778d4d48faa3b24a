-- Dispatch-log rows no longer record their run: kaal before this migration reads only the
-- gem's columns. The lifecycle of every row (started, finished, attempt, error) is lost.
ALTER TABLE kaal_dispatches
    DROP COLUMN error,
    DROP COLUMN attempt,
    DROP COLUMN finished_at,
    DROP COLUMN started_at;
