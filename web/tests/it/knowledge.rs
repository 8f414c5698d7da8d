//! The knowledge base over HTTP, with the real embedder and qdrant-edge:
//! runbooks indexed at startup, uploads of Markdown and PDF, ask and search
//! with citations, deletion, and bad input that is refused without
//! indexing anything.

use crate::harness::App;
use models::fetch::MINILM_L6_V2;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The weights directory holding all-minilm-l6-v2, fetched on first use.
fn weights_dir() -> PathBuf {
    let model = crate::models_common::weights(&MINILM_L6_V2);
    model.parent().expect("weights dir").to_owned()
}

fn runbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks")
}

/// The service with the default embedder and the project's runbooks;
/// returns once every runbook is indexed.
async fn app(max_upload: usize) -> App {
    let weights = weights_dir();
    let app = App::start(
        move |c| {
            c.paths.weights_dir = weights;
            c.paths.runbooks_dir = runbooks();
            c.knowledge.max_upload_bytes = max_upload;
            c.server.request_timeout_secs = 120;
        },
        None,
    )
    .await;
    let want = std::fs::read_dir(runbooks())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "md"))
        })
        .count();
    for _ in 0..600 {
        let docs = list(&app, "?source=runbook").await;
        if docs.len() == want {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the runbooks were not indexed within 120 s");
}

async fn list(app: &App, query: &str) -> Vec<Value> {
    let r = reqwest::get(app.url(&format!("/api/v1/documents{query}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Vec<Value>>().await.unwrap()
}

async fn post(app: &App, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A multipart/form-data body with one file part and text fields.
fn multipart(
    filename: &str,
    mime: &str,
    data: &[u8],
    fields: &[(&str, &str)],
) -> (String, Vec<u8>) {
    let boundary = format!("cerebro-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    app: &App,
    filename: &str,
    mime: &str,
    data: &[u8],
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let (content_type, body) = multipart(filename, mime, data, fields);
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/documents"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An upload over a raw socket. The server answers a too-large body
/// before reading all of it and closes; an HTTP client library may fail
/// on the unsent rest and never show that answer, so the body is written
/// from another task (its write errors ignored) while the answer is read.
async fn upload_raw(
    app: &App,
    filename: &str,
    mime: &str,
    data: &[u8],
    chunked: bool,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (content_type, body) = multipart(filename, mime, data, &[]);
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST /api/v1/documents HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
         {framing}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for piece in body.chunks(256 * 1024) {
            if chunked {
                wr.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                wr.write_all(piece).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(piece).await?;
            }
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        std::io::Result::Ok(())
    });
    // Read until the head and the whole declared body are in.
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let (status, body) = loop {
        let n = tokio::time::timeout(Duration::from_secs(60), rd.read(&mut buf))
            .await
            .expect("no answer within 60 s")
            .unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let status: u16 = head[9..12].parse().expect("status code");
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("a content-length on the answer");
            if got.len() >= end + 4 + length {
                break (status, got[end + 4..end + 4 + length].to_vec());
            }
        }
        assert!(n > 0, "the connection closed before a whole answer: {text}");
    };
    writer.abort();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A one-page PDF with `lines` of text in Helvetica, its xref computed.
fn pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT /F1 12 Tf 72 740 Td 14 TL\n");
    for l in lines {
        content.push_str(&format!(
            "({}) Tj T*\n",
            l.replace('(', "\\(").replace(')', "\\)")
        ));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_cites_the_runbook_section_and_says_so_when_nothing_matches() {
    let app = app(1024 * 1024).await;
    let (status, a) = post(
        &app,
        "/api/v1/ask",
        json!({"question": "how do we fail over orders-db?"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["answered"], true);
    let c = &a["citations"][0];
    for key in ["doc_id", "title", "chunk_id", "excerpt", "score"] {
        assert!(!c[key].is_null(), "citation lacks {key}: {c}");
    }
    let doc: Value = reqwest::get(app.url(&format!(
        "/api/v1/documents/{}",
        c["doc_id"].as_str().unwrap()
    )))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["path"], "postgres-failover.md", "{a:#}");
    assert!(
        doc["chunk_list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["chunk_id"] == c["chunk_id"]),
        "the cited chunk belongs to the cited document"
    );
    assert!(a["confidence"].as_f64().unwrap() > 0.35);

    let (status, a) = post(
        &app,
        "/api/v1/ask",
        json!({"question": "what is a good recipe for sourdough bread?"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(a["answered"], false, "{a:#}");
    assert_eq!(a["citations"], json!([]));
    assert_eq!(a["confidence"], 0.0);

    let (status, s) = post(
        &app,
        "/api/v1/search",
        json!({"query": "S3 SlowDown on the segments bucket", "limit": 3, "filters": {"doc_type": "runbook"}}),
    )
    .await;
    assert_eq!(status, 200, "{s}");
    let hits = s["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["path"], "s3-throttling-slowdown.md", "{s:#}");

    let (status, e) = post(&app, "/api/v1/ask", json!({"question": "  "})).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("question")));
    let (status, e) = post(&app, "/api/v1/search", json!({"query": "x", "limit": 0})).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("limit")));
    let (status, e) = post(
        &app,
        "/api/v1/search",
        json!({"query": "x", "filters": {"team": "a"}}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("team"), "{e}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_pdf_and_markdown_are_searchable_and_deletion_removes_them() {
    let app = app(1024 * 1024).await;
    let pdf = pdf(&[
        "Quokka gateway failover procedure",
        "Drain the quokka gateway in zone b before promoting zone c.",
        "Confirm with the quokka_active_zone metric.",
    ]);
    let (status, up) = upload(
        &app,
        "quokka.pdf",
        "application/pdf",
        &pdf,
        &[("services", "quokka-gw")],
    )
    .await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["outcome"], "created");
    assert_eq!(up["document"]["mime"], "application/pdf");
    assert_eq!(up["document"]["services"], json!(["quokka-gw"]));
    let pdf_id = up["document"]["id"].as_str().unwrap().to_owned();

    let md = b"---\ntitle: Wombat queue drain\nservices: [wombat]\n---\n# Wombat queue drain\n\n## Steps\n\nPause the wombat producers, then drain the queue with wombatctl drain --all.\n";
    let (status, up) = upload(&app, "wombat.md", "text/markdown", md, &[]).await;
    assert_eq!(status, 201, "{up}");
    let md_id = up["document"]["id"].as_str().unwrap().to_owned();
    // The same file again changes nothing.
    let (status, again) = upload(&app, "wombat.md", "text/markdown", md, &[]).await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (200, Some("unchanged"))
    );

    let (_, a) = post(
        &app,
        "/api/v1/ask",
        json!({"question": "how do I drain the quokka gateway?"}),
    )
    .await;
    assert_eq!(a["answered"], true, "{a:#}");
    assert_eq!(a["citations"][0]["doc_id"], pdf_id.as_str(), "{a:#}");
    assert!(a["answer"].as_str().unwrap().contains("zone b"), "{a:#}");
    let (_, s) = post(
        &app,
        "/api/v1/search",
        json!({"query": "wombatctl drain", "filters": {"service": "wombat"}}),
    )
    .await;
    assert_eq!(s["hits"][0]["doc_id"], md_id.as_str(), "{s:#}");
    assert_eq!(s["hits"][0]["section"], "Steps");

    // JSON text works too.
    let (status, up) = post(
        &app,
        "/api/v1/documents",
        json!({"title": "Numbat notes", "text": "Restart numbat with numbatctl bounce.", "format": "text"}),
    )
    .await;
    assert_eq!(status, 201, "{up}");

    for id in [&pdf_id, &md_id] {
        let r = reqwest::Client::new()
            .delete(app.url(&format!("/api/v1/documents/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = reqwest::get(app.url(&format!("/api/v1/documents/{id}")))
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    for q in ["quokka", "wombatctl"] {
        let (_, s) = post(
            &app,
            "/api/v1/search",
            json!({"query": q, "retrieval": "keyword"}),
        )
        .await;
        assert_eq!(s["hits"], json!([]), "{q}: {s:#}");
    }
    let r = reqwest::Client::new()
        .delete(app.url(&format!("/api/v1/documents/{pdf_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_clearly_and_index_nothing() {
    let app = app(20 * 1024 * 1024).await;
    let before = list(&app, "").await.len();

    let (status, e) = upload(
        &app,
        "notes.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        b"PK\x03\x04...",
        &[],
    )
    .await;
    assert_eq!((status, e["field"].as_str()), (415, Some("file")), "{e}");
    assert!(e["error"].as_str().unwrap().contains("notes.docx"), "{e}");

    let (status, e) = upload(&app, "empty.md", "text/markdown", b"", &[]).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("file")), "{e}");
    assert!(e["error"].as_str().unwrap().contains("empty"), "{e}");

    let (status, e) = upload(
        &app,
        "broken.pdf",
        "application/pdf",
        b"%PDF-1.4\n1 0 obj << >>\n%%EOF",
        &[],
    )
    .await;
    assert_eq!((status, e["field"].as_str()), (400, Some("file")), "{e}");

    let (status, e) = upload(
        &app,
        "bad.md",
        "text/markdown",
        b"---\nservices: [a\n---\n# T\n\ntext\n",
        &[],
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("front matter"), "{e}");

    // 50 MiB against a 20 MiB limit, declared: refused before it is read.
    // Undeclared (chunked): refused once the limit is passed.
    let big = vec![b'a'; 50 * 1024 * 1024];
    for chunked in [false, true] {
        let (status, e) = upload_raw(&app, "big.txt", "text/plain", &big, chunked).await;
        assert_eq!(status, 413, "chunked={chunked}: {e}");
        assert!(e["error"].as_str().unwrap().contains("larger than"), "{e}");
    }

    let (status, e) = post(
        &app,
        "/api/v1/documents",
        json!({"title": "x", "text": "y", "format": "docx"}),
    )
    .await;
    assert_eq!((status, e["field"].as_str()), (400, Some("format")), "{e}");
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/documents"))
        .header("content-type", "application/octet-stream")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    assert_eq!(
        list(&app, "").await.len(),
        before,
        "a refused upload left a document behind"
    );
    // The service still works after all that.
    let (status, a) = post(
        &app,
        "/api/v1/ask",
        json!({"question": "pods exit 137 what now"}),
    )
    .await;
    assert_eq!(
        (status, a["answered"].as_bool()),
        (200, Some(true)),
        "{a:#}"
    );
    app.finish().await;
}
