//! `GET /`: the front page, until the console of issue #9 takes it over.

use axum::response::Html;

/// Links to what the service offers today.
pub async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cerebro</title>",
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}",
        "@media (prefers-color-scheme: dark){body{background:#111418;color:#e6e9ee}a{color:#8ab4ff}}</style>",
        "</head><body><h1>cerebro</h1><p>Agentic AIOps service, version ",
        env!("CARGO_PKG_VERSION"),
        ".</p><p>The incident console is not built yet. Available now:</p><ul>",
        "<li><a href=\"/api/docs\">API reference</a> (<a href=\"/api/openapi.json\">OpenAPI 3.1</a>)</li>",
        "<li><a href=\"/healthz\">/healthz</a> and <a href=\"/readyz\">/readyz</a></li>",
        "<li><a href=\"/metrics\">/metrics</a> (Prometheus)</li></ul></body></html>"
    ))
}
