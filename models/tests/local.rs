//! The local provider with the real fetched weights: generation that makes
//! sense, JSON and tool calls that parse, streaming, both chat families,
//! and embeddings equal to sentence-transformers'.
//!
//! Weights are fetched on first use (as `cerebro fetch-models` does; CI
//! fetches them before the tests).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use brain::backends::{
    ChatRequest, Embedder, LlmProvider, Message, ResponseFormat, Role, ToolDefinition,
};
use models::fetch::{Fetcher, MINILM_L6_V2, ModelSpec, QWEN_CODER_05B, SMOLLM2_135M};
use models::local::{LocalChat, LocalChatOptions, LocalEmbedder};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

fn weights(spec: &ModelSpec) -> PathBuf {
    static FETCH: Mutex<()> = Mutex::new(());
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    // CI keeps the weights outside the clone (CEREBRO_TEST_WEIGHTS).
    let dir = std::env::var_os("CEREBRO_TEST_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights"));
    let fetcher = Fetcher::new(&dir);
    fetcher
        .fetch(spec, &mut |line| eprintln!("{line}"))
        .unwrap_or_else(|e| panic!("fetching {} failed: {e}", spec.name));
    fetcher.dir(spec)
}

/// One loaded Qwen for the whole test binary (loading takes seconds).
fn qwen() -> &'static LocalChat {
    static QWEN: OnceLock<LocalChat> = OnceLock::new();
    QWEN.get_or_init(|| {
        LocalChat::load(&weights(&QWEN_CODER_05B), LocalChatOptions::default()).unwrap()
    })
}

fn ask(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, prompt)],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn qwen_answers_a_json_schema_request_with_valid_sensible_json() {
    let schema = json!({"type": "object", "required": ["exhausted_resource", "confidence"],
        "properties": {
            "exhausted_resource": {"type": "string", "enum": ["cpu", "memory", "disk", "network"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}}});
    let mut req = ask(
        "Alert: pod payments-api-7d9f in namespace prod was OOMKilled (exit code 137) and restarted 5 times in 10 minutes; its memory usage was at its limit of 512Mi. Which resource was exhausted?",
        60,
    );
    req.format = ResponseFormat::JsonSchema { schema };
    let r = qwen().chat(req).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.content).unwrap();
    assert_eq!(v["exhausted_resource"], "memory", "answer: {}", r.content);
    let confidence = v["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence), "answer: {}", r.content);
    assert!(r.usage.input_tokens > 50 && r.usage.output_tokens > 0);
}

#[tokio::test]
async fn qwen_streams_text_that_adds_up_to_the_answer() {
    let pieces = Mutex::new(Vec::<String>::new());
    let sink = |p: &str| pieces.lock().unwrap().push(p.to_owned());
    let r = qwen()
        .chat_stream(
            ask(
                "In one short sentence: what does the Kubernetes status CrashLoopBackOff mean?",
                30,
            ),
            &sink,
        )
        .await
        .unwrap();
    let pieces = pieces.into_inner().unwrap();
    assert!(pieces.len() > 3, "streamed in {} pieces", pieces.len());
    assert_eq!(pieces.concat().trim(), r.content);
    let lower = r.content.to_lowercase();
    assert!(
        lower.contains("restart") || lower.contains("crash"),
        "answer: {}",
        r.content
    );
}

#[tokio::test]
async fn qwen_calls_an_offered_tool_with_valid_arguments() {
    let mut req = ask(
        "Get the last 50 log lines of pod payments-api-7d9f in namespace prod.",
        80,
    );
    req.tools = vec![ToolDefinition {
        name: "get_pod_logs".into(),
        description: "Fetch recent log lines of a Kubernetes pod".into(),
        parameters: json!({"type": "object", "required": ["namespace", "pod"],
            "properties": {"namespace": {"type": "string"}, "pod": {"type": "string"},
                           "lines": {"type": "integer"}}}),
    }];
    let r = qwen().chat(req).await.unwrap();
    assert_eq!(r.tool_calls.len(), 1, "answer: {r:?}");
    let call = &r.tool_calls[0];
    assert_eq!(call.name, "get_pod_logs");
    assert_eq!(call.arguments["pod"], "payments-api-7d9f", "{call:?}");
    assert_eq!(call.arguments["namespace"], "prod", "{call:?}");
}

#[tokio::test]
async fn smollm2_tokenizes_without_a_prefix_space_and_answers_a_simple_question() {
    let model = LocalChat::load(&weights(&SMOLLM2_135M), LocalChatOptions::default()).unwrap();
    // candle's GGUF tokenizer adds a prefix space (`ĠHello`) unless told
    // otherwise; SmolLM2 was trained without one.
    let tokens = model.tokens("Hello world").unwrap();
    assert_eq!(tokens, ["Hello", "Ġworld"]);
    assert!(
        model.model().to_lowercase().contains("smollm"),
        "{}",
        model.model()
    );
    let r = model
        .chat(ask("What is the capital of France? Answer in one word.", 8))
        .await
        .unwrap();
    assert!(r.content.contains("Paris"), "answer: {}", r.content);
}

#[tokio::test]
async fn minilm_matches_sentence_transformers_to_1e_3_cosine() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let sentences: Vec<String> = serde_json::from_value(reference["sentences"].clone()).unwrap();
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["vectors"].clone()).unwrap();
    let embedder = LocalEmbedder::load(&weights(&MINILM_L6_V2)).unwrap();
    assert_eq!(embedder.dimensions(), 384);
    let got = embedder.embed(&sentences).await.unwrap();
    assert_eq!(got.len(), sentences.len());
    for ((s, g), e) in sentences.iter().zip(&got).zip(&expected) {
        let cos: f32 = g.iter().zip(e).map(|(a, b)| a * b).sum();
        assert!(cos > 0.999, "cosine {cos} for {s:?}");
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    // Same texts in another order and batch: the same vectors.
    let reversed: Vec<String> = sentences.iter().rev().cloned().collect();
    let again = embedder.embed(&reversed).await.unwrap();
    for (a, b) in again.iter().rev().zip(&got) {
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cos > 0.99999);
    }
}
