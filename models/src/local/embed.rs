//! Sentence embeddings with a BERT model (all-MiniLM-L6-v2) on the CPU.
//!
//! Same output as sentence-transformers: mean of the token states over real
//! tokens, L2-normalised. Faster than a naive port in two ways: batches
//! are formed from texts of similar length (sorted by token count), and
//! each batch is padded only to its own longest text rather than to a fixed
//! 128, so short log lines cost what they are. The model runs on its own
//! thread, like the chat model.

use async_trait::async_trait;
use brain::backends::{Embedder, LlmError};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
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
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    pub batch_size: usize,
    pub dims: usize,
}

fn load_err(dir: &Path, e: impl std::fmt::Display) -> LlmError {
    LlmError::Unavailable(format!("loading the embedder in {}: {e}", dir.display()))
}

impl BertEmbedder {
    /// Load `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<BertEmbedder, LlmError> {
        let config: Config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load_err(dir, e))
            .and_then(|s| serde_json::from_str(&s).map_err(|e| load_err(dir, e)))?;
        let dims = config.hidden_size;
        let device = Device::Cpu;
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(|e| load_err(dir, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load_err(dir, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_err(dir, e))?;
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| load_err(dir, e))?;
        // The shipped tokenizer pads every input to 128; pad per batch.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| load_err(dir, e))?;
        Ok(BertEmbedder {
            model,
            tokenizer,
            device,
            batch_size: 32,
            dims,
        })
    }

    /// Embeddings of `texts`, in order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let fail = |e: candle_core::Error| LlmError::Unavailable(format!("embedding: {e}"));
        let bad = |e: tokenizers::Error| LlmError::InvalidRequest(format!("tokenizing: {e}"));
        // Token counts without padding, to group texts of similar length.
        let mut lengths = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let n = self
                .tokenizer
                .encode_fast(t.as_str(), true)
                .map_err(bad)?
                .get_ids()
                .len();
            lengths.push((n, i));
        }
        lengths.sort_unstable();
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in lengths.chunks(self.batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&(_, i)| texts[i].as_str()).collect();
            let encodings = self.tokenizer.encode_batch_fast(batch, true).map_err(bad)?;
            let width = encodings.first().map_or(0, |e| e.get_ids().len());
            let mut ids = Vec::with_capacity(chunk.len() * width);
            let mut mask = Vec::with_capacity(chunk.len() * width);
            for e in &encodings {
                ids.extend_from_slice(e.get_ids());
                mask.extend_from_slice(e.get_attention_mask());
            }
            let shape = (chunk.len(), width);
            let ids = Tensor::from_vec(ids, shape, &self.device).map_err(fail)?;
            let mask = Tensor::from_vec(mask, shape, &self.device).map_err(fail)?;
            let types = ids.zeros_like().map_err(fail)?;
            let vectors = self.pooled(&ids, &types, &mask).map_err(fail)?;
            for (row, &(_, i)) in vectors.into_iter().zip(chunk) {
                out[i] = row;
            }
        }
        Ok(out)
    }

    /// Mean over real tokens, then L2 normalisation.
    fn pooled(
        &self,
        ids: &Tensor,
        types: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let states = self.model.forward(ids, types, Some(mask))?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&m)?.sum(1)?;
        let mean = summed.broadcast_div(&m.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
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
