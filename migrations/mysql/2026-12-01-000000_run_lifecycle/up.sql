-- The run lifecycle of each dispatch-log row: when its job started and finished (by the
-- store's clock), which attempt ran last, and why a run failed, timed out, was abandoned or
-- skipped. The row's id (AUTO_INCREMENT) is the run's fencing token: no column for it.
--
-- Additive: a row of any status still means "this fire time is taken", as the Ruby gem
-- reads it. Existing rows, and rows the gem writes (it does not know these columns), keep
-- started_at / finished_at / error NULL and attempt 0: kaal reads them as runs without a
-- lifecycle, never reported as running.
--
-- `error` is utf8mb4 whatever the table's default character set (the gem's tables may use
-- another): any text a job reports is stored as it is (kaal clips it to 2000 characters,
-- at most 8000 bytes). One statement: MySQL's DDL commits implicitly.
ALTER TABLE kaal_dispatches
    ADD COLUMN started_at DATETIME(6) NULL,
    ADD COLUMN finished_at DATETIME(6) NULL,
    ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN error TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;
