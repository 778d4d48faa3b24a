-- Dispatch-log rows no longer record their run: kaal before this migration reads only the
-- gem's columns. The lifecycle of every row (started, finished, attempt, error) is lost.
ALTER TABLE kaal_dispatches
    DROP COLUMN IF EXISTS error,
    DROP COLUMN IF EXISTS attempt,
    DROP COLUMN IF EXISTS finished_at,
    DROP COLUMN IF EXISTS started_at;
