//! Databases created on a server (PostgreSQL, MySQL) for one fixture and dropped with it.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::Connection;

/// A database created on a server for one fixture and dropped with it.
///
/// `C` is the Diesel connection used to create and drop it (the server URL must name a
/// database that exists, e.g. `test`).
pub struct ScratchDatabase<C: Connection> {
    server: String,
    name: String,
    drop_options: &'static str,
    connection: PhantomData<fn() -> C>,
}

impl<C: Connection> std::fmt::Debug for ScratchDatabase<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<C: Connection> ScratchDatabase<C> {
    /// Creates `kaal_bench_<pid>_<n>` on the server at `server`; dropping the value runs
    /// `DROP DATABASE IF EXISTS <name><drop_options>`.
    pub fn create(server: &str, drop_options: &'static str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "kaal_bench_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin::<C>(server)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|err| panic!("cannot create database {name}: {err}"));
        Self {
            server: server.to_string(),
            name,
            drop_options,
            connection: PhantomData,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server URL with this database in place of the one it names (query kept).
    pub fn url(&self) -> String {
        let (path, query) = self
            .server
            .split_once('?')
            .map_or((self.server.as_str(), None), |(path, query)| {
                (path, Some(query))
            });
        let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
        match query {
            Some(query) => format!("{base}/{}?{query}", self.name),
            None => format!("{base}/{}", self.name),
        }
    }
}

impl<C: Connection> Drop for ScratchDatabase<C> {
    fn drop(&mut self) {
        let name = self.name();
        let sql = format!("DROP DATABASE IF EXISTS {name}{}", self.drop_options);
        match C::establish(&self.server) {
            Ok(mut conn) => {
                if let Err(err) = conn.batch_execute(&sql) {
                    eprintln!("could not drop {name}: {err}");
                }
            }
            Err(err) => eprintln!("could not drop {name}: {err}"),
        }
    }
}

/// A connection to the server itself, for creating and dropping databases.
fn admin<C: Connection>(server: &str) -> C {
    C::establish(server).unwrap_or_else(|err| panic!("{server} is unreachable: {err}"))
}

/// The server URL from `variable`, else `default`.
pub fn server_url(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_string())
}
