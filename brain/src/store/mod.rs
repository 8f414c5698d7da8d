//! Storage on SQLite (embedded default) or PostgreSQL (production), with sqlx.
//!
//! One [`Store`] value wraps either database. Queries are written once in the
//! SQL both dialects share (`$1` placeholders, `RETURNING`, `ON CONFLICT`) and
//! run on whichever pool is configured through [`with_db!`]; the few places
//! where the dialects differ say so. SQLite gets a single-connection writer
//! pool (SQLite allows one writer at a time) beside a reader pool.

mod approvals;
mod audit;
mod changes;
mod error;
mod incidents;
mod ingest;
mod knowledge;
mod outbox;
mod records;
mod runs;
mod sqlite_ingest;
mod writer;

pub use audit::{AuditVerification, NewAuditEntry};
pub use changes::ChangeFilter;
pub use error::StoreError;
pub use incidents::{IncidentFilter, NewIncident};
pub use ingest::{
    AlertOutcome, AlertOutcomeKind, DeliveryKey, IngestItems, IngestOutcome, IngestRequest,
    IngestSettings,
};
pub use knowledge::{NewDocument, Upsert};
pub use outbox::OutboxItem;
pub use records::{LlmUsage, timestamp};
pub use runs::{IncidentRun, RunStep};
pub use writer::{IngestWriter, SubmitError};

use crate::config::{Config, DatabaseUrl};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// The database behind a [`Store`].
#[derive(Clone, Debug)]
enum Db {
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
        ingest: std::sync::Arc<sqlite_ingest::SqliteIngest>,
    },
    Postgres(PgPool),
}

/// Begin a write transaction. On SQLite it is IMMEDIATE: it takes the write
/// lock up front, because the ingestion thread writes through its own
/// connection and SQLite refuses (without retrying) a deferred transaction
/// that read before another connection's commit and then writes.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Run `$body` with `$pool` bound to the right pool: the writer pool for
/// `write`, the reader pool for `read` (on PostgreSQL both are the same pool).
macro_rules! with_db {
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { write: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { read: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    url: String,
}

/// What `/readyz` reports about the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    pub reachable: bool,
    pub migrations_applied: usize,
    pub migrations_expected: usize,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.reachable && self.migrations_applied == self.migrations_expected
    }
}

impl Store {
    /// Connect as the configuration says, without migrating.
    pub async fn connect(config: &Config) -> Result<Store, StoreError> {
        let url = config.database_url();
        let timeout = Duration::from_secs(config.database.connect_timeout_secs);
        let max = config.database.max_connections;
        if url.is_postgres() {
            Self::connect_postgres(&url, config.database.schema.as_deref(), max, timeout).await
        } else {
            Self::connect_sqlite(&url, max, timeout, config.ingest.max_batch).await
        }
    }

    async fn connect_sqlite(
        url: &DatabaseUrl,
        max: u32,
        timeout: Duration,
        max_group: usize,
    ) -> Result<Store, StoreError> {
        let masked = url.masked();
        let unavailable = |source| StoreError::Connect {
            url: masked.clone(),
            source,
        };
        let opts = SqliteConnectOptions::from_str(url.expose())
            .map_err(unavailable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before we answer 2xx. Group commits
            // keep the fsync cost per alert low.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(timeout);
        if let Some(dir) = opts.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Connect {
                url: masked.clone(),
                source: sqlx::Error::Io(e),
            })?;
        }
        let ingest = sqlite_ingest::SqliteIngest::start(opts.get_filename(), timeout, max_group)?;
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(opts.clone())
            .await
            .map_err(unavailable)?;
        let read = SqlitePoolOptions::new()
            .max_connections(max.max(2))
            .acquire_timeout(timeout)
            .connect_with(opts.read_only(true))
            .await
            .map_err(unavailable)?;
        Ok(Store {
            db: Db::Sqlite {
                write,
                read,
                ingest: std::sync::Arc::new(ingest),
            },
            url: masked,
        })
    }

    async fn connect_postgres(
        url: &DatabaseUrl,
        schema: Option<&str>,
        max: u32,
        timeout: Duration,
    ) -> Result<Store, StoreError> {
        let masked = url.masked();
        let unavailable = |source| StoreError::Connect {
            url: masked.clone(),
            source,
        };
        let mut opts = PgConnectOptions::from_str(url.expose()).map_err(unavailable)?;
        if let Some(schema) = schema {
            // Create the schema once on a plain connection, then pin every
            // pooled connection's search_path to it.
            let mut conn = tokio::time::timeout(timeout, sqlx::PgConnection::connect_with(&opts))
                .await
                .map_err(|_| unavailable(sqlx::Error::PoolTimedOut))?
                .map_err(unavailable)?;
            use sqlx::Connection;
            // The schema name is validated as [A-Za-z0-9_]+ by the config.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut conn)
            .await
            .map_err(unavailable)?;
            conn.close().await.ok();
            opts = opts.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(timeout)
            .connect_with(opts)
            .await
            .map_err(unavailable)?;
        Ok(Store {
            db: Db::Postgres(pool),
            url: masked,
        })
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Connect and migrate: what `serve` does at start.
    pub async fn open(config: &Config) -> Result<Store, StoreError> {
        let store = Self::connect(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        match self.db {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The URL with its password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Is the database reachable and fully migrated?
    pub async fn readiness(&self) -> Readiness {
        let expected = match self.dialect() {
            Dialect::Sqlite => SQLITE_MIGRATIONS.iter().count(),
            Dialect::Postgres => POSTGRES_MIGRATIONS.iter().count(),
        };
        let ping = with_db!(self, read, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(drop));
        if ping.is_err() {
            return Readiness {
                reachable: false,
                migrations_applied: 0,
                migrations_expected: expected,
            };
        }
        let versions: Vec<i64> = with_db!(self, read, |p| {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(p)
                .await
        })
        .unwrap_or_default();
        let applied = match self.dialect() {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
        .iter()
        .filter(|m| versions.contains(&m.version))
        .count();
        Readiness {
            reachable: true,
            migrations_applied: applied,
            migrations_expected: expected,
        }
    }

    /// Close every pooled connection; waits for checked-out ones to return.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read, .. } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
