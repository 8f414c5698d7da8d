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
mod common;

use common::weights;
use models::fetch::{GEMMA3_270M, MINILM_L6_V2, QWEN_CODER_05B, SMOLLM2_135M};
use models::local::{LocalChat, LocalChatOptions, LocalEmbedder};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

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

/// Awkward texts every tokenizer must split as llama.cpp does.
const AWKWARD_TEXTS: [&str; 4] = [
    "kube-apiserver: 503 Service Unavailable (etcd leader changed)",
    "  two leading spaces, a tab\tand\n\nnewlines",
    "fn main() { println!(\"{}\", 42); }",
    "naïve café — 日本語のログ 🚨",
];

/// A model (our own decoder code and the tokenizer built from the GGUF)
/// against llama.cpp on the same file: the same token ids for `texts`, and
/// the same greedy continuation of each prompt, token for token, except
/// that the two may part where llama.cpp's two best logits are within
/// `TIE` of each other (there two correct runtimes may choose differently:
/// their quantized dot products round differently). Returns how many
/// tokens followed llama.cpp's path before parting.
async fn follows_llama_cpp(dir: &std::path::Path, texts: &[&str], prompts: &[String]) -> usize {
    const TIE: f64 = 0.5;
    const TOKENS: u32 = 24;
    let model = LocalChat::load(dir, LocalChatOptions::default()).unwrap();
    let request = json!({"texts": texts, "prompts": prompts, "tokens": TOKENS});
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_cpp_reference.py");
    let mut child = std::process::Command::new(common::llama_cpp_python())
        .arg(&script)
        .arg(dir.join("model.gguf"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(request.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", script.display());
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    for (i, text) in texts.iter().enumerate() {
        let ours = model.token_ids(text).unwrap();
        let expected: Vec<u32> = serde_json::from_value(theirs["tokenized"][i].clone()).unwrap();
        assert_eq!(ours, expected, "token ids of {text:?}");
    }
    let mut compared = 0;
    for (prompt, run) in prompts.iter().zip(theirs["runs"].as_array().unwrap()) {
        let expected: Vec<u32> = serde_json::from_value(run["ids"].clone()).unwrap();
        let gaps: Vec<f64> = serde_json::from_value(run["gaps"].clone()).unwrap();
        let ours = model.complete(prompt.clone(), TOKENS).await.unwrap();
        assert_eq!(ours.prompt_tokens, run["prompt_tokens"].as_u64().unwrap());
        let same = ours
            .ids
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        if same < expected.len() {
            assert!(
                gaps[same] < TIE,
                "{prompt:?}: ours {:?} left llama.cpp's path at token {same}, where its best \
                 logit led by {:.3}; gaps {gaps:?}",
                ours.text,
                gaps[same]
            );
        }
        eprintln!(
            "{same:>2} tokens on llama.cpp's path for {:?}{}",
            prompt.chars().take(40).collect::<String>(),
            gaps.get(same)
                .map(|g| format!(", parting where its lead was {g:.3}"))
                .unwrap_or_default()
        );
        compared += same;
    }
    eprintln!(
        "{}: {compared} of {} tokens followed llama.cpp's path",
        dir.display(),
        prompts.len() * TOKENS as usize
    );
    compared
}

/// Plain-text prompts (the fetched Gemma is a base model, so no chats);
/// the last is longer than Gemma's sliding window (512 tokens), so its
/// local layers must stop seeing the beginning.
fn continuation_prompts(bos: &str) -> Vec<String> {
    let long: String = (0..40)
        .map(|i| format!("pod web-{i} restarted: exit code 137, memory limit 512Mi\n"))
        .collect();
    vec![
        format!("{bos}The capital of France is Paris. The capital of Germany is"),
        format!("{bos}def fibonacci(n):\n    "),
        format!("{bos}Kubernetes is an open-source system for"),
        format!("{bos}{long}The pods keep restarting because"),
    ]
}

#[tokio::test]
async fn gemma3_tokenizes_and_continues_text_as_llama_cpp_does() {
    let mut texts = AWKWARD_TEXTS.to_vec();
    texts.push("<start_of_turn>user\nhi<end_of_turn>");
    let compared = follows_llama_cpp(
        &weights(&GEMMA3_270M),
        &texts,
        &continuation_prompts("<bos>"),
    )
    .await;
    // The comparison must cover real text, not stop at once. Measured: 78
    // and 59 of 96 with two correct kernels (their sums round differently,
    // and the first and third prompts meet near-ties), every parting at a
    // lead under 0.25. What catches mistakes is that lead: SiLU for GELU
    // leaves the second prompt's path where llama.cpp leads by 0.7, and
    // the global rotary base on the sliding layers leaves the first.
    assert!(compared >= 48, "only {compared} tokens were the same");
}

/// The awkward texts and a ChatML turn (Qwen's and SmolLM2's format).
fn chatml_texts() -> Vec<&'static str> {
    let mut texts = AWKWARD_TEXTS.to_vec();
    texts.push("<|im_start|>user\nhi<|im_end|>");
    texts
}

#[tokio::test]
async fn qwen2_tokenizes_and_continues_text_as_llama_cpp_does() {
    let compared = follows_llama_cpp(
        &weights(&QWEN_CODER_05B),
        &chatml_texts(),
        &continuation_prompts(""),
    )
    .await;
    // Measured: 61, 65 and 76 of 96; every parting at a lead under 0.02.
    assert!(compared >= 48, "only {compared} tokens were the same");
}

#[tokio::test]
async fn smollm2_tokenizes_and_continues_text_as_llama_cpp_does() {
    let compared = follows_llama_cpp(
        &weights(&SMOLLM2_135M),
        &chatml_texts(),
        &continuation_prompts(""),
    )
    .await;
    // SmolLM2 meets many near-ties: measured 30, 44 and 78 of 96 with
    // correct kernels (different rounding), every parting at a lead under
    // 0.25. The check that matters is that lead: rotating halves instead of
    // adjacent pairs (Qwen's and Gemma's way, wrong for Llama's GGUF) leaves
    // the long prompt's path where llama.cpp's lead is 0.68.
    assert!(compared >= 24, "only {compared} tokens were the same");
}

#[tokio::test]
async fn gemma3_prompts_use_gemma_turns_from_the_template_beside_the_weights() {
    let dir = weights(&GEMMA3_270M);
    let gemma = LocalChat::load(&dir, LocalChatOptions::default()).unwrap();
    let prompt = gemma
        .render(&[
            Message::new(Role::System, "You are terse."),
            Message::new(Role::User, "Why is the pod pending?"),
        ])
        .unwrap();
    assert_eq!(
        prompt,
        "<bos><start_of_turn>user\nYou are terse.<end_of_turn>\n\
         <start_of_turn>user\nWhy is the pod pending?<end_of_turn>\n<start_of_turn>model\n"
    );
}
