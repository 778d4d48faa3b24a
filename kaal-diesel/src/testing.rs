//! The store behaviours every SQL backend shares, as one public function per behaviour, and
//! the hooks a backend's test binary supplies to run them (feature `testing`).
//!
//! [kaal-testkit](kaal_testkit) checks what every [`Adapter`] must do through the adapter's
//! API alone. The behaviours here sit one level below: they are about a [`DieselStore`] and
//! the SQL tables under it — rows another node (or the Ruby gem) wrote, tables the gem
//! created, migrations that ran only part-way, expiry decided by the database's clock — so
//! they need to run raw SQL on the database. A backend supplies that through
//! [`SqlBackend`], and its test binaries run the behaviours with one line each:
//!
//! ```ignore
//! // tests/leases.rs of kaal-diesel-foo, beside the tests of what only Foo does:
//! mod common;
//! kaal_diesel::lease_suite!(common::FooHooks);
//!
//! // tests/open.rs
//! kaal_diesel::open_suite!(common::FooHooks);
//!
//! // tests/advisory.rs of a backend with session locks (FooHooks is a SessionBackend too)
//! kaal_diesel::session_suite!(common::FooHooks);
//! ```
//!
//! Each macro expands into one `#[test]` per behaviour, named after it, so a behaviour that
//! every backend shares is written once and still runs once per backend
//! ([`store_suite!`](crate::store_suite) runs both groups in one binary). Every test makes
//! its own database ([`TempDb`]) and removes it afterwards, so tests run in parallel. The
//! same hooks run kaal-testkit's suites on the backend's stores ([`Conformance`]).
//!
//! * [`leases`] — the lease table: claim, release, expiry by the database's clock whatever
//!   a node's clock says, the batch form, key limits, races between pools, pruning;
//! * [`open`] — opening and migrating: tables of the wrong shape refused untouched, tables
//!   the Ruby gem created accepted as they are, databases an older kaal migrated part-way,
//!   raced migrations;
//! * [`sessions`] — locks held by a database session (PostgreSQL advisory locks, MySQL
//!   named locks), with the extra hooks of [`SessionBackend`]: exclusion of other
//!   sessions, no re-entry, release only by the holder, the ttl kept by the holder, a
//!   killed session reported and replaced, large batches, key limits, claims on logged fire
//!   times given back, the registries beside the locks
//!   ([`session_suite!`](crate::session_suite));
//! * [`runs`] — the run lifecycle's SQL: one instant of the database's clock per write,
//!   `updated_at` included, or the store's own clock when it has one
//!   ([`run_suite!`](crate::run_suite));
//! * [`throughput`] — the lease rates the backends print for the record;
//! * [`logs`] — what the crate logs, captured so a test can check it.
#![allow(clippy::unwrap_used)]

pub mod leases;
pub mod logs;
pub mod open;
pub mod runs;
pub mod sessions;
pub mod throughput;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::{LoadConnection, SimpleConnection};
use diesel::migration::MigrationSource;
use diesel::query_dsl::methods::LoadQuery;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use kaal_core::{Adapter, Clock};

use crate::{Dialect, DieselStore};

pub use sessions::SessionBackend;

/// What a backend's test binary supplies to run the shared store behaviours: how to make
/// and remove a database, how to reach it without a kaal store, and the few pieces of SQL
/// that differ between databases.
///
/// Implementations are small `Clone` values (a unit struct, usually); every method panics
/// with a clear message when it cannot do its job (an unreachable server names its URL): a
/// backend is never silently skipped.
pub trait SqlBackend: Clone + Send + Sync + 'static {
    /// The dialect of the stores under test.
    type Dialect: Dialect;

    /// The plain connection (no kaal store involved) raw SQL runs on: the dialect's Diesel
    /// connection.
    type Connection: PlainConnection;

    /// The backend's embedded migrations, in order.
    const MIGRATIONS: EmbeddedMigrations;

    /// The tables as the Ruby gem's current ActiveRecord migrations create them on this
    /// database: `kaal_dispatches`, `kaal_locks` and `kaal_definitions` with their indexes,
    /// no `created_at` / `updated_at` on locks and dispatches (statements `;`-separated).
    const RUBY_GEM_TABLES: &'static str;

    /// A `kaal_locks` table without `expires_at` (the wrong shape), with one row of key
    /// `kept` (statements `;`-separated).
    const LOCK_TABLE_WITHOUT_EXPIRES_AT: &'static str;

    /// The two entries the migrations add to the [`table_columns`](SqlBackend::table_columns)
    /// of the gem's `kaal_definitions`: `namespace` (not null, default `'kaal'`) and
    /// `schedule_since` (nullable).
    const COLUMNS_ADDED_TO_THE_GEMS_DEFINITIONS: [&'static str; 2];

    /// The four entries the migrations add to the [`table_columns`](SqlBackend::table_columns)
    /// of the gem's `kaal_dispatches`: `started_at`, `finished_at` (nullable timestamps),
    /// `attempt` (integer, not null, default 0) and `error` (nullable text).
    const COLUMNS_ADDED_TO_THE_GEMS_DISPATCHES: [&'static str; 4];

    /// The primary key of the gem's `kaal_definitions` as
    /// [`unique_indexes`](SqlBackend::unique_indexes) lists it (`None` where it is no index
    /// of its own, as SQLite's rowid).
    const DEFINITIONS_PRIMARY_KEY: Option<&'static str>;

    /// How many keys one `acquire_many` call of the large-batch behaviour takes.
    const LARGE_BATCH: usize = 40_000;

    /// Creates a fresh, empty database (no tables) that no other test uses; returns its
    /// locator (a file path, or a URL).
    fn create_database(&self) -> String;

    /// Removes a database [`create_database`](SqlBackend::create_database) made (best
    /// effort; a locator it did not make is left alone).
    fn drop_database(&self, locator: &str);

    /// A plain connection to the database at `locator` (`establish` by default).
    fn connect(&self, locator: &str) -> Self::Connection {
        Self::Connection::establish(locator)
            .unwrap_or_else(|err| panic!("cannot connect to {locator}: {err}"))
    }

    /// The column `value` of every row `sql` selects, as text, on a plain connection.
    fn texts(&self, locator: &str, sql: &str) -> Vec<String> {
        self.connect(locator).texts(sql)
    }

    /// Runs the first `count` of the backend's [`MIGRATIONS`](SqlBackend::MIGRATIONS) on
    /// the database at `locator`, as an older kaal would have left it.
    fn run_first_migrations(&self, locator: &str, count: usize) {
        let mut conn = self.connect(locator);
        for _ in 0..count {
            conn.run_next_migration_of(Self::MIGRATIONS);
        }
    }

    /// `identifier` quoted (`"key"` by default; MySQL: `` `key` ``).
    fn quote(&self, identifier: &str) -> String {
        format!("\"{identifier}\"")
    }

    /// `expr` cast to text (`CAST(expr AS TEXT)` by default; MySQL: `AS CHAR`).
    fn cast_text(&self, expr: &str) -> String {
        format!("CAST({expr} AS TEXT)")
    }

    /// An SQL expression: the database's current UTC time plus `seconds` (may be negative),
    /// as a value of the lease columns' type and format.
    fn now_plus(&self, seconds: i64) -> String;

    /// An SQL expression: the seconds from the database's current time to the timestamp
    /// `column` (negative when it has passed), as a number.
    fn seconds_until(&self, column: &str) -> String;

    /// The names of every table in the database, sorted.
    fn table_names(&self, locator: &str) -> Vec<String>;

    /// What the database says of `tables` — at least every column with its type — as one
    /// text, to compare before and after (indexes the migrations add to the gem's tables
    /// may be left out).
    fn schema_of(&self, locator: &str, tables: &[&str]) -> String;

    /// The columns of `table` in table order, one text each, with their type, nullability
    /// and default.
    fn table_columns(&self, locator: &str, table: &str) -> Vec<String>;

    /// The unique indexes of `table` as `name(column,column)`, the primary key included
    /// where the database lists it as an index.
    fn unique_indexes(&self, locator: &str, table: &str) -> Vec<String>;

    /// An outage of the database at `locator`, for kaal-testkit's database-outage case (see
    /// [`kaal_testkit::Backend::outage`]); `None` by default.
    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        let _ = locator;
        None
    }
}

/// A Diesel connection the shared behaviours read text from and migrate step by step:
/// every connection of the three databases, by a blanket implementation.
pub trait PlainConnection: Connection + Sized + 'static {
    /// The column `value` of every row `sql` selects, as text.
    fn texts(&mut self, sql: &str) -> Vec<String>;

    /// Runs the first migration of `migrations` that has not run.
    fn run_next_migration_of(&mut self, migrations: EmbeddedMigrations);
}

impl<C> PlainConnection for C
where
    C: LoadConnection + MigrationHarness<<C as Connection>::Backend> + 'static,
    for<'a> diesel::query_builder::SqlQuery: LoadQuery<'a, C, TextValue>,
    EmbeddedMigrations: MigrationSource<<C as Connection>::Backend>,
{
    fn texts(&mut self, sql: &str) -> Vec<String> {
        texts_on(self, sql)
    }

    fn run_next_migration_of(&mut self, migrations: EmbeddedMigrations) {
        self.run_next_migration(migrations)
            .unwrap_or_else(|err| panic!("cannot run the next migration: {err}"));
    }
}

/// The stores of a backend as kaal-testkit's conformance and fleet suites see them, so a
/// backend runs those suites with its [`SqlBackend`] alone: every store a fresh migrated
/// database ([`create_migrated`]), every node a [`DieselStore`] with its own pool — or, for
/// [`session_locks`](Conformance::session_locks), the adapter `open` makes.
///
/// ```ignore
/// pub const FOO_LEASES: Conformance<FooHooks> = Conformance::leases(FooHooks);
/// kaal_testkit::conformance_suite!(common::FOO_LEASES);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Conformance<B: SqlBackend> {
    backend: B,
    session_locks: Option<OpenAdapter>,
}

/// Opens an adapter of a node on the store at a locator.
pub type OpenAdapter = fn(&str) -> Arc<dyn Adapter>;

impl<B: SqlBackend> Conformance<B> {
    /// The lease-table store (`DieselStore`), which also takes a clock.
    pub const fn leases(backend: B) -> Self {
        Self {
            backend,
            session_locks: None,
        }
    }

    /// An adapter whose locks live with its database session (advisory, named locks),
    /// opened by `open`; its registries in the same migrated database.
    pub const fn session_locks(backend: B, open: OpenAdapter) -> Self {
        Self {
            backend,
            session_locks: Some(open),
        }
    }

    fn store(&self, locator: &str) -> DieselStore<B::Dialect> {
        DieselStore::open(locator)
            .unwrap_or_else(|err| panic!("cannot open store {locator}: {err}"))
    }
}

impl<B: SqlBackend> kaal_testkit::Backend for Conformance<B> {
    fn create_store(&self) -> String {
        create_migrated(&self.backend)
    }

    fn open(&self, locator: &str) -> Arc<dyn Adapter> {
        match self.session_locks {
            Some(open) => open(locator),
            None => Arc::new(self.store(locator)),
        }
    }

    fn open_with_clock(&self, locator: &str, clock: Arc<dyn Clock>) -> Option<Arc<dyn Adapter>> {
        match self.session_locks {
            Some(_) => None,
            None => Some(Arc::new(self.store(locator).with_clock(clock))),
        }
    }

    fn drop_store(&self, locator: &str) {
        self.backend.drop_database(locator);
    }

    fn session_locks(&self) -> bool {
        self.session_locks.is_some()
    }

    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        self.backend.outage(locator)
    }
}

/// A fresh database of `B`, removed when the guard drops.
#[derive(Debug)]
pub struct TempDb<B: SqlBackend> {
    backend: B,
    locator: String,
}

impl<B: SqlBackend> TempDb<B> {
    /// A fresh database without tables.
    pub fn empty_on(backend: &B) -> Self {
        Self {
            locator: backend.create_database(),
            backend: backend.clone(),
        }
    }

    /// A fresh database, migrated.
    pub fn migrated_on(backend: &B) -> Self {
        let db = Self::empty_on(backend);
        migrate::<B::Dialect>(&db.locator);
        db
    }

    /// The database's locator (a file path, or a URL).
    pub fn locator(&self) -> &str {
        &self.locator
    }

    /// The backend the database is on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// A new store (its own pool) on the database, default options.
    pub fn open(&self) -> DieselStore<B::Dialect> {
        self.open_with(Default::default())
    }

    /// A new store (its own pool) on the database, with `options`.
    pub fn open_with(&self, options: <B::Dialect as Dialect>::Options) -> DieselStore<B::Dialect> {
        DieselStore::open_with(&self.locator, options)
            .unwrap_or_else(|err| panic!("cannot open store {}: {err}", self.locator))
    }

    /// A plain connection to the database (no kaal store involved).
    pub fn connect(&self) -> B::Connection {
        self.backend.connect(&self.locator)
    }

    /// Runs `sql` (one or more statements) on a plain connection.
    pub fn exec(&self, sql: &str) {
        exec_on(&mut self.connect(), sql);
    }

    /// The column `value` of every row `sql` selects, as text, on a plain connection.
    pub fn texts(&self, sql: &str) -> Vec<String> {
        self.backend.texts(&self.locator, sql)
    }

    /// The single text value `sql` selects (as column `value`).
    pub fn text(&self, sql: &str) -> String {
        self.texts(sql)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// How many rows `table` has.
    pub fn count(&self, table: &str) -> usize {
        let count = self.backend.cast_text("COUNT(*)");
        self.text(&format!("SELECT {count} AS value FROM {table}"))
            .parse()
            .unwrap()
    }
}

impl<B: SqlBackend + Default> TempDb<B> {
    /// A fresh database of `B::default()` without tables.
    pub fn empty() -> Self {
        Self::empty_on(&B::default())
    }

    /// A fresh database of `B::default()`, migrated.
    pub fn migrated() -> Self {
        Self::migrated_on(&B::default())
    }
}

impl<B: SqlBackend> Drop for TempDb<B> {
    fn drop(&mut self) {
        self.backend.drop_database(&self.locator);
    }
}

/// A fresh migrated database of `backend` that the caller removes
/// ([`drop_database`](SqlBackend::drop_database)); returns its locator.
pub fn create_migrated<B: SqlBackend>(backend: &B) -> String {
    let locator = backend.create_database();
    migrate::<B::Dialect>(&locator);
    locator
}

/// Runs the migrations on the database at `locator` through a store.
fn migrate<D: Dialect>(locator: &str) {
    DieselStore::<D>::open(locator)
        .unwrap_or_else(|err| panic!("cannot open store {locator}: {err}"))
        .run_migrations()
        .unwrap_or_else(|err| panic!("cannot migrate {locator}: {err}"));
}

/// A row of one text column `value`, as [`texts_on`] reads it.
#[derive(Debug, diesel::QueryableByName)]
pub struct TextValue {
    /// The value.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub value: String,
}

/// The column `value` of every row `sql` selects on `conn`, as text.
pub fn texts_on<C>(conn: &mut C, sql: &str) -> Vec<String>
where
    C: LoadConnection,
    for<'a> diesel::query_builder::SqlQuery: LoadQuery<'a, C, TextValue>,
{
    diesel::sql_query(sql)
        .load::<TextValue>(conn)
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .into_iter()
        .map(|row| row.value)
        .collect()
}

/// The single text value `sql` selects (as column `value`) on `conn`.
pub fn text_on<C>(conn: &mut C, sql: &str) -> String
where
    C: LoadConnection,
    for<'a> diesel::query_builder::SqlQuery: LoadQuery<'a, C, TextValue>,
{
    texts_on(conn, sql)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// Runs `sql` (one or more statements) on `conn`.
pub fn exec_on<C: SimpleConnection>(conn: &mut C, sql: &str) {
    conn.batch_execute(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// A database name no other test of this process uses: `<prefix>_<pid>_<n>`.
pub fn fresh_database_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// `url` with its database (the path) replaced by `database`, the query string kept.
pub fn with_database(url: &str, database: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority..];
    let path_start = authority + rest.find('/').unwrap_or(rest.len());
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    format!("{}/{database}{}", &url[..path_start], &url[query_start..])
}

/// The database a URL names (its path, without the query string).
pub fn database_of(url: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority..];
    let path = rest.find('/').map_or("", |i| &rest[i + 1..]);
    path.split('?').next().unwrap_or("").to_string()
}

/// Expands into one `#[test]` per behaviour of [`leases`] for the backend `$backend` (an
/// expression yielding a [`SqlBackend`], evaluated once per test).
#[macro_export]
macro_rules! lease_suite {
    ($backend:expr) => {
        $crate::__store_tests!($backend; leases;
            acquire_release_and_reacquire,
            expired_lease_is_taken_over_without_waiting,
            release_of_an_expired_lease_returns_false_and_clears_the_row,
            acquire_many_answers_in_input_order_for_free_held_expired_and_repeated_keys,
            acquire_many_takes_a_large_batch_in_one_call,
            acquire_on_an_unmigrated_database_is_a_lock_error_naming_the_key,
            a_key_over_255_bytes_is_a_clear_error_and_nothing_is_written,
            a_node_whose_clock_runs_five_minutes_fast_cannot_take_over_a_live_lease,
            a_node_whose_clock_runs_five_minutes_slow_does_not_keep_a_lease_past_its_ttl,
            sixteen_pools_racing_for_each_key_have_one_winner,
            overlapping_batches_in_opposite_orders_neither_deadlock_nor_share_a_key,
            batch_claims_delete_leases_expired_over_an_hour_ago_at_most_once_a_minute,
        );
    };
}

/// Expands into one `#[test]` per behaviour of [`open`] for the backend `$backend` (an
/// expression yielding a [`SqlBackend`], evaluated once per test).
#[macro_export]
macro_rules! open_suite {
    ($backend:expr) => {
        $crate::__store_tests!($backend; open;
            kaal_tables_of_the_wrong_shape_are_refused_and_left_untouched,
            tables_the_ruby_gem_created_are_accepted_and_used_as_they_are,
            migrations_raced_by_several_processes_apply_once,
            the_namespace_migration_keeps_existing_definitions_in_the_default_namespace,
            the_schedule_since_migration_keeps_every_definition_and_reads_null_as_created_at,
            the_run_lifecycle_migration_keeps_every_dispatch_and_reads_them_without_a_lifecycle,
            an_unmigrated_database_says_to_run_the_migrations,
            the_gem_tables_report_the_pending_migration_until_it_runs,
            a_unique_index_on_the_definition_key_alone_is_refused,
        );
    };
}

/// Expands into one `#[test]` per behaviour of [`sessions`] for the backend `$backend` (an
/// expression yielding a [`SessionBackend`], evaluated once per test).
#[macro_export]
macro_rules! session_suite {
    ($backend:expr) => {
        $crate::__store_tests!($backend; sessions;
            a_held_lock_excludes_other_sessions,
            acquire_of_a_held_key_from_the_same_process_returns_false,
            release_from_another_adapter_returns_false_and_leaves_the_lock_held,
            a_killed_lock_session_is_reported_replaced_and_its_locks_treated_as_lost,
            a_lock_past_its_ttl_is_released_by_its_holder,
            a_batch_of_many_locks_is_taken_in_one_call_and_excludes_others,
            a_key_over_255_bytes_is_a_clear_error,
            a_claim_on_a_fire_time_its_dead_holder_logged_is_given_back,
            the_registries_are_the_databases_tables,
        );
    };
}

/// Expands into one `#[test]` per behaviour of [`runs`] for the backend `$backend` (an
/// expression yielding a [`SqlBackend`], evaluated once per test).
#[macro_export]
macro_rules! run_suite {
    ($backend:expr) => {
        $crate::__store_tests!($backend; runs;
            run_times_are_one_instant_of_the_database_clock,
            a_rerun_row_is_new_and_stamped_with_one_instant_of_the_database_clock,
            a_store_with_its_own_clock_stamps_runs_with_it,
        );
    };
}

/// [`lease_suite!`], [`open_suite!`] and [`run_suite!`] in one test binary.
#[macro_export]
macro_rules! store_suite {
    ($backend:expr) => {
        $crate::lease_suite!($backend);
        $crate::open_suite!($backend);
        $crate::run_suite!($backend);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_tests {
    ($backend:expr; $group:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testing::$group::$name(&$backend);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_other_databases() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test", "kaal_test_1_2"),
            "mysql://root@127.0.0.1:3306/kaal_test_1_2"
        );
        assert_eq!(
            database_of("postgres://h:1/kaal_test_1_2?a=b"),
            "kaal_test_1_2"
        );
        assert_eq!(database_of("mysql://root@h/kaal_test_3"), "kaal_test_3");
    }
}
