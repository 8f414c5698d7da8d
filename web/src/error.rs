//! The error shape of every API response: 4xx bodies name what was wrong and
//! which field; 5xx bodies carry only an `error_id` that the log line repeats.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brain::store::StoreError;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person; `internal` for server faults.
    pub error: String,
    /// The request field at fault (a JSON path like `alerts[0].labels`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For 5xx: quote this id to find the log line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
}

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    /// A body in a format the endpoint does not read.
    #[error("{message}")]
    UnsupportedMediaType { message: String, field: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Too much work queued: the client should retry after a pause.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after: Duration,
    },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, field: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => Self::NotFound { what },
            StoreError::Conflict { what } => Self::Conflict(what),
            other => Self::Internal(other.into()),
        }
    }
}

/// A fresh id for a 5xx, logged with the error it stands for.
pub fn new_error_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The 5xx body, after logging the cause under the same id.
pub fn internal_response(cause: &dyn std::fmt::Display) -> Response {
    let error_id = new_error_id();
    tracing::error!(error_id = %error_id, error = %cause, "internal error");
    let body = ErrorBody {
        error: "internal".into(),
        field: None,
        error_id: Some(error_id),
    };
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::Internal(e) => internal_response(&format!("{e:#}")),
            Self::Overloaded {
                message,
                retry_after,
            } => with_retry_after(status, message, Some(retry_after)),
            Self::Unavailable {
                message,
                retry_after,
            } => with_retry_after(status, message, retry_after),
            other => {
                let field = match &other {
                    Self::BadRequest { field, .. } => field.clone(),
                    Self::UnsupportedMediaType { field, .. } => Some(field.clone()),
                    Self::PayloadTooLarge { .. } => Some("body".into()),
                    _ => None,
                };
                let body = ErrorBody {
                    error: other.to_string(),
                    field,
                    error_id: None,
                };
                (status, Json(body)).into_response()
            }
        }
    }
}

fn with_retry_after(
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> Response {
    let body = ErrorBody {
        error: message,
        field: None,
        error_id: None,
    };
    let mut resp = (status, Json(body)).into_response();
    if let Some(d) = retry_after
        && let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
