//! A GGUF chat model run by candle on the CPU.
//!
//! The model lives on a thread of its own and takes one request at a time:
//! inference is CPU-bound for seconds and must never run on the async
//! runtime, and on a small machine two generations at once are each slower
//! than one after the other. Requests queue on a channel; a request whose
//! caller went away (timeout, cancelled HTTP request) is dropped before or
//! during generation.

use super::guided::{self, Segment};
use super::template::ChatTemplate;
use crate::structured;
use async_trait::async_trait;
use brain::backends::{
    ChatRequest, ChatResponse, LlmError, LlmProvider, Message, ResponseFormat, Role, TextSink,
    ToolCall, ToolDefinition, Usage,
};
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokenizers::Tokenizer;
use tokio::sync::{mpsc, oneshot};

/// Settings of a local chat model.
#[derive(Debug, Clone)]
pub struct LocalChatOptions {
    /// Largest prompt + answer, in tokens.
    pub context_tokens: usize,
    /// Answer length when the request does not say.
    pub default_max_tokens: u32,
}

impl Default for LocalChatOptions {
    fn default() -> Self {
        LocalChatOptions {
            context_tokens: 4096,
            default_max_tokens: 256,
        }
    }
}

struct Job {
    prompt: String,
    max_tokens: u32,
    /// Generate exactly `max_tokens` (benchmarks), past end-of-turn.
    ignore_eos: bool,
    /// Write this JSON structure and let the model fill only its holes.
    plan: Option<Vec<Segment>>,
    temperature: f32,
    seed: u64,
    deadline: Instant,
    stream: Option<mpsc::UnboundedSender<String>>,
    reply: oneshot::Sender<Result<Generated, LlmError>>,
}

/// One generation, with its timing.
#[derive(Debug, Clone)]
pub struct Generated {
    pub text: String,
    /// The sampled token ids (empty for guided JSON, whose literal parts
    /// are written, not sampled).
    pub ids: Vec<u32>,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    /// The prompt's forward pass and the first sampled token.
    pub prefill: Duration,
    /// Every later token.
    pub decode: Duration,
}

/// A local chat model; cloning shares the model thread.
#[derive(Clone)]
pub struct LocalChat {
    name: String,
    /// A copy for callers (counting, checks); the engine has its own.
    tokenizer: std::sync::Arc<Tokenizer>,
    jobs: std::sync::mpsc::Sender<Job>,
    template: std::sync::Arc<ChatTemplate>,
    options: LocalChatOptions,
}

impl std::fmt::Debug for LocalChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChat")
            .field("name", &self.name)
            .finish()
    }
}

fn load_err(path: &Path, e: impl std::fmt::Display) -> LlmError {
    LlmError::Unavailable(format!("loading {}: {e}", path.display()))
}

fn meta_str(ct: &gguf_file::Content, key: &str) -> Option<String> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

fn meta_u32(ct: &gguf_file::Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| v.to_u32().ok())
}

/// The GGUF file of a model given as a file or as a directory holding
/// `model.gguf`.
pub fn gguf_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("model.gguf")
    } else {
        path.to_owned()
    }
}

impl LocalChat {
    /// Load the GGUF at `path` (a file, or a directory with `model.gguf`
    /// and optionally `chat_template.jinja`) and start its thread.
    pub fn load(path: &Path, options: LocalChatOptions) -> Result<LocalChat, LlmError> {
        let file = gguf_path(path);
        let mut f = std::fs::File::open(&file).map_err(|e| load_err(&file, e))?;
        let ct = gguf_file::Content::read(&mut f).map_err(|e| load_err(&file, e))?;
        let arch = meta_str(&ct, "general.architecture").unwrap_or_default();
        let name = meta_str(&ct, "general.name").unwrap_or_else(|| arch.clone());
        let tokenizer = if super::spm::is_sentencepiece(&ct) {
            super::spm::from_gguf(&ct).map_err(|e| load_err(&file, e))?
        } else {
            let mut tokenizer = Tokenizer::from_gguf(&ct).map_err(|e| load_err(&file, e))?;
            fix_prefix_space(&ct, &mut tokenizer);
            tokenizer
        };
        let token = |key: &str| {
            meta_u32(&ct, key)
                .and_then(|id| tokenizer.id_to_token(id))
                .unwrap_or_default()
        };
        let (bos, eos) = (
            token("tokenizer.ggml.bos_token_id"),
            token("tokenizer.ggml.eos_token_id"),
        );
        let beside = file.with_file_name("chat_template.jinja");
        let source = match meta_str(&ct, "tokenizer.chat_template") {
            Some(t) => t,
            None => std::fs::read_to_string(&beside).map_err(|_| {
                load_err(
                    &file,
                    format!(
                        "no tokenizer.chat_template in the GGUF and no {} beside it",
                        beside.display()
                    ),
                )
            })?,
        };
        let template = ChatTemplate::new(&source, &bos, &eos).map_err(|e| load_err(&file, e))?;
        let mut stop: Vec<u32> = ["<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        stop.extend(meta_u32(&ct, "tokenizer.ggml.eos_token_id"));
        let device = Device::Cpu;
        let weights = super::decoder::Decoder::from_gguf(&arch, &ct, &mut f)
            .map_err(|e| load_err(&file, e))?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let shared = std::sync::Arc::new(tokenizer.clone());
        let engine = Engine {
            weights,
            tokenizer,
            stop,
            device,
            context: options.context_tokens,
            pieces: None,
        };
        std::thread::Builder::new()
            .name(format!("llm-{arch}"))
            .spawn(move || engine.serve(&rx))
            .map_err(|e| load_err(&file, e))?;
        Ok(LocalChat {
            name,
            tokenizer: shared,
            jobs: tx,
            template: std::sync::Arc::new(template),
            options,
        })
    }

    async fn generate(
        &self,
        prompt: String,
        req: &ChatRequest,
        plan: &Option<Vec<Segment>>,
        on_text: Option<TextSink<'_>>,
    ) -> Result<Generated, LlmError> {
        let (reply, answer) = oneshot::channel();
        let (stream, mut pieces) = match on_text {
            Some(_) => {
                let (s, r) = mpsc::unbounded_channel();
                (Some(s), Some(r))
            }
            None => (None, None),
        };
        let job = Job {
            prompt,
            max_tokens: req.max_tokens.unwrap_or(self.options.default_max_tokens),
            ignore_eos: false,
            plan: plan.clone(),
            temperature: req.temperature.unwrap_or(0.0),
            seed: 299792458,
            // The gateway enforces the caller's timeout; this bounds a
            // request nobody waits for any more.
            deadline: Instant::now() + Duration::from_secs(600),
            stream,
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| LlmError::Unavailable("the local model thread stopped".into()))?;
        if let (Some(sink), Some(pieces)) = (on_text, pieces.as_mut()) {
            while let Some(piece) = pieces.recv().await {
                sink(&piece);
            }
        }
        answer
            .await
            .map_err(|_| LlmError::Unavailable("the local model thread stopped".into()))?
    }

    /// Greedy generation of exactly `tokens` tokens after `messages` (the
    /// chat template applied), for benchmarks: timing of prefill and decode.
    pub async fn timed(&self, messages: &[Message], tokens: u32) -> Result<Generated, LlmError> {
        self.complete(self.prompt(messages, &[])?, tokens).await
    }

    /// Greedy continuation of `prompt` (raw text, special tokens written
    /// out, no template) by exactly `tokens` tokens: base models, and
    /// comparisons with other runtimes.
    pub async fn complete(&self, prompt: String, tokens: u32) -> Result<Generated, LlmError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                prompt,
                max_tokens: tokens,
                ignore_eos: true,
                plan: None,
                temperature: 0.0,
                seed: 0,
                deadline: Instant::now() + Duration::from_secs(3600),
                stream: None,
                reply,
            })
            .map_err(|_| LlmError::Unavailable("the local model thread stopped".into()))?;
        answer
            .await
            .map_err(|_| LlmError::Unavailable("the local model thread stopped".into()))?
    }

    /// The token ids of `text` (special tokens written out are recognised;
    /// none are added).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.encode(text).map(|e| e.get_ids().to_vec())
    }

    fn encode(&self, text: &str) -> Result<tokenizers::Encoding, LlmError> {
        self.tokenizer
            .encode(text, false)
            .map_err(|e| LlmError::InvalidRequest(format!("tokenizing: {e}")))
    }

    /// The tokens of `text` as the model sees them (no special tokens added).
    pub fn tokens(&self, text: &str) -> Result<Vec<String>, LlmError> {
        self.encode(text).map(|e| e.get_tokens().to_vec())
    }

    /// The prompt text (chat template applied) for `messages`.
    pub fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        self.prompt(messages, &[])
    }

    /// Prompt text for `messages`, with tools described by the template or,
    /// when it has no tool support, in the system message.
    fn prompt(&self, messages: &[Message], tools: &[ToolDefinition]) -> Result<String, LlmError> {
        let rendered = if tools.is_empty() || self.template.supports_tools() {
            self.template.render(messages, tools)
        } else {
            self.template
                .render(&with_system_note(messages, &tool_instructions(tools)), &[])
        };
        rendered.map_err(LlmError::InvalidRequest)
    }

    async fn chat_inner(
        &self,
        req: ChatRequest,
        on_text: Option<TextSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let schema = match &req.format {
            ResponseFormat::JsonSchema { schema } => Some(schema.clone()),
            ResponseFormat::Text => None,
        };
        let mut messages = req.messages.clone();
        if let Some(schema) = &schema {
            messages = with_system_note(&messages, &json_instructions(schema));
        }
        let mut usage = Usage::default();
        // One attempt and, if the answer is not what was asked for, one
        // repair with the problem spelled out; then give up loudly.
        let plan = schema.as_ref().and_then(guided::plan);
        for attempt in 0..2 {
            let mut prompt = self.prompt(&messages, &req.tools)?;
            // Without a plan, start an object answer with `{`: small models
            // then continue the JSON instead of introducing it with prose.
            let forced = match &schema {
                Some(s)
                    if plan.is_none()
                        && s.get("type").and_then(|t| t.as_str()) == Some("object") =>
                {
                    "{"
                }
                _ => "",
            };
            prompt.push_str(forced);
            let stream_this = if schema.is_none() && req.tools.is_empty() {
                on_text
            } else {
                None
            };
            let g = self.generate(prompt, &req, &plan, stream_this).await?;
            usage.input_tokens += g.prompt_tokens;
            usage.output_tokens += g.output_tokens;
            let text = format!("{forced}{}", g.text);
            let problem = match (&schema, req.tools.is_empty()) {
                (Some(schema), _) => match structured::parse_json_answer(&text)
                    .and_then(|v| structured::validate(&v, schema).map(|()| v))
                {
                    Ok(v) => {
                        return Ok(self.response(v.to_string(), Vec::new(), usage));
                    }
                    Err(e) => e,
                },
                (None, false) => match parse_tool_calls(&text, &req.tools) {
                    Ok((content, calls)) => return Ok(self.response(content, calls, usage)),
                    Err(e) => e,
                },
                (None, true) => return Ok(self.response(text.trim().to_owned(), vec![], usage)),
            };
            if attempt == 1 {
                return Err(LlmError::Malformed(format!(
                    "{problem} (after one repair attempt)"
                )));
            }
            messages.push(Message::new(Role::Assistant, text));
            messages.push(Message::new(
                Role::User,
                format!("That answer was not valid: {problem}. Reply again with only the corrected answer."),
            ));
        }
        Err(LlmError::Malformed("no answer".into()))
    }

    fn response(&self, content: String, tool_calls: Vec<ToolCall>, usage: Usage) -> ChatResponse {
        ChatResponse {
            content,
            tool_calls,
            usage,
            model: self.name.clone(),
        }
    }
}

#[async_trait]
impl LlmProvider for LocalChat {
    fn provider(&self) -> &str {
        "local"
    }
    fn model(&self) -> &str {
        &self.name
    }
    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.chat_inner(req, None).await
    }
    async fn chat_stream(
        &self,
        req: ChatRequest,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.chat_inner(req, Some(on_text)).await
    }
}

/// `messages` with `note` appended to the system message (or a new one).
fn with_system_note(messages: &[Message], note: &str) -> Vec<Message> {
    let mut out = messages.to_vec();
    match out.iter_mut().find(|m| m.role == Role::System) {
        Some(system) => {
            system.content.push_str("\n\n");
            system.content.push_str(note);
        }
        None => out.insert(0, Message::new(Role::System, note)),
    }
    out
}

fn json_instructions(schema: &serde_json::Value) -> String {
    format!(
        "Answer with only one JSON value that is valid against this JSON Schema, and nothing else:\n{schema}"
    )
}

fn tool_instructions(tools: &[ToolDefinition]) -> String {
    let mut s = String::from(
        "You may call tools. To call one, answer with only\n<tool_call>\n{\"name\": <tool name>, \"arguments\": <arguments object>}\n</tool_call>\nTools:\n",
    );
    for t in tools {
        s.push_str(&format!(
            "- {}: {} Arguments schema: {}\n",
            t.name, t.description, t.parameters
        ));
    }
    s
}

/// Tool calls in `<tool_call>{...}</tool_call>` blocks (the form Qwen and
/// the instructions above use), each checked against its tool's schema.
/// Text outside the blocks is the message content.
fn parse_tool_calls(
    text: &str,
    tools: &[ToolDefinition],
) -> Result<(String, Vec<ToolCall>), String> {
    let mut calls = Vec::new();
    let mut content = String::new();
    let mut rest = text;
    // Small models often drop the tags and answer with the bare (or fenced)
    // call object; accept that only when it is the whole answer and names
    // an offered tool.
    if !text.contains("<tool_call>")
        && let Ok(v) = structured::parse_json_answer(text)
        && v.get("name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| tools.iter().any(|t| t.name == n))
    {
        return parse_tool_calls(&format!("<tool_call>{v}</tool_call>"), tools);
    }
    while let Some(start) = rest.find("<tool_call>") {
        content.push_str(&rest[..start]);
        let after = &rest[start + "<tool_call>".len()..];
        let (body, next) = match after.find("</tool_call>") {
            Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
            None => (after, ""),
        };
        let v = structured::parse_json_answer(body)?;
        let name = v
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("a tool call needs a string `name`")?;
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("there is no tool named `{name}`"))?;
        let arguments = v.get("arguments").cloned().unwrap_or(serde_json::json!({}));
        structured::validate(&arguments, &tool.parameters)
            .map_err(|e| format!("arguments of `{name}`: {e}"))?;
        calls.push(ToolCall {
            id: format!("call_{}", calls.len()),
            name: name.to_owned(),
            arguments,
        });
        rest = next;
    }
    content.push_str(rest);
    Ok((content.trim().to_owned(), calls))
}

/// candle builds GPT-2 style tokenizers with `add_prefix_space = true`
/// unless it knows the pre-tokenizer; SmolLM2 (`smollm`) then tokenizes
/// differently from its training. Follow the GGUF's own flag instead.
fn fix_prefix_space(ct: &gguf_file::Content, tokenizer: &mut Tokenizer) {
    let pre = meta_str(ct, "tokenizer.ggml.pre").unwrap_or_default();
    let known = matches!(pre.as_str(), "qwen2" | "smaug-bpe" | "lfm2" | "llama3");
    let add_space = ct
        .metadata
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let gpt2 = meta_str(ct, "tokenizer.ggml.model").as_deref() == Some("gpt2");
    if gpt2 && !known && !add_space {
        tokenizer.with_pre_tokenizer(Some(
            tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true),
        ));
    }
}

struct Engine {
    weights: super::decoder::Decoder,
    tokenizer: Tokenizer,
    stop: Vec<u32>,
    device: Device,
    context: usize,
    /// Each token's text, built on first guided use.
    pieces: Option<Vec<String>>,
}

impl Engine {
    fn serve(mut self, jobs: &std::sync::mpsc::Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            if job.reply.is_closed() {
                continue; // the caller gave up while it queued
            }
            let result = self.run(&job);
            let _ = job.reply.send(result);
        }
    }

    fn run(&mut self, job: &Job) -> Result<Generated, LlmError> {
        let fail = |e: candle_core::Error| LlmError::Unavailable(format!("local inference: {e}"));
        let prompt = self
            .tokenizer
            .encode(job.prompt.as_str(), false)
            .map_err(|e| LlmError::InvalidRequest(format!("tokenizing the prompt: {e}")))?
            .get_ids()
            .to_vec();
        let budget = job.max_tokens as usize;
        if prompt.len() + budget > self.context {
            return Err(LlmError::InvalidRequest(format!(
                "prompt of {} tokens plus {budget} to generate exceeds the local context of {}",
                prompt.len(),
                self.context
            )));
        }
        let sampling = if job.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            Sampling::TopP {
                p: 0.9,
                temperature: f64::from(job.temperature),
            }
        };
        if let Some(plan) = &job.plan {
            return self.run_guided(job, &prompt, plan);
        }
        let mut sampler = LogitsProcessor::from_sampling(job.seed, sampling);
        let input = Tensor::new(prompt.as_slice(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(fail)?;
        // The whole prompt in one call: the model resets its cache at 0.
        let started = Instant::now();
        let logits = self.weights.forward(&input, 0).map_err(fail)?;
        let mut next = sample(&mut sampler, &logits).map_err(fail)?;
        let prefill = started.elapsed();
        let mut out: Vec<u32> = Vec::new();
        let mut shown = 0usize;
        while (job.ignore_eos || !self.stop.contains(&next)) && out.len() < budget {
            out.push(next);
            if let Some(stream) = &job.stream {
                let text = self.decode(&out);
                // Hold back a trailing partial UTF-8 character.
                if !text.ends_with('\u{FFFD}') && text.len() > shown {
                    if let Some(piece) = text.get(shown..) {
                        let _ = stream.send(piece.to_owned());
                    }
                    shown = text.len();
                }
            }
            if job.reply.is_closed() || Instant::now() > job.deadline {
                return Err(LlmError::Timeout(Duration::ZERO));
            }
            let input = Tensor::new(&[next], &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(fail)?;
            let logits = self
                .weights
                .forward(&input, prompt.len() + out.len() - 1)
                .map_err(fail)?;
            next = sample(&mut sampler, &logits).map_err(fail)?;
        }
        let text = self.decode(&out);
        if let Some(stream) = &job.stream
            && let Some(piece) = text.get(shown..)
            && !piece.is_empty()
        {
            let _ = stream.send(piece.to_owned());
        }
        Ok(Generated {
            text,
            prompt_tokens: prompt.len() as u64,
            output_tokens: out.len() as u64,
            ids: out,
            prefill,
            decode: started.elapsed().saturating_sub(prefill),
        })
    }

    /// Feed one token at `pos`, returning the next logits as a vector.
    fn step(&mut self, token: u32, pos: usize) -> candle_core::Result<Vec<f32>> {
        let input = Tensor::new(&[token], &self.device)?.unsqueeze(0)?;
        let logits = self.weights.forward(&input, pos)?;
        logits
            .squeeze(0)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()
    }

    /// Generate along `plan`: literals are fed as they are, holes are
    /// filled greedily from the tokens their constraint admits.
    fn run_guided(
        &mut self,
        job: &Job,
        prompt: &[u32],
        plan: &[Segment],
    ) -> Result<Generated, LlmError> {
        let fail = |e: candle_core::Error| LlmError::Unavailable(format!("local inference: {e}"));
        if self.pieces.is_none() {
            let n = self.tokenizer.get_vocab_size(true) as u32;
            self.pieces = Some(
                (0..n)
                    .map(|id| self.tokenizer.decode(&[id], false).unwrap_or_default())
                    .collect(),
            );
        }
        let started = Instant::now();
        let input = Tensor::new(prompt, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(fail)?;
        let mut logits = self
            .weights
            .forward(&input, 0)
            .and_then(|l| {
                l.squeeze(0)?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec1::<f32>()
            })
            .map_err(fail)?;
        let prefill = started.elapsed();
        let mut pos = prompt.len();
        let mut text = String::new();
        let mut produced = 0u64;
        let limit = job.max_tokens.max(16) as usize;
        for segment in plan {
            match segment {
                Segment::Literal(lit) => {
                    let ids = self
                        .tokenizer
                        .encode(lit.as_str(), false)
                        .map_err(|e| LlmError::Unavailable(format!("tokenizing: {e}")))?
                        .get_ids()
                        .to_vec();
                    for id in ids {
                        logits = self.step(id, pos).map_err(fail)?;
                        pos += 1;
                        produced += 1;
                    }
                    text.push_str(lit);
                }
                hole => {
                    let mut value = String::new();
                    for _ in 0..limit {
                        if job.reply.is_closed() || Instant::now() > job.deadline {
                            return Err(LlmError::Timeout(Duration::ZERO));
                        }
                        let Some((token, piece, finished)) = self.pick(hole, &value, &logits)
                        else {
                            break;
                        };
                        let Some(token) = token else { break };
                        value.push_str(&piece);
                        logits = self.step(token, pos).map_err(fail)?;
                        pos += 1;
                        produced += 1;
                        if finished {
                            break;
                        }
                    }
                    text.push_str(&complete(hole, value));
                }
            }
        }
        Ok(Generated {
            text,
            prompt_tokens: prompt.len() as u64,
            output_tokens: produced,
            ids: Vec::new(),
            prefill,
            decode: started.elapsed().saturating_sub(prefill),
        })
    }

    /// The best admissible token for `hole` after `value`: `Some((None, ..))`
    /// means the hole is complete as it is.
    fn pick(
        &self,
        hole: &Segment,
        value: &str,
        logits: &[f32],
    ) -> Option<(Option<u32>, String, bool)> {
        let pieces = self.pieces.as_ref()?;
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let top = order.len().min(512);
        order.select_nth_unstable_by(top.saturating_sub(1), |a, b| {
            logits[*b as usize].total_cmp(&logits[*a as usize])
        });
        order.truncate(top);
        order.sort_unstable_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]));
        let piece = |id: u32| pieces.get(id as usize).map(String::as_str).unwrap_or("");
        match hole {
            Segment::Choice(options) => {
                for &id in &order {
                    let next = format!("{value}{}", piece(id));
                    let (viable, done) = guided::choice_state(&next, options);
                    if viable && next.len() > value.len() {
                        return Some((Some(id), piece(id).to_owned(), done));
                    }
                }
                // Nothing the model likes fits: complete the first option
                // that still matches (complete() does it).
                Some((None, String::new(), true))
            }
            Segment::Number { integer } => {
                // (a leading space is part of `value` and kept in the JSON)
                let has_digit = value.chars().any(|c| c.is_ascii_digit());
                // Stop when the model prefers to end the number.
                if has_digit
                    && let Some(&best) = order.first()
                    && !guided::number_piece_ok(value, piece(best), *integer)
                {
                    return Some((None, String::new(), true));
                }
                order
                    .iter()
                    .find(|&&id| guided::number_piece_ok(value, piece(id), *integer))
                    .map(|&id| (Some(id), piece(id).to_owned(), value.len() > 12))
            }
            Segment::Text { max_chars } => {
                if let Some(&best) = order.first()
                    && (piece(best).contains('"') || self.stop.contains(&best))
                {
                    return Some((None, String::new(), true));
                }
                let id = *order.iter().find(|&&id| guided::text_piece_ok(piece(id)))?;
                let done = value.chars().count() + piece(id).chars().count() >= *max_chars;
                Some((Some(id), piece(id).to_owned(), done))
            }
            Segment::Literal(_) => None,
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }
}

/// The JSON text of a filled hole, valid even if generation stopped early.
fn complete(hole: &Segment, value: String) -> String {
    match hole {
        Segment::Choice(options) => options
            .iter()
            .find(|o| o.starts_with(&value))
            .or_else(|| options.first())
            .cloned()
            .unwrap_or(value),
        Segment::Number { .. } => {
            let v = value.trim().trim_end_matches('.');
            if v.chars().any(|c| c.is_ascii_digit()) {
                v.to_owned()
            } else {
                "0".into()
            }
        }
        Segment::Text { max_chars } => value.chars().take(*max_chars).collect(),
        Segment::Literal(l) => l.clone(),
    }
}

fn sample(sampler: &mut LogitsProcessor, logits: &Tensor) -> candle_core::Result<u32> {
    let logits = logits.squeeze(0)?.to_dtype(candle_core::DType::F32)?;
    sampler.sample(&logits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolDefinition> {
        vec![ToolDefinition {
            name: "get_pod_logs".into(),
            description: "Recent logs of a pod".into(),
            parameters: json!({"type": "object", "required": ["pod"],
                "properties": {"pod": {"type": "string"}, "lines": {"type": "integer"}}}),
        }]
    }

    #[test]
    fn tool_calls_are_parsed_and_checked_against_the_schema() {
        let (content, calls) = parse_tool_calls(
            "Let me look.\n<tool_call>\n{\"name\": \"get_pod_logs\", \"arguments\": {\"pod\": \"api-1\", \"lines\": 50}}\n</tool_call>",
            &tools(),
        )
        .unwrap();
        assert_eq!(content, "Let me look.");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].arguments["pod"], "api-1");
        let e = parse_tool_calls(
            "<tool_call>{\"name\": \"delete_cluster\", \"arguments\": {}}</tool_call>",
            &tools(),
        )
        .unwrap_err();
        assert!(e.contains("no tool named `delete_cluster`"), "{e}");
        let e = parse_tool_calls(
            "<tool_call>{\"name\": \"get_pod_logs\", \"arguments\": {\"lines\": 5}}</tool_call>",
            &tools(),
        )
        .unwrap_err();
        assert!(e.contains("`pod`"), "{e}");
        let (content, calls) = parse_tool_calls("The pod ran out of memory.", &tools()).unwrap();
        assert!(calls.is_empty());
        assert_eq!(content, "The pod ran out of memory.");
    }
}
