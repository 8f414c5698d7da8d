//! The knowledge base over HTTP: upload, list, read and delete documents;
//! search ranked chunks; ask a question and get a cited answer.

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery as Query;
use agents::knowledge::parse::{Format, ParseError};
use agents::knowledge::{
    Answer, DocumentChunks, Filters, Hit, KbError, KnowledgeBase, NewDoc, Outcome,
};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use brain::backends::vector::Retrieval;
use brain::domain::Document;
use brain::ids::DocumentId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

fn kb(state: &AppState) -> Result<&Arc<KnowledgeBase>, ApiError> {
    state
        .knowledge
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable {
            message: "the knowledge base is not available: its embedder or vector store did not \
                  start (see the service log)"
                .into(),
            retry_after: None,
        })
}

impl From<KbError> for ApiError {
    fn from(e: KbError) -> Self {
        match e {
            KbError::Parse(ParseError::Empty) => ApiError::bad_request("the file is empty", "file"),
            KbError::Parse(p) => ApiError::bad_request(p.to_string(), "file"),
            KbError::Unsupported(_) => ApiError::UnsupportedMediaType {
                message: e.to_string(),
                field: "file".into(),
            },
            KbError::Invalid(m) => ApiError::BadRequest {
                message: m,
                field: None,
            },
            KbError::Store(s) => s.into(),
            KbError::Embed(_) | KbError::Vector(_) => ApiError::Unavailable {
                message: e.to_string(),
                retry_after: Some(std::time::Duration::from_secs(5)),
            },
        }
    }
}

fn parse_id(id: &str) -> Result<DocumentId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a document id"), "id"))
}

/// A document given as JSON text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextDocument {
    pub title: String,
    pub text: String,
    /// `markdown` (default), `text` or `html`.
    pub format: Option<String>,
    /// Identifies the document for replacement; defaults to the title.
    pub name: Option<String>,
    /// `runbook`, `postmortem` or `doc` (default).
    pub doc_type: Option<String>,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub tenant: Option<String>,
}

/// What an upload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ingested {
    pub document: Document,
    /// `created`, `updated` or `unchanged`.
    #[schema(value_type = String)]
    pub outcome: Outcome,
}

const DOC_TYPES: &[&str] = &["runbook", "postmortem", "doc"];

fn check_doc_type(t: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    match t {
        Some(t) if !DOC_TYPES.contains(&t.as_str()) => Err(ApiError::bad_request(
            format!("unknown doc_type {t:?}; one of runbook, postmortem, doc"),
            field,
        )),
        other => Ok(other),
    }
}

fn list_field(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Add or replace a document: multipart (`file`, and optional `title`,
/// `doc_type`, `services`, `categories` as comma lists, `tenant`, `name`) or
/// JSON text. The same tenant and name replace the earlier version.
#[utoipa::path(post, path = "/api/v1/documents", tag = "knowledge",
    request_body(content = TextDocument, description = "JSON text, or multipart/form-data with a `file` part"),
    responses(
        (status = 201, description = "indexed", body = Ingested),
        (status = 200, description = "replaced, or unchanged", body = Ingested),
        (status = 400, description = "empty or unreadable file, bad field", body = ErrorBody),
        (status = 413, description = "over knowledge.max_upload_bytes", body = ErrorBody),
        (status = 415, description = "unsupported file type", body = ErrorBody),
        (status = 503, description = "embedder or vector store unavailable", body = ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    req: Request,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    let kb = kb(&state)?.clone();
    let limit = state.config.knowledge.max_upload_bytes;
    let too_large = ApiError::PayloadTooLarge { limit };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refuse before reading when the client says it is too big.
    if declared.is_some_and(|n| n > limit as u64 + 64 * 1024) {
        return Err(too_large);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let doc = if content_type.starts_with("multipart/form-data") {
        from_multipart(&state, req, limit).await?
    } else if content_type.starts_with("application/json") {
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit })?;
        let body: TextDocument = crate::extract::parse_json(&bytes)?;
        from_json(body)?
    } else {
        return Err(ApiError::UnsupportedMediaType {
            message: format!(
                "Content-Type {content_type:?}: send multipart/form-data with a `file` part, \
                 or application/json"
            ),
            field: "body".into(),
        });
    };
    let (document, outcome) = kb.ingest(doc).await?;
    let status = if outcome == Outcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Ingested { document, outcome })))
}

fn from_json(body: TextDocument) -> Result<NewDoc, ApiError> {
    let format = match body.format.as_deref().unwrap_or("markdown") {
        "markdown" | "md" => Format::Markdown,
        "text" | "plain" => Format::Text,
        "html" => Format::Html,
        other => {
            return Err(ApiError::bad_request(
                format!("unknown format {other:?}; one of markdown, text, html"),
                "format",
            ));
        }
    };
    if body.title.trim().is_empty() {
        return Err(ApiError::bad_request("the title is empty", "title"));
    }
    if body.text.trim().is_empty() {
        return Err(ApiError::bad_request("the text is empty", "text"));
    }
    Ok(NewDoc {
        tenant: body.tenant.unwrap_or_else(|| "default".into()),
        source: "upload".into(),
        path: body.name.unwrap_or_else(|| body.title.clone()),
        format,
        bytes: body.text.into_bytes(),
        title: Some(body.title),
        doc_type: check_doc_type(body.doc_type, "doc_type")?,
        services: body.services,
        categories: body.categories,
    })
}

async fn from_multipart(state: &AppState, req: Request, limit: usize) -> Result<NewDoc, ApiError> {
    let mut form = Multipart::from_request(req, state).await.map_err(|e| {
        ApiError::bad_request(format!("not a multipart form: {}", e.body_text()), "body")
    })?;
    let mut file: Option<(String, Option<String>, Vec<u8>)> = None;
    let mut fields = std::collections::BTreeMap::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    format!("reading the form: {}", e.body_text()),
                    "body",
                ));
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let filename = field.file_name().unwrap_or("upload").to_owned();
            let mime = field.content_type().map(str::to_owned);
            let mut data = Vec::new();
            let mut field = field;
            loop {
                match field.chunk().await {
                    Ok(Some(c)) => {
                        if data.len() + c.len() > limit {
                            return Err(ApiError::PayloadTooLarge { limit });
                        }
                        data.extend_from_slice(&c);
                    }
                    Ok(None) => break,
                    Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                        return Err(ApiError::PayloadTooLarge { limit });
                    }
                    Err(e) => {
                        return Err(ApiError::bad_request(
                            format!("reading the file: {}", e.body_text()),
                            "file",
                        ));
                    }
                }
            }
            file = Some((filename, mime, data));
        } else {
            let value = field.text().await.map_err(|e| {
                ApiError::bad_request(format!("reading `{name}`: {}", e.body_text()), name.clone())
            })?;
            const KNOWN: &[&str] = &[
                "title",
                "doc_type",
                "services",
                "categories",
                "tenant",
                "name",
            ];
            if !KNOWN.contains(&name.as_str()) {
                return Err(ApiError::bad_request(
                    format!(
                        "unknown form field `{name}`; known: file, {}",
                        KNOWN.join(", ")
                    ),
                    name,
                ));
            }
            fields.insert(name, value);
        }
    }
    let Some((filename, mime, data)) = file else {
        return Err(ApiError::bad_request("the form has no `file` part", "file"));
    };
    let format = Format::detect(&filename, mime.as_deref()).ok_or_else(|| {
        ApiError::UnsupportedMediaType {
            message: KbError::Unsupported(format!(
                "{filename} ({})",
                mime.as_deref().unwrap_or("no media type")
            ))
            .to_string(),
            field: "file".into(),
        }
    })?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            format!("{filename} is empty"),
            "file",
        ));
    }
    Ok(NewDoc {
        tenant: fields
            .remove("tenant")
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| "default".into()),
        source: "upload".into(),
        path: fields.remove("name").unwrap_or(filename),
        format,
        bytes: data,
        title: fields.remove("title").filter(|t| !t.trim().is_empty()),
        doc_type: check_doc_type(fields.remove("doc_type"), "doc_type")?,
        services: fields
            .remove("services")
            .map(|s| list_field(&s))
            .unwrap_or_default(),
        categories: fields
            .remove("categories")
            .map(|s| list_field(&s))
            .unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DocumentQuery {
    /// Defaults to `default`.
    tenant: Option<String>,
    /// `runbook`, `upload` or `incident`.
    source: Option<String>,
}

/// Documents of a tenant, by path.
#[utoipa::path(get, path = "/api/v1/documents", tag = "knowledge", params(DocumentQuery),
    responses((status = 200, description = "documents", body = [Document])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<DocumentQuery>,
) -> Result<Json<Vec<Document>>, ApiError> {
    let tenant = q.tenant.unwrap_or_else(|| "default".into());
    Ok(Json(kb(&state)?.list(&tenant, q.source.as_deref()).await?))
}

/// A document with its chunks.
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "knowledge",
    params(("id" = String, Path, description = "document id")),
    responses(
        (status = 200, description = "the document and its chunks", body = DocumentChunks),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such document", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DocumentChunks>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(kb(&state)?.get(id).await?))
}

/// Delete a document; its chunks leave search at once.
#[utoipa::path(delete, path = "/api/v1/documents/{id}", tag = "knowledge",
    params(("id" = String, Path, description = "document id")),
    responses(
        (status = 200, description = "deleted", body = Document),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such document", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Document>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(kb(&state)?.delete(id).await?))
}

/// A search over the knowledge base.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    pub filters: Option<Filters>,
    /// 1 to 50, default 10.
    pub limit: Option<usize>,
    /// `hybrid` (default), `dense` or `keyword`.
    #[schema(value_type = Option<String>)]
    pub retrieval: Option<Retrieval>,
}

/// Ranked chunks, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
}

/// Ranked chunks without generation.
#[utoipa::path(post, path = "/api/v1/search", tag = "knowledge",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "ranked chunks", body = SearchResponse),
        (status = 400, description = "a bad field", body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    crate::extract::RawBody(body): crate::extract::RawBody,
) -> Result<Json<SearchResponse>, ApiError> {
    let req: SearchRequest = crate::extract::parse_json(&body)?;
    if req.query.trim().is_empty() {
        return Err(ApiError::bad_request("the query is empty", "query"));
    }
    let limit = req.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_request("limit is 1 to 50", "limit"));
    }
    let hits = kb(&state)?
        .search(
            &req.query,
            &req.filters.unwrap_or_default(),
            req.retrieval.unwrap_or(Retrieval::Hybrid),
            limit,
        )
        .await?;
    Ok(Json(SearchResponse { hits }))
}

/// A question for the knowledge base.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub question: String,
    pub filters: Option<Filters>,
}

/// Answer a question from runbooks, postmortems and documents, citing
/// them; says so when nothing relevant is found.
#[utoipa::path(post, path = "/api/v1/ask", tag = "knowledge",
    request_body = AskRequest,
    responses(
        (status = 200, description = "the answer and its citations", body = Answer),
        (status = 400, description = "a bad field", body = ErrorBody)))]
pub async fn ask(
    State(state): State<AppState>,
    crate::extract::RawBody(body): crate::extract::RawBody,
) -> Result<Json<Answer>, ApiError> {
    let req: AskRequest = crate::extract::parse_json(&body)?;
    if req.question.trim().is_empty() {
        return Err(ApiError::bad_request("the question is empty", "question"));
    }
    Ok(Json(
        kb(&state)?
            .ask(&req.question, &req.filters.unwrap_or_default())
            .await?,
    ))
}
