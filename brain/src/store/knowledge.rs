//! Knowledge-base document records (the text and vectors live in the vector
//! store; this is the catalogue, used to skip unchanged files and to delete).

use super::incidents::now;
use super::{BeginWrite, Store, StoreError, with_db};
use crate::domain::Document;
use crate::ids::DocumentId;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

/// A document to record. `id` is used only when no document has this
/// (org, source, path) yet; an existing one keeps its id.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: DocumentId,
    pub org_id: String,
    pub source: String,
    pub path: String,
    pub title: String,
    pub mime: String,
    pub content_hash: String,
    pub size_bytes: i64,
    pub doc_type: String,
    pub services: Vec<String>,
    pub categories: Vec<String>,
    pub chunks: i64,
}

/// What [`Store::upsert_document`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
    Unchanged,
}

#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: Uuid,
    org_id: String,
    source: String,
    path: String,
    title: String,
    mime: String,
    content_hash: String,
    size_bytes: i64,
    doc_type: String,
    services: Json<Vec<String>>,
    categories: Json<Vec<String>>,
    chunks: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<DocumentRow> for Document {
    fn from(r: DocumentRow) -> Self {
        Document {
            id: DocumentId(r.id),
            org_id: r.org_id,
            source: r.source,
            path: r.path,
            title: r.title,
            mime: r.mime,
            content_hash: r.content_hash,
            size_bytes: r.size_bytes,
            doc_type: r.doc_type,
            services: r.services.0,
            categories: r.categories.0,
            chunks: r.chunks,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! document_columns {
    () => {
        "id, org_id, source, path, title, mime, content_hash, size_bytes, doc_type, services, \
         categories, chunks, created_at, updated_at"
    };
}

impl Store {
    /// Record a document by (org, source, path). An unchanged content hash
    /// leaves the row alone, so the caller can skip re-embedding it.
    pub async fn upsert_document(&self, d: NewDocument) -> Result<(Document, Upsert), StoreError> {
        let at = now();
        with_db!(self, write, |p| {
            let mut tx = p.begin_write().await?;
            let sql = concat!(
                "SELECT ",
                document_columns!(),
                " FROM documents WHERE org_id = $1 AND source = $2 AND path = $3"
            );
            let existing: Option<DocumentRow> = sqlx::query_as(sql)
                .bind(&d.org_id)
                .bind(&d.source)
                .bind(&d.path)
                .fetch_optional(&mut *tx)
                .await?;
            let mut existing = existing;
            if let Some(same) = existing.take_if(|e| {
                e.content_hash == d.content_hash
                    && e.title == d.title
                    && e.doc_type == d.doc_type
                    && e.services.0 == d.services
                    && e.categories.0 == d.categories
                    && e.chunks == d.chunks
            }) {
                return Ok((same.into(), Upsert::Unchanged));
            }
            let outcome = if existing.is_some() {
                Upsert::Updated
            } else {
                Upsert::Created
            };
            let id = existing.as_ref().map_or(d.id.0, |e| e.id);
            let sql = concat!(
                "INSERT INTO documents (",
                document_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
                 ON CONFLICT (org_id, source, path) DO UPDATE SET title = excluded.title,
                     mime = excluded.mime, content_hash = excluded.content_hash,
                     size_bytes = excluded.size_bytes, doc_type = excluded.doc_type,
                     services = excluded.services, categories = excluded.categories,
                     chunks = excluded.chunks, updated_at = excluded.updated_at
                 RETURNING ",
                document_columns!()
            );
            let row: DocumentRow = sqlx::query_as(sql)
                .bind(id)
                .bind(&d.org_id)
                .bind(&d.source)
                .bind(&d.path)
                .bind(&d.title)
                .bind(&d.mime)
                .bind(&d.content_hash)
                .bind(d.size_bytes)
                .bind(&d.doc_type)
                .bind(Json(&d.services))
                .bind(Json(&d.categories))
                .bind(d.chunks)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((row.into(), outcome))
        })
    }

    pub async fn get_document(&self, id: DocumentId) -> Result<Document, StoreError> {
        let sql = concat!(
            "SELECT ",
            document_columns!(),
            " FROM documents WHERE id = $1"
        );
        let row: Option<DocumentRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql).bind(id.0).fetch_optional(p).await?
        });
        row.map(Into::into)
            .ok_or_else(|| StoreError::not_found(format!("document {id}")))
    }

    /// The document at (org, source, path), if any.
    pub async fn find_document(
        &self,
        org_id: &str,
        source: &str,
        path: &str,
    ) -> Result<Option<Document>, StoreError> {
        let sql = concat!(
            "SELECT ",
            document_columns!(),
            " FROM documents WHERE org_id = $1 AND source = $2 AND path = $3"
        );
        let row: Option<DocumentRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql)
                .bind(org_id)
                .bind(source)
                .bind(path)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(Into::into))
    }

    pub async fn list_documents(
        &self,
        org_id: &str,
        source: Option<&str>,
    ) -> Result<Vec<Document>, StoreError> {
        let sql = concat!(
            "SELECT ",
            document_columns!(),
            " FROM documents WHERE org_id = $1 AND ($2 IS NULL OR source = $2)
             ORDER BY path"
        );
        let rows: Vec<DocumentRow> = with_db!(self, read, |p| {
            sqlx::query_as(sql)
                .bind(org_id)
                .bind(source)
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn delete_document(&self, id: DocumentId) -> Result<(), StoreError> {
        let n = with_db!(self, write, |p| {
            sqlx::query("DELETE FROM documents WHERE id = $1")
                .bind(id.0)
                .execute(p)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::not_found(format!("document {id}")));
        }
        Ok(())
    }
}
