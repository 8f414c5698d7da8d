//! Shared test set-up: a migrated store on SQLite or on PostgreSQL (a fresh
//! schema per test), and `on_both!` to run one body on each.

#![allow(dead_code)]

use brain::config::{Config, DatabaseUrl};
use brain::store::Store;

pub fn postgres_url() -> String {
    std::env::var("CEREBRO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A migrated store and what to clean up after it.
pub struct TestDb {
    pub store: Store,
    pub _dir: Option<tempfile::TempDir>,
    pub schema: Option<String>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.paths.data_dir = dir.path().to_owned();
        let store = Store::open(&config).await.expect("open sqlite store");
        TestDb {
            store,
            _dir: Some(dir),
            schema: None,
        }
    }

    pub async fn postgres() -> TestDb {
        let schema = format!("cerebro_test_{}", uuid::Uuid::new_v4().simple());
        let mut config = Config::default();
        config.database.url = Some(DatabaseUrl::new(postgres_url()));
        config.database.schema = Some(schema.clone());
        let store = Store::open(&config)
            .await
            .expect("open postgres store (is PostgreSQL running at CEREBRO_TEST_POSTGRES_URL?)");
        TestDb {
            store,
            _dir: None,
            schema: Some(schema),
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some(schema) = self.schema {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&postgres_url())
                .await
                .expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA \"{schema}\" CASCADE"
            )))
            .execute(&mut conn)
            .await
            .expect("drop test schema");
        }
    }
}

/// Define `name::on_sqlite` and `name::on_postgres` from one body.
#[macro_export]
macro_rules! on_both {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::common::TestDb;
            async fn run($db: &TestDb) $body

            #[tokio::test]
            async fn on_sqlite() {
                let db = TestDb::sqlite().await;
                run(&db).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn on_postgres() {
                let db = TestDb::postgres().await;
                run(&db).await;
                db.finish().await;
            }
        }
    };
}
