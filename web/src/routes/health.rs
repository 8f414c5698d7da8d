//! Liveness and readiness.

use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process is alive and serving.
    status: &'static str,
    version: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseReadiness {
    /// `sqlite` or `postgres`.
    kind: &'static str,
    reachable: bool,
    migrations_applied: usize,
    migrations_expected: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    database: DatabaseReadiness,
}

/// Ready to serve: the database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready: see which check failed", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let db = state.store.readiness().await;
    let ready = db.is_ready();
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        database: DatabaseReadiness {
            kind: match state.store.dialect() {
                brain::store::Dialect::Sqlite => "sqlite",
                brain::store::Dialect::Postgres => "postgres",
            },
            reachable: db.reachable,
            migrations_applied: db.migrations_applied,
            migrations_expected: db.migrations_expected,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
