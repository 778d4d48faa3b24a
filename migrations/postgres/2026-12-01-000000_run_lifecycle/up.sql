-- The run lifecycle of each dispatch-log row: when its job started and finished (by the
-- store's clock), which attempt ran last, and why a run failed, timed out, was abandoned or
-- skipped. The row's id (`bigserial`) is the run's fencing token: no column for it.
--
-- Additive: a row of any status still means "this fire time is taken", as the Ruby gem
-- reads it. Existing rows, and rows the gem writes (it does not know these columns), keep
-- started_at / finished_at / error NULL and attempt 0: kaal reads them as runs without a
-- lifecycle, never reported as running. Runs in one transaction.
ALTER TABLE kaal_dispatches
    ADD COLUMN IF NOT EXISTS started_at TIMESTAMP(6) WITHOUT TIME ZONE,
    ADD COLUMN IF NOT EXISTS finished_at TIMESTAMP(6) WITHOUT TIME ZONE,
    ADD COLUMN IF NOT EXISTS attempt INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS error TEXT;
