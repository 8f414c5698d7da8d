//! Sentence embeddings with a BERT model (all-MiniLM-L6-v2) on the CPU.
//!
//! Same output as sentence-transformers: mean of the token states over real
//! tokens, L2-normalised. The encoder (`bert.rs`) packs a batch's texts
//! without padding, so short log lines cost what they are. The model runs
//! on its own thread, like the chat model.

use super::bert::{Bert, BertConfig};
use async_trait::async_trait;
use brain::backends::{Embedder, LlmError};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::oneshot;

/// Longest input in tokens; all-MiniLM-L6-v2 was trained to 256.
const MAX_TOKENS: usize = 256;

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, LlmError>>,
}

/// A local BERT embedder; cloning shares the model thread.
#[derive(Clone)]
pub struct LocalEmbedder {
    name: String,
    dims: usize,
    jobs: std::sync::mpsc::Sender<Job>,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("name", &self.name)
            .finish()
    }
}

/// The model itself, usable without a thread (the benchmark calls it
/// directly).
pub struct BertEmbedder {
    model: Bert,
    tokenizer: Tokenizer,
    pub batch_size: usize,
    pub dims: usize,
}

fn load_err(dir: &Path, e: impl std::fmt::Display) -> LlmError {
    LlmError::Unavailable(format!("loading the embedder in {}: {e}", dir.display()))
}

impl BertEmbedder {
    /// Load `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<BertEmbedder, LlmError> {
        let config: BertConfig = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load_err(dir, e))
            .and_then(|s| serde_json::from_str(&s).map_err(|e| load_err(dir, e)))?;
        let dims = config.hidden_size;
        let device = Device::Cpu;
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(|e| load_err(dir, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load_err(dir, e))?;
        let model = Bert::load(vb, &config).map_err(|e| load_err(dir, e))?;
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| load_err(dir, e))?;
        // The shipped tokenizer pads every input to 128; the encoder packs
        // texts instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| load_err(dir, e))?;
        Ok(BertEmbedder {
            model,
            tokenizer,
            batch_size: 32,
            dims,
        })
    }

    /// Embeddings of `texts`, in order, `batch_size` texts per pass.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let fail = |e: candle_core::Error| LlmError::Unavailable(format!("embedding: {e}"));
        let bad = |e: tokenizers::Error| LlmError::InvalidRequest(format!("tokenizing: {e}"));
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let ids: Vec<Vec<u32>> = self
                .tokenizer
                .encode_batch_fast(batch, true)
                .map_err(bad)?
                .iter()
                .map(|e| e.get_ids().to_vec())
                .collect();
            for mut v in self.model.pooled(&ids).map_err(fail)? {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
                out.push(v);
            }
        }
        Ok(out)
    }
}

impl LocalEmbedder {
    /// Load the model in `dir` and start its thread.
    pub fn load(dir: &Path) -> Result<LocalEmbedder, LlmError> {
        let model = BertEmbedder::load(dir)?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bert")
            .to_owned();
        let dims = model.dims;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("embedder".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    if job.reply.is_closed() {
                        continue;
                    }
                    let _ = job.reply.send(model.embed(&job.texts));
                }
            })
            .map_err(|e| load_err(dir, e))?;
        Ok(LocalEmbedder {
            name,
            dims,
            jobs: tx,
        })
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn provider(&self) -> &str {
        "local"
    }
    fn model(&self) -> &str {
        &self.name
    }
    fn dimensions(&self) -> usize {
        self.dims
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                texts: texts.to_vec(),
                reply,
            })
            .map_err(|_| LlmError::Unavailable("the embedder thread stopped".into()))?;
        answer
            .await
            .map_err(|_| LlmError::Unavailable("the embedder thread stopped".into()))?
    }
}
