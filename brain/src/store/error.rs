//! Storage errors, shaped for what the caller does next.

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("connecting to database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// Applying migrations failed.
    #[error("applying database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No such row.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The change conflicts with the current state (already decided, invalid transition, duplicate).
    #[error("{what}")]
    Conflict { what: String },
    /// A stored value could not be read back as its domain type.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An error of the embedded SQLite engine outside sqlx (the ingestion thread).
    #[error("database error: {0}")]
    Engine(String),
}

impl StoreError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Migrate(_) => "migrate",
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::Corrupt { .. } => "corrupt",
            Self::Database(_) | Self::Engine(_) => "database",
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    pub(crate) fn corrupt(table: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            table,
            detail: detail.into(),
        }
    }
}
