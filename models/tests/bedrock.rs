//! Bedrock provider against the SDK's replay HTTP client. Response bodies
//! follow the Bedrock Runtime API reference (Converse, ConverseStream,
//! InvokeModel for Titan and Cohere embeddings); streamed responses are
//! framed by hand in the AWS event-stream format.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::http::{HttpRequest, HttpResponse};
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, HttpClient, Region};
use aws_smithy_http_client::test_util::{NeverClient, ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use brain::backends::llm::{
    ChatRequest, Embedder, LlmError, LlmProvider, Message, ResponseFormat, Role, ToolCall,
    ToolDefinition,
};
use models::bedrock::{BedrockChat, BedrockConfig, BedrockEmbedder, EmbedFamily};
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const MODEL_IN_PATH: &str = "anthropic.claude-3-5-haiku-20241022-v1%3A0";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn sdk_client(http: impl HttpClient + 'static, timeouts: Option<TimeoutConfig>) -> Client {
    let mut conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "bedrock-test",
        ))
        .retry_config(RetryConfig::disabled())
        .http_client(http);
    if let Some(t) = timeouts {
        conf = conf.timeout_config(t);
    }
    Client::from_conf(conf.build())
}

fn replay(responses: Vec<HttpResponse>) -> (Client, StaticReplayClient) {
    let events = responses
        .into_iter()
        .map(|r| ReplayEvent::new(HttpRequest::new(SdkBody::empty()), r))
        .collect();
    let http = StaticReplayClient::new(events);
    (sdk_client(http.clone(), None), http)
}

fn http_response(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: Vec<u8>,
) -> HttpResponse {
    let mut r = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
    for (k, v) in headers {
        r.headers_mut().insert(*k, *v);
    }
    r
}

fn json_ok(body: Value) -> HttpResponse {
    http_response(
        200,
        &[("content-type", "application/json")],
        serde_json::to_vec(&body).unwrap(),
    )
}

fn aws_error(status: u16, error_type: &'static str, message: &str) -> HttpResponse {
    http_response(
        status,
        &[
            ("content-type", "application/json"),
            ("x-amzn-ErrorType", error_type),
        ],
        serde_json::to_vec(&json!({ "message": message })).unwrap(),
    )
}

fn config() -> BedrockConfig {
    BedrockConfig {
        region: Some("us-east-1".into()),
        ..BedrockConfig::new(MODEL)
    }
}

fn chat_with(client: Client) -> BedrockChat {
    BedrockChat::with_client(client, &config()).unwrap()
}

/// URI and JSON body of the `i`-th request the SDK sent.
fn sent(http: &StaticReplayClient, i: usize) -> (String, String, Value) {
    let req = http.actual_requests().nth(i).expect("request sent");
    let body = req.body().bytes().expect("in-memory body");
    (
        req.method().to_owned(),
        req.uri().to_owned(),
        serde_json::from_slice(body).unwrap(),
    )
}

fn user(text: &str) -> Message {
    Message::new(Role::User, text)
}

fn alerts_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_alerts".into(),
        description: "List firing alerts for a service".into(),
        parameters: json!({
            "type": "object",
            "properties": {"service": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["service"]
        }),
    }
}

fn converse_reply(content: Value, stop: &str, input: u64, output: u64) -> HttpResponse {
    json_ok(json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output},
        "metrics": {"latencyMs": 321}
    }))
}

// ---------------------------------------------------------------------------
// Converse
// ---------------------------------------------------------------------------

#[tokio::test]
async fn text_chat_sends_converse_request_and_parses_reply() {
    let (client, http) = replay(vec![converse_reply(
        json!([{"text": "Disk on db-1 "}, {"text": "is 97% full."}]),
        "end_turn",
        42,
        9,
    )]);
    let chat = chat_with(client);
    assert_eq!(chat.provider(), "bedrock");
    assert_eq!(chat.model(), MODEL);

    let req = ChatRequest {
        messages: vec![
            Message::new(Role::System, "You are an SRE assistant."),
            user("Why is db-1 alerting?"),
            Message::new(Role::Assistant, "Checking."),
            user("Well?"),
        ],
        max_tokens: Some(256),
        temperature: Some(0.2),
        ..Default::default()
    };
    let resp = chat.chat(req).await.unwrap();
    assert_eq!(resp.content, "Disk on db-1 is 97% full.");
    assert!(resp.tool_calls.is_empty());
    assert_eq!(resp.usage.input_tokens, 42);
    assert_eq!(resp.usage.output_tokens, 9);
    assert_eq!(resp.model, MODEL);

    let (method, uri, body) = sent(&http, 0);
    assert_eq!(method, "POST");
    assert!(
        uri.starts_with("https://bedrock-runtime.us-east-1.amazonaws.com/"),
        "{uri}"
    );
    assert!(
        uri.ends_with(&format!("/model/{MODEL_IN_PATH}/converse")),
        "{uri}"
    );
    assert_eq!(
        body["system"],
        json!([{"text": "You are an SRE assistant."}])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "Why is db-1 alerting?"}]},
            {"role": "assistant", "content": [{"text": "Checking."}]},
            {"role": "user", "content": [{"text": "Well?"}]}
        ])
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 256);
    let temperature = body["inferenceConfig"]["temperature"].as_f64().unwrap();
    assert!((temperature - 0.2).abs() < 1e-6);
    assert!(body.get("toolConfig").is_none());
    // The model id travels in the path, not the body.
    assert!(body.get("modelId").is_none());

    let req = http.actual_requests().next().unwrap();
    assert!(
        req.headers()
            .get("authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "requests are SigV4-signed with the given credentials"
    );
    assert_eq!(http.actual_requests().count(), 1);
}

#[tokio::test]
async fn tool_use_round_trip() {
    let (client, http) = replay(vec![
        converse_reply(
            json!([
                {"text": "Let me look."},
                {"toolUse": {
                    "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "name": "get_alerts",
                    "input": {"service": "checkout", "limit": 5}
                }}
            ]),
            "tool_use",
            120,
            30,
        ),
        converse_reply(
            json!([{"text": "Two alerts: high latency and 5xx rate."}]),
            "end_turn",
            200,
            12,
        ),
    ]);
    let chat = chat_with(client);

    let mut messages = vec![
        Message::new(Role::System, "Use tools."),
        user("What is firing on checkout?"),
    ];
    let first = chat
        .chat(ChatRequest {
            messages: messages.clone(),
            tools: vec![alerts_tool()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.content, "Let me look.");
    assert_eq!(
        first.tool_calls,
        vec![ToolCall {
            id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
            name: "get_alerts".into(),
            arguments: json!({"service": "checkout", "limit": 5}),
        }]
    );

    let (_, _, body) = sent(&http, 0);
    assert_eq!(
        body["toolConfig"],
        json!({"tools": [{"toolSpec": {
            "name": "get_alerts",
            "description": "List firing alerts for a service",
            "inputSchema": {"json": {
                "type": "object",
                "properties": {"service": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["service"]
            }}
        }}]})
    );

    // Follow-up: the assistant's call, two tool answers, one more user line.
    messages.push(Message {
        tool_calls: first.tool_calls.clone(),
        ..Message::new(Role::Assistant, first.content.clone())
    });
    messages.push(Message {
        tool_call_id: Some("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into()),
        ..Message::new(Role::Tool, r#"[{"name":"HighLatency"},{"name":"Http5xx"}]"#)
    });
    messages.push(user("Summarise."));
    let second = chat
        .chat(ChatRequest {
            messages,
            tools: vec![alerts_tool()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(second.content, "Two alerts: high latency and 5xx rate.");
    assert!(second.tool_calls.is_empty());
    assert_eq!(second.usage.input_tokens, 200);

    let (_, uri, body) = sent(&http, 1);
    assert!(uri.ends_with("/converse"));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "What is firing on checkout?"}]},
            {"role": "assistant", "content": [
                {"text": "Let me look."},
                {"toolUse": {
                    "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "name": "get_alerts",
                    "input": {"service": "checkout", "limit": 5}
                }}
            ]},
            // The tool answer and the next user line share one user turn.
            {"role": "user", "content": [
                {"toolResult": {
                    "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "content": [{"text": "[{\"name\":\"HighLatency\"},{\"name\":\"Http5xx\"}]"}]
                }},
                {"text": "Summarise."}
            ]}
        ])
    );
    assert_eq!(body["system"], json!([{"text": "Use tools."}]));
}

#[tokio::test]
async fn tool_history_without_tools_is_sent_as_text() {
    let (client, http) = replay(vec![converse_reply(
        json!([{"text": "done"}]),
        "end_turn",
        1,
        1,
    )]);
    let chat = chat_with(client);
    let messages = vec![
        user("q"),
        Message {
            tool_calls: vec![ToolCall {
                id: "t1".into(),
                name: "get_alerts".into(),
                arguments: json!({"service": "a"}),
            }],
            ..Message::new(Role::Assistant, "")
        },
        Message {
            tool_call_id: Some("t1".into()),
            ..Message::new(Role::Tool, "none")
        },
    ];
    chat.chat(ChatRequest {
        messages,
        ..Default::default()
    })
    .await
    .unwrap();
    let (_, _, body) = sent(&http, 0);
    assert!(body.get("toolConfig").is_none());
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert!(
        msgs[1]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("get_alerts")
    );
    assert!(
        msgs[2]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("none")
    );
}

#[tokio::test]
async fn json_schema_output_uses_a_forced_tool() {
    let schema = json!({
        "type": "object",
        "properties": {
            "severity": {"type": "string", "enum": ["low", "high"]},
            "services": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["severity", "services"]
    });
    let (client, http) = replay(vec![converse_reply(
        json!([{"toolUse": {
            "toolUseId": "tooluse_json",
            "name": "respond",
            "input": {"severity": "high", "services": ["checkout", "db"]}
        }}]),
        "tool_use",
        50,
        20,
    )]);
    let chat = chat_with(client);
    let resp = chat
        .chat(ChatRequest {
            messages: vec![user("Classify this incident.")],
            tools: vec![alerts_tool()],
            format: ResponseFormat::JsonSchema {
                schema: schema.clone(),
            },
            max_tokens: Some(512),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(resp.tool_calls.is_empty());
    let parsed: Value = serde_json::from_str(&resp.content).unwrap();
    assert_eq!(
        parsed,
        json!({"severity": "high", "services": ["checkout", "db"]})
    );
    assert_eq!(resp.usage.output_tokens, 20);

    let (_, _, body) = sent(&http, 0);
    let tool_config = &body["toolConfig"];
    assert_eq!(
        tool_config["toolChoice"],
        json!({"tool": {"name": "respond"}})
    );
    let tools = tool_config["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["toolSpec"]["name"], "get_alerts");
    assert_eq!(tools[1]["toolSpec"]["name"], "respond");
    assert_eq!(tools[1]["toolSpec"]["inputSchema"]["json"], schema);
    assert_eq!(body["inferenceConfig"], json!({"maxTokens": 512}));
}

#[tokio::test]
async fn json_schema_that_is_not_an_object_is_wrapped() {
    let schema = json!({"type": "array", "items": {"type": "string"}});
    let (client, http) = replay(vec![
        converse_reply(
            json!([{"toolUse": {
                "toolUseId": "t",
                "name": "respond",
                "input": {"value": ["a", "b"]}
            }}]),
            "tool_use",
            1,
            1,
        ),
        // A model that ignores the forced tool and writes no JSON.
        converse_reply(json!([{"text": "Sure! Here it is."}]), "end_turn", 1, 1),
    ]);
    let chat = chat_with(client);
    let req = ChatRequest {
        messages: vec![user("List.")],
        format: ResponseFormat::JsonSchema {
            schema: schema.clone(),
        },
        ..Default::default()
    };
    let resp = chat.chat(req.clone()).await.unwrap();
    assert_eq!(resp.content, r#"["a","b"]"#);
    let (_, _, body) = sent(&http, 0);
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object", "properties": {"value": schema}, "required": ["value"]})
    );

    let err = chat.chat(req).await.unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

async fn chat_error(response: HttpResponse) -> LlmError {
    let (client, _http) = replay(vec![response]);
    chat_with(client)
        .chat(ChatRequest {
            messages: vec![user("hi")],
            ..Default::default()
        })
        .await
        .unwrap_err()
}

#[tokio::test]
async fn validation_error_is_invalid_request_and_not_retryable() {
    let err = chat_error(aws_error(
        400,
        "ValidationException",
        "The provided model identifier is invalid.",
    ))
    .await;
    match &err {
        LlmError::InvalidRequest(msg) => {
            assert!(msg.contains("ValidationException"), "{msg}");
            assert!(
                msg.contains("The provided model identifier is invalid."),
                "{msg}"
            );
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn throttling_is_rate_limited() {
    let err = chat_error(aws_error(
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    ))
    .await;
    assert!(matches!(err, LlmError::RateLimited { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn service_unavailable_is_unavailable() {
    let err = chat_error(aws_error(
        503,
        "ServiceUnavailableException",
        "Bedrock is unable to process your request.",
    ))
    .await;
    match &err {
        LlmError::Unavailable(msg) => assert!(msg.contains("unable to process"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn other_service_errors_map_by_kind() {
    let cases: Vec<(u16, &'static str, &'static str)> = vec![
        (429, "ServiceQuotaExceededException", "rate_limited"),
        (408, "ModelTimeoutException", "timeout"),
        (500, "InternalServerException", "unavailable"),
        (429, "ModelNotReadyException", "unavailable"),
        (403, "AccessDeniedException", "invalid_request"),
        (404, "ResourceNotFoundException", "invalid_request"),
        (424, "ModelErrorException", "invalid_request"),
        // Unknown codes fall back on the status.
        (429, "SomethingNewException", "rate_limited"),
        (502, "SomethingNewException", "unavailable"),
        (400, "SomethingNewException", "invalid_request"),
    ];
    for (status, code, kind) in cases {
        let err = chat_error(aws_error(status, code, "details")).await;
        assert_eq!(err.kind(), kind, "{status} {code}: {err:?}");
    }
}

#[tokio::test]
async fn connection_failure_is_unavailable() {
    // No canned response: the replay client fails like a dead connection.
    let (client, _http) = replay(vec![]);
    let err = chat_with(client)
        .chat(ChatRequest {
            messages: vec![user("hi")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_call_that_never_answers_times_out() {
    let cfg = BedrockConfig {
        timeout_secs: 1,
        ..config()
    };
    let chat = BedrockChat::with_client(sdk_client(NeverClient::new(), None), &cfg).unwrap();
    let started = Instant::now();
    let err = chat
        .chat(ChatRequest {
            messages: vec![user("hi")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Timeout(d) if d == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // The SDK's own operation timeout maps the same way.
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(Duration::from_millis(100))
        .build();
    let chat = BedrockChat::with_client(sdk_client(NeverClient::new(), Some(timeouts)), &config())
        .unwrap();
    let err = chat
        .chat(ChatRequest {
            messages: vec![user("hi")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Timeout(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// ConverseStream (AWS event-stream framing, built by hand)
// ---------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One event-stream message: prelude (total length, headers length, CRC),
/// string-typed headers, payload, message CRC.
fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(u8::try_from(name.len()).unwrap());
        h.extend_from_slice(name.as_bytes());
        h.push(7); // string
        h.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
    out.extend_from_slice(&u32::try_from(h.len()).unwrap().to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn event(kind: &str, payload: Value) -> Vec<u8> {
    frame(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        &serde_json::to_vec(&payload).unwrap(),
    )
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(
        &[
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        &serde_json::to_vec(&json!({ "message": message })).unwrap(),
    )
}

fn stream_response(frames: Vec<Vec<u8>>) -> HttpResponse {
    http_response(
        200,
        &[("content-type", "application/vnd.amazon.eventstream")],
        frames.concat(),
    )
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[tokio::test]
async fn streaming_delivers_text_and_assembles_tool_calls() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Checking "}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "alerts."}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {
                "toolUseId": "tooluse_s1", "name": "get_alerts"
            }}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"service\": \"chec"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "kout\", \"limit\": 3}"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({
                "usage": {"inputTokens": 77, "outputTokens": 33, "totalTokens": 110},
                "metrics": {"latencyMs": 800}
            }),
        ),
    ];
    let (client, http) = replay(vec![stream_response(frames)]);
    let chat = chat_with(client);

    let pieces = Mutex::new(Vec::<String>::new());
    let sink = |s: &str| pieces.lock().unwrap().push(s.to_owned());
    let resp = chat
        .chat_stream(
            ChatRequest {
                messages: vec![Message::new(Role::System, "sys"), user("What is firing?")],
                tools: vec![alerts_tool()],
                temperature: Some(0.0),
                ..Default::default()
            },
            &sink,
        )
        .await
        .unwrap();

    assert_eq!(*pieces.lock().unwrap(), vec!["Checking ", "alerts."]);
    assert_eq!(resp.content, "Checking alerts.");
    assert_eq!(
        resp.tool_calls,
        vec![ToolCall {
            id: "tooluse_s1".into(),
            name: "get_alerts".into(),
            arguments: json!({"service": "checkout", "limit": 3}),
        }]
    );
    assert_eq!(resp.usage.input_tokens, 77);
    assert_eq!(resp.usage.output_tokens, 33);
    assert_eq!(resp.model, MODEL);

    let (_, uri, body) = sent(&http, 0);
    assert!(
        uri.ends_with(&format!("/model/{MODEL_IN_PATH}/converse-stream")),
        "{uri}"
    );
    assert_eq!(body["system"], json!([{"text": "sys"}]));
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_alerts"
    );
    assert_eq!(body["inferenceConfig"], json!({"temperature": 0.0}));
}

#[tokio::test]
async fn streaming_json_schema_answer_is_delivered_whole() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 0, "start": {"toolUse": {
                "toolUseId": "tooluse_j", "name": "respond"
            }}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"ok\":"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": " true}"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 5, "outputTokens": 6, "totalTokens": 11},
                   "metrics": {"latencyMs": 10}}),
        ),
    ];
    let (client, _http) = replay(vec![stream_response(frames)]);
    let pieces = Mutex::new(Vec::<String>::new());
    let sink = |s: &str| pieces.lock().unwrap().push(s.to_owned());
    let resp = chat_with(client)
        .chat_stream(
            ChatRequest {
                messages: vec![user("ok?")],
                format: ResponseFormat::JsonSchema {
                    schema: json!({"type": "object", "properties": {"ok": {"type": "boolean"}}}),
                },
                ..Default::default()
            },
            &sink,
        )
        .await
        .unwrap();
    assert_eq!(resp.content, r#"{"ok":true}"#);
    assert!(resp.tool_calls.is_empty());
    assert_eq!(*pieces.lock().unwrap(), vec![r#"{"ok":true}"#.to_owned()]);
}

#[tokio::test]
async fn streaming_exception_mid_stream_is_mapped() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "partial"}}),
        ),
        exception("throttlingException", "Too many tokens, slow down."),
    ];
    let (client, _http) = replay(vec![stream_response(frames)]);
    let err = chat_with(client)
        .chat_stream(
            ChatRequest {
                messages: vec![user("hi")],
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { .. }), "{err:?}");

    let frames = vec![exception(
        "modelStreamErrorException",
        "The model stream failed.",
    )];
    let (client, _http) = replay(vec![stream_response(frames)]);
    let err = chat_with(client)
        .chat_stream(
            ChatRequest {
                messages: vec![user("hi")],
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn streaming_cut_short_is_unavailable() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "half an ans"}}),
        ),
    ];
    let (client, _http) = replay(vec![stream_response(frames)]);
    let err = chat_with(client)
        .chat_stream(
            ChatRequest {
                messages: vec![user("hi")],
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn streaming_request_error_is_mapped() {
    let (client, _http) = replay(vec![aws_error(
        400,
        "ValidationException",
        "Malformed input request",
    )]);
    let err = chat_with(client)
        .chat_stream(
            ChatRequest {
                messages: vec![user("hi")],
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------

fn embed_config(model: &str, dims: Option<usize>) -> BedrockConfig {
    BedrockConfig {
        embed_model: Some(model.into()),
        embed_dimensions: dims,
        ..config()
    }
}

#[tokio::test]
async fn titan_v2_embeds_one_text_per_call() {
    let v1: Vec<f32> = (0..256).map(|i| i as f32 / 256.0).collect();
    let v2: Vec<f32> = (0..256).map(|i| -(i as f32) / 256.0).collect();
    let (client, http) = replay(vec![
        json_ok(json!({"embedding": v1, "inputTextTokenCount": 4})),
        json_ok(json!({"embedding": v2, "inputTextTokenCount": 3})),
    ]);
    let embedder = BedrockEmbedder::with_client(
        client,
        &embed_config("amazon.titan-embed-text-v2:0", Some(256)),
    )
    .unwrap();
    assert_eq!(embedder.provider(), "bedrock");
    assert_eq!(embedder.model(), "amazon.titan-embed-text-v2:0");
    assert_eq!(embedder.dimensions(), 256);

    let out = embedder
        .embed(&["disk full on db-1".into(), "cpu high".into()])
        .await
        .unwrap();
    assert_eq!(out, vec![v1, v2]);

    for (i, text) in ["disk full on db-1", "cpu high"].iter().enumerate() {
        let (method, uri, body) = sent(&http, i);
        assert_eq!(method, "POST");
        assert!(
            uri.ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke"),
            "{uri}"
        );
        assert_eq!(
            body,
            json!({"inputText": text, "dimensions": 256, "normalize": true})
        );
        let req = http.actual_requests().nth(i).unwrap();
        assert_eq!(req.headers().get("content-type"), Some("application/json"));
        assert_eq!(req.headers().get("accept"), Some("application/json"));
    }

    assert!(embedder.embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn titan_wrong_size_vector_is_malformed() {
    let (client, _http) = replay(vec![json_ok(
        json!({"embedding": [0.1, 0.2], "inputTextTokenCount": 1}),
    )]);
    let embedder =
        BedrockEmbedder::with_client(client, &embed_config("amazon.titan-embed-text-v2:0", None))
            .unwrap();
    assert_eq!(embedder.dimensions(), 1024);
    let err = embedder.embed(&["x".into()]).await.unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn cohere_embeds_in_batches_of_96() {
    let texts: Vec<String> = (0..100).map(|i| format!("alert {i}")).collect();
    let vectors = |n: usize, base: usize| -> Vec<Vec<f32>> {
        (0..n).map(|i| vec![(base + i) as f32; 1024]).collect()
    };
    let (client, http) = replay(vec![
        json_ok(json!({
            "id": "a", "response_type": "embeddings_floats",
            "embeddings": vectors(96, 0), "texts": &texts[..96]
        })),
        json_ok(json!({
            "id": "b", "response_type": "embeddings_floats",
            "embeddings": vectors(4, 96), "texts": &texts[96..]
        })),
    ]);
    let embedder =
        BedrockEmbedder::with_client(client, &embed_config("cohere.embed-english-v3", None))
            .unwrap();
    assert_eq!(embedder.dimensions(), 1024);
    let out = embedder.embed(&texts).await.unwrap();
    assert_eq!(out.len(), 100);
    assert_eq!(out[0][0], 0.0);
    assert_eq!(out[99][0], 99.0);

    let (_, uri, body) = sent(&http, 0);
    assert!(
        uri.ends_with("/model/cohere.embed-english-v3/invoke"),
        "{uri}"
    );
    assert_eq!(body["input_type"], "search_document");
    assert_eq!(body["texts"].as_array().unwrap().len(), 96);
    assert_eq!(body["texts"][0], "alert 0");
    let (_, _, body) = sent(&http, 1);
    assert_eq!(body["texts"], json!(texts[96..]));
}

#[tokio::test]
async fn embed_errors_are_mapped() {
    let (client, _http) = replay(vec![aws_error(
        429,
        "ThrottlingException",
        "Too many requests",
    )]);
    let embedder =
        BedrockEmbedder::with_client(client, &embed_config("amazon.titan-embed-text-v2:0", None))
            .unwrap();
    let err = embedder.embed(&["x".into()]).await.unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { .. }), "{err:?}");
}

#[test]
fn embed_model_family_and_dimensions_are_checked() {
    assert_eq!(
        EmbedFamily::of("amazon.titan-embed-text-v2:0"),
        Some(EmbedFamily::TitanV2)
    );
    assert_eq!(
        EmbedFamily::of("us.cohere.embed-multilingual-v3"),
        Some(EmbedFamily::Cohere)
    );
    assert_eq!(
        EmbedFamily::of("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v1"),
        Some(EmbedFamily::TitanV1)
    );
    assert_eq!(EmbedFamily::of("anthropic.claude-3-5-haiku"), None);

    let client = sdk_client(NeverClient::new(), None);
    let bad = |model: &str, dims: Option<usize>| {
        BedrockEmbedder::with_client(client.clone(), &embed_config(model, dims)).unwrap_err()
    };
    assert!(matches!(
        bad("amazon.titan-embed-text-v2:0", Some(768)),
        LlmError::InvalidRequest(_)
    ));
    assert!(matches!(
        bad("meta.llama3-8b-instruct-v1:0", None),
        LlmError::InvalidRequest(_)
    ));
    let no_model = BedrockEmbedder::with_client(client, &config()).unwrap_err();
    assert!(matches!(no_model, LlmError::InvalidRequest(_)));
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn config_defaults_and_rejects_unknown_fields() {
    let cfg: BedrockConfig = serde_json::from_value(json!({
        "model": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "region": "eu-west-1",
        "embed_model": "amazon.titan-embed-text-v2:0",
        "embed_dimensions": 512
    }))
    .unwrap();
    assert_eq!(cfg.timeout_secs, 60);
    assert_eq!(cfg.timeout(), Duration::from_secs(60));
    assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
    assert_eq!(cfg.endpoint_url, None);
    assert_eq!(cfg.embed_dimensions, Some(512));

    let err = serde_json::from_value::<BedrockConfig>(json!({
        "model": "m",
        "max_retries": 3
    }))
    .unwrap_err();
    assert!(err.to_string().contains("max_retries"), "{err}");

    let zero = BedrockConfig {
        timeout_secs: 0,
        ..config()
    };
    let client = sdk_client(NeverClient::new(), None);
    assert!(matches!(
        BedrockChat::with_client(client.clone(), &zero).unwrap_err(),
        LlmError::InvalidRequest(_)
    ));
    assert!(matches!(
        BedrockChat::with_client(client, &BedrockConfig::new(" ")).unwrap_err(),
        LlmError::InvalidRequest(_)
    ));
}
