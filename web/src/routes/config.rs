//! Configuration checks over HTTP, so a change can be validated against the
//! running version before it is rolled out.

use crate::error::ApiError;
use crate::extract::RawBody;
use axum::Json;
use brain::config::{Config, ConfigError};
use serde::Serialize;
use std::path::Path;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct ConfigValidation {
    valid: bool,
    /// The first problem found, naming the line or key.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The key at fault, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// Validate a TOML configuration file as `cerebro serve --config` would
/// (environment variables of the server are not applied).
#[utoipa::path(post, path = "/api/v1/config/validate", tag = "operations",
    request_body(content = String, content_type = "application/toml", description = "a cerebro TOML config file"),
    responses(
        (status = 200, description = "the verdict", body = ConfigValidation),
        (status = 400, description = "the body is not UTF-8", body = crate::error::ErrorBody),
        (status = 413, description = "the body is over the size limit", body = crate::error::ErrorBody)))]
pub async fn validate_config(RawBody(body): RawBody) -> Result<Json<ConfigValidation>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("config is not UTF-8: {e}"), "body"))?;
    let verdict = match Config::load_str(text, Path::new("request body"), std::iter::empty()) {
        Ok(_) => ConfigValidation {
            valid: true,
            error: None,
            key: None,
        },
        Err(e) => {
            let key = match &e {
                ConfigError::Invalid { key, .. } => Some(key.clone()),
                _ => None,
            };
            ConfigValidation {
                valid: false,
                error: Some(e.to_string()),
                key,
            }
        }
    };
    Ok(Json(verdict))
}
