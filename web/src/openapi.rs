//! The OpenAPI 3.1 document, generated from the handlers' annotations, and a
//! reference page rendered from it on the server (no CDN, no script).

use crate::app::AppState;
use crate::error::ErrorBody;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cerebro",
        description = "Agentic AIOps: alerts in, incidents investigated, remediations proposed and held for approval.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "operations", description = "Health, readiness, metrics and configuration checks"),
        (name = "ingestion", description = "Alert sources and change events in: webhooks and the generic alert API"),
        (name = "incidents", description = "Incidents, their alerts and timelines, and the change feed"),
        (name = "approvals", description = "Actions held for a human: list, approve (the action then runs once) or reject, as an authenticated approver"),
        (name = "knowledge", description = "Runbooks, postmortems and documents: upload, search, and questions answered with citations"),
    )
)]
struct ApiDoc;

/// The document before the routes add their paths.
pub fn base() -> Document {
    ApiDoc::openapi()
}

/// `/api/openapi.json` and `/api/docs`.
pub fn routes(api: Arc<Document>) -> Router<AppState> {
    let json = serde_json::to_value(&*api).unwrap_or(Value::Null);
    let page = Arc::new(render_reference(&json));
    let json = Arc::new(json);
    Router::new()
        .route(
            "/api/openapi.json",
            get(|State(doc): State<Arc<Value>>| async move { Json((*doc).clone()) })
                .with_state(json),
        )
        .route(
            "/api/docs",
            get(|State(page): State<Arc<String>>| async move { Html((*page).clone()) })
                .with_state(page),
        )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn schema_name(v: &Value) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    match v.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!("[{}]", v.get("items").map(schema_name).unwrap_or_default())
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "object".into(),
    }
}

/// A plain HTML page listing every operation and schema of the document.
pub fn render_reference(doc: &Value) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} API reference</title>\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}}\
         h2{{border-bottom:1px solid #ccd;margin-top:2rem}}code,pre{{background:#f2f4f7;padding:.1rem .3rem;border-radius:3px}}\
         .m{{display:inline-block;min-width:4rem;font-weight:700}}.op{{margin:1rem 0;padding:.5rem 1rem;border-left:4px solid #6b7cff}}\
         table{{border-collapse:collapse}}td,th{{padding:.2rem .6rem;border-bottom:1px solid #e3e6ea;text-align:left}}\
         @media (prefers-color-scheme: dark){{body{{background:#111418;color:#e6e9ee}}code,pre{{background:#1d232b}}}}</style>\
         </head><body><h1>{t} API reference</h1><p>{d}</p><p>OpenAPI {v} document: <a href=\"/api/openapi.json\">/api/openapi.json</a></p>",
        t = esc(title),
        d = esc(doc["info"]["description"].as_str().unwrap_or_default()),
        v = esc(doc["openapi"].as_str().unwrap_or("?")),
    );
    h.push_str("<h2>Operations</h2>");
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let Some(ops) = item.as_object() else {
                continue;
            };
            for (method, op) in ops {
                let _ = write!(
                    h,
                    "<div class=\"op\"><span class=\"m\">{}</span><code>{}</code><p>{}</p>",
                    esc(&method.to_uppercase()),
                    esc(path),
                    esc(op["summary"]
                        .as_str()
                        .or(op["description"].as_str())
                        .unwrap_or_default()),
                );
                if let Some(params) = op["parameters"].as_array() {
                    h.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th></tr>");
                    for p in params {
                        let _ = write!(
                            h,
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or_default()),
                            esc(p["in"].as_str().unwrap_or_default()),
                            esc(&schema_name(&p["schema"])),
                            p["required"].as_bool().unwrap_or(false)
                        );
                    }
                    h.push_str("</table>");
                }
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    for (ct, body) in content {
                        let _ = write!(
                            h,
                            "<p>Body: <code>{}</code> {}</p>",
                            esc(ct),
                            esc(&schema_name(&body["schema"]))
                        );
                    }
                }
                if let Some(resps) = op["responses"].as_object() {
                    h.push_str("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>");
                    for (code, r) in resps {
                        let body = r["content"]
                            .as_object()
                            .and_then(|c| c.values().next())
                            .map(|c| schema_name(&c["schema"]))
                            .unwrap_or_default();
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                            esc(code),
                            esc(r["description"].as_str().unwrap_or_default()),
                            esc(&body)
                        );
                    }
                    h.push_str("</table>");
                }
                h.push_str("</div>");
            }
        }
    }
    h.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            let _ = write!(h, "<h3 id=\"{n}\">{n}</h3>", n = esc(name));
            if let Some(props) = s["properties"].as_object() {
                let required: Vec<&str> = s["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                h.push_str("<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>");
                for (field, p) in props {
                    let _ = write!(
                        h,
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(field),
                        esc(&schema_name(p)),
                        required.contains(&field.as_str()),
                        esc(p["description"].as_str().unwrap_or_default())
                    );
                }
                h.push_str("</table>");
            }
        }
    }
    h.push_str("</body></html>");
    h
}
