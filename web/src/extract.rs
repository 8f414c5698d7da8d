//! Request extractors whose rejections are [`ApiError`]s: a malformed body is
//! a 400 naming the field, an oversized one a 413, never a plain-text answer.

use crate::app::AppState;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// The raw body, within the configured limit.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

fn body_rejection(r: BytesRejection, limit: usize) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::bad_request(format!("reading request body: {r}"), "body")
    }
}

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = AppState::from_ref(state).config.server.body_limit_bytes;
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|r| body_rejection(r, limit))
    }
}

/// Parse JSON, naming the path of the first bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    brain::ingest::from_json(bytes).map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Alert {
        labels: std::collections::BTreeMap<String, String>,
        severity: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Batch {
        alerts: Vec<Alert>,
    }

    fn field_of(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected bad request, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let err =
            parse_json::<Batch>(br#"{"alerts":[{"labels":{},"severity":"x"},{"labels":{}}]}"#)
                .unwrap_err();
        assert_eq!(field_of(err).as_deref(), Some("alerts[1]"));
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path() {
        let err =
            parse_json::<Batch>(br#"{"alerts":[{"labels":{"a":1},"severity":"x"}]}"#).unwrap_err();
        assert_eq!(field_of(err).as_deref(), Some("alerts[0].labels.a"));
    }

    #[test]
    fn malformed_json_and_trailing_garbage_blame_the_body() {
        for body in [&br#"{"alerts": ["#[..], &br#"{"alerts": []} extra"#[..]] {
            let err = parse_json::<Batch>(body).unwrap_err();
            assert_eq!(field_of(err).as_deref(), Some("body"));
        }
    }
}

/// Query parameters, with a bad one named in a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." {
                    "query".to_owned()
                } else {
                    field
                };
                ApiError::bad_request(
                    format!("invalid query parameter {field}: {}", e.into_inner()),
                    field,
                )
            })
    }
}
