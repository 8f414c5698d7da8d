//! The openai provider against a real OpenAI-compatible server:
//! llama-cpp-python's, serving a small GGUF chat model (SmolLM2-135M by
//! default) with `chatml-function-calling` (the chat format of that server
//! that takes `tools` and `tool_choice`; SmolLM2 and Qwen2.5 are ChatML
//! models, so plain chat renders the same) and `--embedding` on.
//!
//! One server is started for the whole test binary. It runs under a small
//! shell watchdog that kills it when this process's end of a pipe closes, so
//! it goes away when the tests end however they end; [`Server`]'s `Drop`
//! closes that pipe too.
//!
//! Needs the venv of `deploy/scripts/python-peers.sh llama-cpp` (or
//! `CEREBRO_LLAMA_CPP_PYTHON`) and a GGUF (`CEREBRO_TEST_GGUF`, or
//! `cerebro fetch-models`' `models/weights/*/model.gguf`). Without them the
//! tests fail, saying so.
//!
//! Error mapping is also checked against tiny local HTTP servers (std
//! `TcpListener`) that answer 429/401/503/... as given.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use brain::backends::llm::{
    ChatRequest, Embedder, LlmError, LlmProvider, Message, ResponseFormat, Role, ToolCall,
    ToolDefinition,
};
use models::openai::{OpenAiChat, OpenAiConfig, OpenAiEmbedder, ToolChoice};
use serde_json::{Value, json};

const MODEL_NAME: &str = "smol-test";

// ---------------------------------------------------------------------------
// The llama-cpp-python server
// ---------------------------------------------------------------------------

fn gguf() -> PathBuf {
    if let Some(p) = std::env::var_os("CEREBRO_TEST_GGUF") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "CEREBRO_TEST_GGUF={} is not a file",
            p.display()
        );
        return p;
    }
    // The fetched SmolLM2 (small, fast), fetched here if missing.
    common::weights(&models::fetch::SMOLLM2_135M).join("model.gguf")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server; dropping it stops it.
struct Server {
    base_url: String,
    port: u16,
    log: PathBuf,
    /// The watchdog's stdin: closing it stops the server.
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut stdin) = self.stdin.lock() {
            stdin.take();
        }
        if let Ok(mut child) = self.child.lock() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// GET `path` over plain HTTP/1.0; the status code, if any answer came.
fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Server {
    fn start() -> Server {
        let python = common::llama_cpp_python();
        let model = gguf();
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "cerebro-openai-test-{}-{port}.log",
            std::process::id()
        ));
        // The watchdog: runs the server and kills it (and removes its log)
        // once its stdin closes: this process ended or dropped the Server.
        let script = r#"log=$1; shift
"$@" </dev/null >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
read -r _ignored || true
kill $pid 2>/dev/null
wait $pid 2>/dev/null
rm -f "$log"
exit 0"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&log)
            .arg(&python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args(["--model_alias", MODEL_NAME])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "2048", "--n_threads", "1"])
            .args(["--chat_format", "chatml-function-calling"])
            .args(["--embedding", "true"])
            // By default a new request cuts a streaming one short.
            .args(["--interrupt_requests", "false"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start sh for the llama-cpp-python server");
        let stdin = child.stdin.take();
        let server = Server {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            port,
            log,
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        };
        let started = Instant::now();
        loop {
            if http_get_status(port, "/v1/models") == Some(200) {
                eprintln!(
                    "llama-cpp-python server ({}) ready in {:.1?}",
                    model.display(),
                    started.elapsed()
                );
                return server;
            }
            if let Ok(Some(status)) = server.child.lock().unwrap().try_wait() {
                panic!(
                    "the llama-cpp-python server exited ({status}); its log:\n{}",
                    log_tail(&server.log)
                );
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!(
                    "the llama-cpp-python server did not answer /v1/models within 60 s; its log:\n{}",
                    log_tail(&server.log)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The server all tests share (started by the first that needs it).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

fn config() -> OpenAiConfig {
    let mut cfg = OpenAiConfig::new(server().base_url.clone(), MODEL_NAME);
    cfg.timeout = Duration::from_secs(120);
    cfg
}

fn chat() -> OpenAiChat {
    OpenAiChat::new(&config()).unwrap()
}

fn user(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, text)],
        temperature: Some(0.0),
        max_tokens: Some(12),
        ..ChatRequest::default()
    }
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "The current weather in a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
    }
}

// ---------------------------------------------------------------------------
// Against the real server
// ---------------------------------------------------------------------------

#[tokio::test]
async fn plain_chat_is_greedy_and_counts_usage() {
    let chat = chat();
    assert_eq!(chat.provider(), "openai");
    assert_eq!(chat.model(), MODEL_NAME);
    let started = Instant::now();
    let a = chat
        .chat(user("What is the capital of France?"))
        .await
        .unwrap();
    eprintln!("plain chat: {:?} in {:.1?}", a.content, started.elapsed());
    assert!(!a.content.trim().is_empty(), "{a:?}");
    assert!(a.tool_calls.is_empty());
    assert!(a.usage.input_tokens > 5, "{:?}", a.usage);
    assert!(
        a.usage.output_tokens >= 1 && a.usage.output_tokens <= 12,
        "{:?}",
        a.usage
    );
    assert_eq!(a.model, MODEL_NAME);
    // Greedy: the same answer again.
    let b = chat
        .chat(user("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(a.content, b.content);

    // A system message and a longer limit are accepted too.
    let mut req = user("Say hello.");
    req.messages.insert(
        0,
        Message::new(Role::System, "You are a helpful assistant."),
    );
    req.max_tokens = Some(4);
    let c = chat.chat(req).await.unwrap();
    assert!(c.usage.output_tokens <= 4, "{:?}", c.usage);
}

#[tokio::test]
async fn streaming_pieces_make_the_answer() {
    let chat = chat();
    let pieces = Mutex::new(Vec::<String>::new());
    let sink = |s: &str| pieces.lock().unwrap().push(s.to_owned());
    let started = Instant::now();
    let streamed = chat
        .chat_stream(user("What is the capital of France?"), &sink)
        .await
        .unwrap();
    eprintln!(
        "streamed: {:?} in {:.1?}",
        streamed.content,
        started.elapsed()
    );
    let pieces = pieces.into_inner().unwrap();
    assert!(pieces.len() > 1, "{pieces:?}");
    assert_eq!(pieces.concat(), streamed.content);
    assert!(!streamed.content.trim().is_empty());
    assert_eq!(streamed.model, MODEL_NAME);
    // llama-cpp-python sends no usage in streams: it is estimated.
    assert!(streamed.usage.input_tokens > 0 && streamed.usage.output_tokens > 0);
    // Greedy decoding: the same text as without streaming.
    let whole = chat
        .chat(user("What is the capital of France?"))
        .await
        .unwrap();
    assert_eq!(whole.content, streamed.content);
}

fn assert_weather_call(calls: &[ToolCall]) {
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.name, "get_weather");
    assert!(!call.id.is_empty());
    let args = call.arguments.as_object().expect("arguments are an object");
    assert!(args.get("city").is_some_and(Value::is_string), "{args:?}");
}

#[tokio::test]
async fn a_forced_tool_call_parses() {
    let chat = chat();
    let req = ChatRequest {
        messages: vec![Message::new(
            Role::User,
            "What is the weather in Paris right now?",
        )],
        tools: vec![weather_tool()],
        temperature: Some(0.0),
        max_tokens: Some(64),
        ..ChatRequest::default()
    };
    let started = Instant::now();
    let resp = chat
        .chat_with(req.clone(), ToolChoice::Function("get_weather".into()))
        .await
        .unwrap();
    eprintln!(
        "tool call: {:?} in {:.1?}",
        resp.tool_calls,
        started.elapsed()
    );
    assert_weather_call(&resp.tool_calls);
    assert!(resp.usage.output_tokens > 0);

    // `Required` with one tool means that tool.
    let resp = chat
        .chat_with(req.clone(), ToolChoice::Required)
        .await
        .unwrap();
    assert_weather_call(&resp.tool_calls);

    // Streamed: the argument pieces are put together.
    let text = Mutex::new(String::new());
    let sink = |s: &str| text.lock().unwrap().push_str(s);
    let resp = chat
        .chat_stream_with(
            req.clone(),
            ToolChoice::Function("get_weather".into()),
            &sink,
        )
        .await
        .unwrap();
    assert_weather_call(&resp.tool_calls);
    assert_eq!(text.into_inner().unwrap(), resp.content);

    // A tool that was not offered is refused before anything is sent.
    let err = chat
        .chat_with(req, ToolChoice::Function("launch".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");
}

#[tokio::test]
async fn tool_turns_are_accepted_in_the_history() {
    let chat = chat();
    let mut assistant = Message::new(Role::Assistant, "");
    assistant.tool_calls = vec![ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: json!({"city": "Paris"}),
    }];
    let mut tool = Message::new(Role::Tool, "sunny, 21 C");
    tool.tool_call_id = Some("call_1".into());
    let req = ChatRequest {
        messages: vec![
            Message::new(Role::User, "What is the weather in Paris?"),
            assistant,
            tool,
        ],
        tools: vec![weather_tool()],
        temperature: Some(0.0),
        max_tokens: Some(16),
        ..ChatRequest::default()
    };
    // Through the trait: tool_choice `auto`; the model may answer or call.
    let resp = chat.chat(req.clone()).await.unwrap();
    for call in &resp.tool_calls {
        assert_eq!(call.name, "get_weather");
        assert!(call.arguments.is_object());
    }
    // Without tools on offer it has to answer in words.
    let resp = chat
        .chat(ChatRequest {
            tools: vec![],
            ..req
        })
        .await
        .unwrap();
    assert!(!resp.content.trim().is_empty(), "{resp:?}");

    // A tool message must say which call it answers.
    let err = chat
        .chat(ChatRequest {
            messages: vec![Message::new(Role::Tool, "orphan")],
            ..ChatRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");
}

#[tokio::test]
async fn json_schema_answers_parse() {
    let chat = chat();
    let schema = json!({
        "type": "object",
        "properties": {"capital": {"type": "string"}},
        "required": ["capital"],
        "additionalProperties": false
    });
    let req = ChatRequest {
        messages: vec![Message::new(
            Role::User,
            "What is the capital of France? Answer in JSON.",
        )],
        format: ResponseFormat::JsonSchema {
            schema: schema.clone(),
        },
        temperature: Some(0.0),
        max_tokens: Some(48),
        ..ChatRequest::default()
    };
    let started = Instant::now();
    let resp = chat.chat(req.clone()).await.unwrap();
    eprintln!("json: {:?} in {:.1?}", resp.content, started.elapsed());
    let value: Value = serde_json::from_str(&resp.content).unwrap();
    assert!(value["capital"].is_string(), "{value}");
    assert!(
        models::structured::validate(&value, &schema).is_ok(),
        "{value}"
    );
    // llama-cpp-python knows only `json_object` + schema; that was learnt.
    assert!(chat.uses_json_object_schema());

    // Streamed, the second time straight in the older form.
    let resp = chat.chat_stream(req, &|_| {}).await.unwrap();
    let value: Value = serde_json::from_str(&resp.content).unwrap();
    assert!(value["capital"].is_string(), "{value}");
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// SmolLM2 has no pooling, so llama-cpp-python answers with one vector a
/// token, which the embedder mean-pools. That server (0.3.36) gets a
/// multi-text request of such a model wrong past the first text (later
/// texts come back unlike the same text sent alone), so comparisons here are
/// between texts that came first in their request.
#[tokio::test]
async fn embeddings_come_in_batches_and_learn_their_size() {
    let mut cfg = config();
    let embedder = OpenAiEmbedder::new(&cfg).unwrap().with_batch_size(2);
    assert_eq!(embedder.provider(), "openai");
    assert_eq!(embedder.model(), MODEL_NAME);
    assert_eq!(embedder.dimensions(), 0);
    let texts: Vec<String> = [
        "the disk is full",
        "a cat sat on the mat",
        "the disk is full",
    ]
    .map(String::from)
    .to_vec();
    let started = Instant::now();
    // Two requests: texts 0 and 1, then text 2.
    let vectors = embedder.embed(&texts).await.unwrap();
    eprintln!("embeddings in {:.1?}", started.elapsed());
    assert_eq!(vectors.len(), 3);
    let dims = vectors[0].len();
    assert!(dims > 0);
    assert!(vectors.iter().all(|v| v.len() == dims));
    assert_eq!(embedder.dimensions(), dims);
    // Text 2 is text 0 again, first in the second request: in order, and
    // the same vector.
    assert!(cosine(&vectors[0], &vectors[2]) > 0.9999);

    // One text a request: each vector is the text's own.
    let single = OpenAiEmbedder::new(&cfg).unwrap().with_batch_size(1);
    assert_eq!(single.probe_dimensions().await.unwrap(), dims);
    let one_by_one = single.embed(&texts).await.unwrap();
    assert!(cosine(&one_by_one[0], &vectors[0]) > 0.9999);
    assert!(cosine(&one_by_one[0], &one_by_one[2]) > 0.9999);
    assert!(cosine(&one_by_one[0], &one_by_one[1]) < 0.999);
    assert!(single.embed(&[]).await.unwrap().is_empty());

    // A configured size the server does not give is an error.
    cfg.dims = Some(dims + 1);
    let wrong = OpenAiEmbedder::new(&cfg).unwrap();
    assert_eq!(wrong.dimensions(), dims + 1);
    let err = wrong.embed(&texts[..1]).await.unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn an_overlong_prompt_is_an_invalid_request() {
    let chat = chat();
    let err = chat.chat(user(&"word ".repeat(3000))).await.unwrap_err();
    match &err {
        LlmError::InvalidRequest(m) => {
            assert!(m.contains("400") && m.contains("context length"), "{m}")
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert!(!err.is_retryable());
    // The server is still fine afterwards.
    assert!(http_get_status(server().port, "/v1/models") == Some(200));
}

// ---------------------------------------------------------------------------
// Error mapping against small local servers
// ---------------------------------------------------------------------------

/// An HTTP server answering each request with the next canned response
/// (the last one repeats); counts requests.
struct Canned {
    base_url: String,
    hits: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<String>>>,
}

fn read_request(stream: &mut TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

fn canned(responses: Vec<String>) -> Canned {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (h, b) = (hits.clone(), bodies.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let Some(body) = read_request(&mut stream) else {
                continue;
            };
            let n = h.fetch_add(1, Ordering::SeqCst);
            b.lock().unwrap().push(body);
            let response = &responses[n.min(responses.len() - 1)];
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.flush();
        }
    });
    Canned {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        hits,
        bodies,
    }
}

fn http(status: &str, headers: &[&str], body: &str) -> String {
    let mut r = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    r
}

fn json_error(message: &str, kind: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}}).to_string()
}

fn chat_at(base_url: &str, timeout: Duration) -> OpenAiChat {
    let mut cfg = OpenAiConfig::new(base_url, "gpt-test");
    cfg.api_key = Some("sk-test".into());
    cfg.timeout = timeout;
    OpenAiChat::new(&cfg).unwrap()
}

#[tokio::test]
async fn rate_limits_keep_retry_after_and_are_not_retried_here() {
    let body = json_error("Rate limit reached", "rate_limit_error");
    let cases = [
        (vec!["retry-after: 7"], Some(Duration::from_secs(7))),
        (
            vec!["retry-after-ms: 1500", "retry-after: 2"],
            Some(Duration::from_millis(1500)),
        ),
        (vec![], None),
    ];
    for (headers, expected) in cases {
        let server = canned(vec![http("429 Too Many Requests", &headers, &body)]);
        let chat = chat_at(&server.base_url, Duration::from_secs(10));
        let started = Instant::now();
        let err = chat.chat(user("hi")).await.unwrap_err();
        match err {
            LlmError::RateLimited { retry_after } => assert_eq!(retry_after, expected),
            other => panic!("expected RateLimited, got {other:?}"),
        }
        // One request, no waiting: retrying is the gateway's business.
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // An HTTP date, about 30 s ahead; a non-JSON body.
    let when = (chrono::Utc::now() + chrono::Duration::seconds(30))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let server = canned(vec![http(
        "429 Too Many Requests",
        &[&format!("retry-after: {when}")],
        "slow down",
    )]);
    let err = chat_at(&server.base_url, Duration::from_secs(10))
        .chat(user("hi"))
        .await
        .unwrap_err();
    match err {
        LlmError::RateLimited {
            retry_after: Some(d),
        } => assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        ),
        other => panic!("expected RateLimited with a delay, got {other:?}"),
    }
}

/// A canned response, the error it must give, and text the error shows.
type Case = (String, fn(&LlmError) -> bool, &'static str);

#[tokio::test]
async fn http_statuses_map_to_the_gateway_errors() {
    let cases: Vec<Case> = vec![
        (
            http(
                "401 Unauthorized",
                &["content-type: application/json"],
                &json_error("Incorrect API key provided", "invalid_request_error"),
            ),
            |e| matches!(e, LlmError::InvalidRequest(_)),
            "Incorrect API key provided",
        ),
        (
            http(
                "404 Not Found",
                &[],
                &json_error(
                    "The model `gpt-test` does not exist",
                    "invalid_request_error",
                ),
            ),
            |e| matches!(e, LlmError::InvalidRequest(_)),
            "does not exist",
        ),
        (
            http(
                "422 Unprocessable Entity",
                &[],
                r#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#,
            ),
            |e| matches!(e, LlmError::InvalidRequest(_)),
            "field required",
        ),
        (
            http(
                "503 Service Unavailable",
                &["content-type: text/html"],
                "<html>upstream down</html>",
            ),
            |e| matches!(e, LlmError::Unavailable(_)),
            "upstream down",
        ),
        (
            http(
                "500 Internal Server Error",
                &[],
                &json_error("boom", "server_error"),
            ),
            |e| matches!(e, LlmError::Unavailable(_)),
            "boom",
        ),
        (
            http("408 Request Timeout", &[], ""),
            |e| matches!(e, LlmError::Timeout(_)),
            "",
        ),
        (
            http(
                "429 Too Many Requests",
                &[],
                &json_error("You exceeded your current quota", "insufficient_quota"),
            ),
            |e| matches!(e, LlmError::Unavailable(_)),
            "quota",
        ),
        (
            http(
                "200 OK",
                &["content-type: application/json"],
                "{\"not\": \"a completion\"}",
            ),
            |e| matches!(e, LlmError::Malformed(_)),
            "not the expected JSON",
        ),
    ];
    for (response, expected, text) in cases {
        let server = canned(vec![response.clone()]);
        let err = chat_at(&server.base_url, Duration::from_secs(10))
            .chat(user("hi"))
            .await
            .unwrap_err();
        assert!(expected(&err), "{response}\n=> {err:?}");
        assert!(err.to_string().contains(text), "{err}");
        assert_eq!(server.hits.load(Ordering::SeqCst), 1, "{response}");
    }
}

#[tokio::test]
async fn tool_arguments_that_are_not_json_are_malformed() {
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Par"}}]
        }}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    });
    let server = canned(vec![http("200 OK", &[], &completion.to_string())]);
    let req = ChatRequest {
        tools: vec![weather_tool()],
        ..user("weather?")
    };
    let err = chat_at(&server.base_url, Duration::from_secs(10))
        .chat(req)
        .await
        .unwrap_err();
    match err {
        LlmError::Malformed(m) => assert!(m.contains("`get_weather`"), "{m}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// The request body as OpenAI gets it, and the stream in OpenAI's chunk
/// shape (tool name once, arguments in pieces, usage in a last chunk with
/// no choices).
#[tokio::test]
async fn openai_dialect_and_stream_usage() {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let events = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Checking"}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                    "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "ty\": \"Oslo\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024",
               "choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}}),
    ];
    let mut sse = String::new();
    for e in &events {
        sse.push_str(&format!("data: {e}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    let server = canned(vec![http(
        "200 OK",
        &["content-type: text/event-stream"],
        &sse,
    )]);
    // Point a client whose dialect is decided by the host at the canned
    // server: the body is checked for the general dialect here.
    let chat = chat_at(&server.base_url, Duration::from_secs(10));
    let mut assistant = Message::new(Role::Assistant, "");
    assistant.tool_calls = vec![ToolCall {
        id: "call_0".into(),
        name: "get_weather".into(),
        arguments: json!({"city": "Bergen"}),
    }];
    let mut tool = Message::new(Role::Tool, "rain");
    tool.tool_call_id = Some("call_0".into());
    let req = ChatRequest {
        messages: vec![
            Message::new(Role::System, "Be brief."),
            Message::new(Role::User, "Weather in Bergen, then Oslo?"),
            assistant,
            tool,
        ],
        tools: vec![weather_tool()],
        format: ResponseFormat::Text,
        max_tokens: Some(50),
        temperature: Some(0.2),
    };
    let text = Mutex::new(String::new());
    let resp = chat
        .chat_stream(req, &|s: &str| text.lock().unwrap().push_str(s))
        .await
        .unwrap();
    assert_eq!(resp.content, "Checking");
    assert_eq!(text.into_inner().unwrap(), "Checking");
    assert_eq!(
        resp.tool_calls,
        vec![ToolCall {
            id: "call_a".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Oslo"}),
        }]
    );
    assert_eq!(resp.usage.input_tokens, 31);
    assert_eq!(resp.usage.output_tokens, 9);
    assert_eq!(resp.model, "gpt-4o-mini-2024");

    let sent: Value = serde_json::from_str(&server.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(sent["model"], "gpt-test");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["max_completion_tokens"], 50);
    assert_eq!(sent["max_tokens"], 50, "not OpenAI's host: both limits");
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["tools"][0]["type"], "function");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["content"], "");
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "call_0");
    let args: Value = serde_json::from_str(
        msgs[2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"city": "Bergen"}));
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "call_0");
    assert_eq!(msgs[3]["content"], "rain");
}

#[tokio::test]
async fn the_json_schema_request_is_the_standard_one_first() {
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "{\"capital\": \"Paris\"}"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    });
    let server = canned(vec![http("200 OK", &[], &completion.to_string())]);
    let chat = chat_at(&server.base_url, Duration::from_secs(10));
    let schema = json!({"type": "object", "properties": {"capital": {"type": "string"}}});
    let resp = chat
        .chat(ChatRequest {
            format: ResponseFormat::JsonSchema {
                schema: schema.clone(),
            },
            ..user("capital?")
        })
        .await
        .unwrap();
    assert_eq!(resp.content, "{\"capital\": \"Paris\"}");
    assert!(!chat.uses_json_object_schema());
    let sent: Value = serde_json::from_str(&server.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema",
               "json_schema": {"name": "answer", "schema": schema, "strict": true}})
    );
}

#[tokio::test]
async fn unreachable_and_silent_servers() {
    // Nothing listens on this port.
    let port = free_port();
    let chat = chat_at(
        &format!("http://127.0.0.1:{port}/v1"),
        Duration::from_secs(10),
    );
    let started = Instant::now();
    let err = chat.chat(user("hi")).await.unwrap_err();
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no hidden retries"
    );

    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let chat = chat_at(
        &format!("http://127.0.0.1:{port}/v1"),
        Duration::from_millis(800),
    );
    let started = Instant::now();
    let err = chat.chat(user("hi")).await.unwrap_err();
    assert!(matches!(err, LlmError::Timeout(_)), "{err:?}");
    let err = chat.chat_stream(user("hi"), &|_| {}).await.unwrap_err();
    assert!(matches!(err, LlmError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn configuration() {
    let p = brain::config::ProviderConfig {
        kind: brain::config::ProviderKind::Openai,
        model: "gpt-4o-mini".into(),
        base_url: Some("http://127.0.0.1:9/v1/".into()),
        api_key: Some(brain::config::Secret::new("sk-abc")),
        organization: Some("org-1".into()),
        timeout_secs: 7,
        ..brain::config::ProviderConfig::default()
    };
    let cfg = OpenAiConfig::from_provider(&p);
    assert_eq!(cfg.base_url, "http://127.0.0.1:9/v1/");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-abc"));
    assert_eq!(cfg.organization.as_deref(), Some("org-1"));
    assert_eq!(cfg.model, "gpt-4o-mini");
    assert_eq!(cfg.timeout, Duration::from_secs(7));
    assert!(
        !format!("{cfg:?}").contains("sk-abc"),
        "the key is not logged"
    );
    let chat = OpenAiChat::new(&cfg).unwrap();
    assert_eq!(chat.base_url(), "http://127.0.0.1:9/v1");

    let no_url = OpenAiConfig::from_provider(&brain::config::ProviderConfig {
        base_url: None,
        ..p.clone()
    });
    assert_eq!(no_url.base_url, models::openai::DEFAULT_BASE_URL);

    // Bad settings are errors, not panics.
    let bad = |f: fn(&mut OpenAiConfig)| {
        let mut c = cfg.clone();
        f(&mut c);
        OpenAiChat::new(&c).unwrap_err()
    };
    for err in [
        bad(|c| c.api_key = Some("sk-\nbroken".into())),
        bad(|c| c.organization = Some("org\r\n".into())),
        bad(|c| c.base_url = "not a url".into()),
        bad(|c| c.base_url = "ftp://example.invalid/v1".into()),
        bad(|c| c.model = " ".into()),
        bad(|c| c.timeout = Duration::ZERO),
    ] {
        assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");
    }
}
