//! The dispatch log: [`DispatchRegistry`] for [`DieselStore`], on `kaal_dispatches`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use kaal_core::{
    clip_error, AloneStart, Commit, Commits, DispatchRecord, DispatchRegistry, DispatchStatus,
    RegistryError, RunRecord, RunUpdate, CLAIM_TOLERANCE,
};

use crate::claim_queries::ClaimQueries;
use crate::dialect::ClaimSteps;
use crate::dialect::{Dialect, DispatchWrite};
use crate::error::error_chain;
use crate::queries::SharedQueries;
use crate::rows::DispatchRow;
use crate::run_queries::{store_now, RunQueries, RunRow, RunWrite};
use crate::shape::TableShape;
use crate::store::{DieselStore, StoreConnection};
use crate::time::DbTime;

impl<D: Dialect> DieselStore<D> {
    /// Runs `f` on a pooled connection; any failure becomes a [`RegistryError`] for
    /// `operation`.
    pub(crate) fn registry_call<T>(
        &self,
        operation: impl Fn() -> String,
        f: impl FnOnce(&mut D::Connection) -> QueryResult<T>,
    ) -> Result<T, RegistryError> {
        let mut conn = self
            .checkout()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        f(&mut conn).map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }

    fn records(
        &self,
        operation: impl Fn() -> String,
        f: impl FnOnce(&mut D::Connection) -> QueryResult<Vec<DispatchRow>>,
    ) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.registry_call(&operation, f)?
            .into_iter()
            .map(|row| row.into_record())
            .collect::<Result<_, _>>()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))
    }
}

impl<D: Dialect> DieselStore<D> {
    /// A pooled connection and the table shape, for a write that depends on it; either
    /// failure is a [`RegistryError`] for `operation` (on tables the migrations have not
    /// brought up to date: the migration pending).
    fn shaped_connection(
        &self,
        operation: impl Fn() -> String,
    ) -> Result<(StoreConnection<D>, TableShape), RegistryError> {
        let mut conn = self
            .checkout()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        let shape = self
            .shape_on(&mut conn)
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        Ok((conn, shape))
    }

    /// The administrative upsert of `pairs` (`log_dispatch` / `log_dispatches`), stamped by
    /// the store's clock.
    fn upsert(
        &self,
        operation: impl Fn() -> String,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        let now = self.now();
        let (mut conn, shape) = self.shaped_connection(&operation)?;
        D::Steps::upsert_dispatches(
            &mut conn,
            pairs,
            node_id,
            status,
            now,
            shape,
            DispatchWrite::Upsert,
        )
        .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }
}

fn describe(key: &str, fire_time: DateTime<Utc>) -> String {
    format!("{key}:{}", fire_time.timestamp())
}

impl<D: Dialect> DispatchRegistry for DieselStore<D> {
    fn log_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        let pair = [(key.to_string(), fire_time)];
        self.upsert(
            || format!("log_dispatch({})", describe(key, fire_time)),
            &pair,
            node_id,
            status,
        )
    }

    fn find_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<DispatchRecord>, RegistryError> {
        let operation = || format!("find_dispatch({})", describe(key, fire_time));
        self.registry_call(operation, |conn| {
            conn.find_dispatch_row(key, DbTime::new(fire_time))
        })?
        .map(DispatchRow::into_record)
        .transpose()
        .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))
    }

    fn find_by_key(&self, key: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("find_by_key({key})"),
            |conn| conn.dispatch_rows_by_key(key),
        )
    }

    fn find_by_node(&self, node_id: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("find_by_node({node_id})"),
            |conn| conn.dispatch_rows_by_node(node_id),
        )
    }

    fn find_by_status(&self, status: DispatchStatus) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("find_by_status({status})"),
            |conn| conn.dispatch_rows_by_status(status.as_str()),
        )
    }

    fn cleanup(&self, older_than: DateTime<Utc>) -> Result<usize, RegistryError> {
        self.registry_call(
            || format!("cleanup({})", older_than.to_rfc3339()),
            |conn| conn.delete_dispatches_before(DbTime::new(older_than)),
        )
    }

    fn dispatched_many(
        &self,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<bool>, RegistryError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.registry_call(
            || format!("dispatched_many({} pairs)", pairs.len()),
            |conn| D::Steps::dispatched_many(conn, pairs),
        )?;
        if found.len() != pairs.len() {
            return Err(RegistryError::new(
                D::NAME,
                format!("dispatched_many({} pairs)", pairs.len()),
                format!("{} answers for {} pairs", found.len(), pairs.len()),
            ));
        }
        Ok(found)
    }

    fn log_dispatches(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.upsert(
            || format!("log_dispatches({} pairs)", pairs.len()),
            pairs,
            node_id,
            status,
        )
    }

    /// One write transaction: read the database's clock, insert-only the pairs not later
    /// than it plus [`CLAIM_TOLERANCE`] as `claimed` rows stamped with that instant, and read
    /// back the rows this node stamped with it — exactly the rows this insert created
    /// (`INSERT IGNORE` on MySQL cannot return them directly).
    fn commit_claims(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
    ) -> Result<Commits, RegistryError> {
        let operation = || format!("commit_claims({} pairs)", pairs.len());
        let tolerance =
            chrono::Duration::from_std(CLAIM_TOLERANCE).unwrap_or(chrono::Duration::zero());
        let (mut conn, shape) = self.shaped_connection(operation)?;
        let (now, created) = D::write_transaction(&mut conn, |conn| {
            let now = D::database_now(conn)?;
            let horizon = now.instant() + tolerance;
            let due: Vec<(String, DateTime<Utc>)> = pairs
                .iter()
                .filter(|(_, fire_time)| *fire_time <= horizon)
                .cloned()
                .collect();
            if due.is_empty() {
                return QueryResult::Ok((now, HashSet::new()));
            }
            D::Steps::upsert_dispatches(
                conn,
                &due,
                node_id,
                DispatchStatus::Claimed,
                now,
                shape,
                DispatchWrite::InsertOnly,
            )?;
            let created: HashSet<(String, DbTime)> = conn
                .rows_created_by(node_id, now, DispatchStatus::Claimed.as_str())?
                .into_iter()
                .collect();
            Ok((now, created))
        })
        .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))?;
        let horizon = now.instant() + tolerance;
        let outcomes = pairs
            .iter()
            .map(|(key, fire_time)| {
                if *fire_time > horizon {
                    Commit::Early
                } else if created.contains(&(key.clone(), DbTime::new(*fire_time))) {
                    Commit::Created
                } else {
                    Commit::Taken
                }
            })
            .collect();
        Ok(Commits {
            outcomes,
            database_now: now.instant(),
        })
    }

    fn transition(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
    ) -> Result<bool, RegistryError> {
        let now = self.now();
        self.registry_call(
            || format!("transition({}, {from} -> {to})", describe(key, fire_time)),
            |conn| {
                conn.move_dispatch_status(
                    key,
                    DbTime::new(fire_time),
                    node_id,
                    from.as_str(),
                    to.as_str(),
                    now,
                )
            },
        )
        .map(|changed| changed == 1)
    }

    fn reassign_claim(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        from_node: &str,
        to_node: &str,
    ) -> Result<bool, RegistryError> {
        self.registry_call(
            || {
                format!(
                    "reassign_claim({}, {from_node} -> {to_node})",
                    describe(key, fire_time)
                )
            },
            |conn| {
                conn.move_dispatch_owner(
                    key,
                    DbTime::new(fire_time),
                    from_node,
                    to_node,
                    DispatchStatus::Claimed.as_str(),
                )
            },
        )
        .map(|changed| changed == 1)
    }

    fn unstarted_claims(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("unstarted_claims({})", since.to_rfc3339()),
            |conn| {
                conn.dispatch_rows_with_status_since(
                    DispatchStatus::Claimed.as_str(),
                    DbTime::new(since),
                )
            },
        )
    }

    /// One compare-and-set `UPDATE` stamped by the database's clock inside it; on
    /// PostgreSQL and SQLite it answers the id itself (`RETURNING id`), on MySQL the id is
    /// read back after the update decided (see [`ClaimSteps::start_run`]).
    fn start_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<Option<i64>, RegistryError> {
        let operation = || format!("start_run({})", describe(key, fire_time));
        let (mut conn, shape) = self.shaped_connection(operation)?;
        let run = RunRow {
            key,
            fire_time: DbTime::new(fire_time),
            node_id,
        };
        D::Steps::start_run(&mut conn, run, self.run_clock(), shape)
            .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }

    /// Every [`start_run`](Self::start_run) in one write transaction: one commit for the
    /// starts of a pass.
    fn start_runs(
        &self,
        node_id: &str,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<Option<i64>>, RegistryError> {
        if let [(key, fire_time)] = pairs {
            return Ok(vec![self.start_run(key, *fire_time, node_id)?]);
        }
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let operation = || format!("start_runs({} runs)", pairs.len());
        let (mut conn, shape) = self.shaped_connection(operation)?;
        let clock = self.run_clock();
        D::write_transaction(&mut conn, |conn| {
            pairs
                .iter()
                .map(|(key, fire_time)| {
                    let run = RunRow {
                        key,
                        fire_time: DbTime::new(*fire_time),
                        node_id,
                    };
                    D::Steps::start_run(conn, run, clock, shape)
                })
                .collect::<QueryResult<Vec<Option<i64>>>>()
        })
        .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }

    /// One compare-and-set `UPDATE`, stamped by the database's clock inside it; the error
    /// text is clipped to [`MAX_ERROR_CHARS`](kaal_core::MAX_ERROR_CHARS) first.
    fn record_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
        update: &RunUpdate,
    ) -> Result<bool, RegistryError> {
        let operation = || format!("record_run({}, {from} -> {to})", describe(key, fire_time));
        let (mut conn, shape) = self.shaped_connection(operation)?;
        let error = update.error.as_deref().map(clip_error);
        let run = RunRow {
            key,
            fire_time: DbTime::new(fire_time),
            node_id,
        };
        let write = RunWrite {
            from: from.as_str(),
            to: to.as_str(),
            finished: to.is_final(),
            attempt: i32::try_from(update.attempt).unwrap_or(i32::MAX),
            error: error.as_deref(),
        };
        let now = store_now(self.run_clock(), D::NOW_SQL);
        conn.record_run_row(run, write, now, shape.dispatch_timestamps)
            .map(|changed| changed == 1)
            .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }

    /// Every compare-and-set `UPDATE` of [`record_run`](Self::record_run), in one write
    /// transaction: one commit for the outcomes of runs that ended together.
    fn record_runs(
        &self,
        node_id: &str,
        records: &[RunRecord],
    ) -> Result<Vec<bool>, RegistryError> {
        let operation = || format!("record_runs({} runs)", records.len());
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (mut conn, shape) = self.shaped_connection(operation)?;
        let clock = self.run_clock();
        D::write_transaction(&mut conn, |conn| {
            records
                .iter()
                .map(|r| {
                    let error = r.update.error.as_deref().map(clip_error);
                    let run = RunRow {
                        key: &r.key,
                        fire_time: DbTime::new(r.fire_time),
                        node_id,
                    };
                    let write = RunWrite {
                        from: r.from.as_str(),
                        to: r.to.as_str(),
                        finished: r.to.is_final(),
                        attempt: i32::try_from(r.update.attempt).unwrap_or(i32::MAX),
                        error: error.as_deref(),
                    };
                    let now = store_now(clock, D::NOW_SQL);
                    conn.record_run_row(run, write, now, shape.dispatch_timestamps)
                        .map(|changed| changed == 1)
                })
                .collect::<QueryResult<Vec<bool>>>()
        })
        .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }

    /// One [`job_transaction`](Dialect::job_transaction) of `key`: read whether another fire
    /// time of the job is `dispatched` with a `started_at`, then — if none — the
    /// compare-and-set start of [`start_run`](DispatchRegistry::start_run).
    ///
    /// **Why it is one atomic step per job, across processes.** Two calls for the same job
    /// never overlap: each runs inside a `job_transaction` of the job, which excludes every
    /// other one of the same key until it has committed (SQLite: the database's single write
    /// lock, taken at `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock on
    /// the job; MySQL: a named lock on the job around the transaction — each backend's
    /// `Dialect` docs give its argument). And each call's check reads after the lock was
    /// granted, so it sees the start the previous holder committed. So of two calls, the
    /// later one finds the earlier one's run going and answers [`AloneStart::Busy`],
    /// writing nothing; a call whose check found nothing going starts its row before any
    /// other call of the job can check. Other writers meanwhile only end runs (outcomes,
    /// abandonment, reruns) or add claims; see [`Dialect::job_transaction`].
    fn start_run_alone(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<AloneStart, RegistryError> {
        let operation = || format!("start_run_alone({})", describe(key, fire_time));
        let (mut conn, shape) = self.shaped_connection(operation)?;
        let run = RunRow {
            key,
            fire_time: DbTime::new(fire_time),
            node_id,
        };
        let at = self.run_clock();
        D::job_transaction(&mut conn, key, |conn| {
            let running = DispatchStatus::Dispatched.as_str();
            if let Some((going, node)) = conn.going_row_besides(key, run.fire_time, running)? {
                return Ok(AloneStart::Busy {
                    fire_time: going.instant(),
                    node_id: node,
                });
            }
            Ok(match D::Steps::start_run(conn, run, at, shape)? {
                Some(token) => AloneStart::Started(token),
                None => AloneStart::NotClaimed,
            })
        })
        .map_err(|err: diesel::result::Error| {
            RegistryError::new(D::NAME, operation(), error_chain(&err))
        })
    }

    /// One write transaction: delete the row of `(key, fire_time)` only if `lost_node` owns
    /// it and it is `dispatched`; when that deleted it, insert the new `claimed` row of
    /// `to_node` (`attempt` 0, `error` = the note clipped to
    /// [`MAX_ERROR_CHARS`](kaal_core::MAX_ERROR_CHARS), `dispatched_at` — and `created_at` /
    /// `updated_at` where the table has them — from the store's clock). Its id comes from
    /// the table's sequence (or, on SQLite, is the largest id plus one, read before the
    /// delete: [`Dialect::replacement_dispatch_id`]), so it is larger than the lost run's.
    ///
    /// **Why it is atomic.** The delete is the compare-and-set: of several nodes rerunning
    /// the same lost run, the first delete takes the row's lock (PostgreSQL, MySQL) or the
    /// database's write lock (SQLite); the others' deletes wait for it and then find the
    /// lost run's row gone — the only row of the fire time is now the new one, `claimed` by
    /// `to_node` — and delete nothing. No reader ever sees the fire time without a row
    /// (the delete and the insert commit together; a failed insert rolls the delete back),
    /// so it is never claimed afresh by a commit point.
    fn rerun_lost_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        lost_node: &str,
        to_node: &str,
        note: &str,
    ) -> Result<bool, RegistryError> {
        let operation = || {
            format!(
                "rerun_lost_run({}, {lost_node} -> {to_node})",
                describe(key, fire_time)
            )
        };
        let (mut conn, shape) = self.shaped_connection(operation)?;
        let note = clip_error(note);
        let fire_time = DbTime::new(fire_time);
        let now = store_now(self.run_clock(), D::NOW_SQL);
        D::write_transaction(&mut conn, |conn| {
            let id = D::replacement_dispatch_id(conn)?;
            let lost = RunRow {
                key,
                fire_time,
                node_id: lost_node,
            };
            if conn.delete_run_row(lost, DispatchStatus::Dispatched.as_str())? != 1 {
                return Ok(false);
            }
            let rerun = RunRow {
                key,
                fire_time,
                node_id: to_node,
            };
            conn.insert_claim_row(rerun, id, &note, now, shape.dispatch_timestamps)?;
            Ok(true)
        })
        .map_err(|err: diesel::result::Error| {
            RegistryError::new(D::NAME, operation(), error_chain(&err))
        })
    }

    fn running_runs(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("running_runs({})", since.to_rfc3339()),
            |conn| conn.running_rows(DispatchStatus::Dispatched.as_str(), DbTime::new(since)),
        )
    }
}
