//! Decoder-only transformers from GGUF: Gemma 3, Qwen2 and Llama (SmolLM2),
//! one implementation with the few places where the families differ.
//!
//! Written here rather than taken from candle-transformers so every family
//! runs its Q8_0 matrices on our kernel (`q8.rs`), and because candle 0.11's
//! `quantized_gemma3` runs the MLP with SiLU where Gemma uses GELU (tanh
//! approximation) and builds rotary tables for 131,072 positions at load.
//! What a layer does, in order:
//!
//! - the embedding row (Gemma: times √d_model);
//! - attention: RMS-normed input; q, k, v projections (Qwen2: with biases);
//!   Gemma only: q and k RMS-normed per head; rotary positions, rotate-half
//!   (Gemma, Qwen2) or on adjacent pairs (Llama, whose GGUF q/k rows are
//!   permuted for it); grouped-query attention scaled by 1/√head_dim; the
//!   output projection (Gemma: RMS-normed again) added to the residual;
//! - Gemma 3 only: base 10,000 and a sliding window of
//!   `attention.sliding_window` positions on five layers of six, and
//!   `rope.freq_base` (1,000,000) with global attention on every sixth;
//! - the MLP: RMS-normed input, `down(act(gate(x)) * up(x))` with GELU-tanh
//!   (Gemma) or SiLU (Qwen2, Llama); Gemma RMS-norms it before the add;
//! - the final RMS norm, and logits from `output.weight` or, when the file
//!   has none, the tied embedding matrix.
//!
//! The GGUF converter has already added Gemma's `1 +` to every norm
//! weight, so the norms here multiply by the stored weight as is.

use super::math::{dot, exp, gelu_tanh_in_place, sum8};
use super::q8::Q8Matrix;
use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{Device, Module, Result, Tensor};
use std::io::{Read, Seek};
use std::sync::Arc;

/// Gemma 3: every n-th layer attends globally; the others use the window.
const GEMMA_GLOBAL_EVERY: usize = 6;
/// Gemma 3: rotary base of the sliding-window layers (not in the metadata).
const GEMMA_LOCAL_ROPE_BASE: f32 = 10_000.0;

/// The architectures this decoder runs (`general.architecture`).
pub const ARCHITECTURES: [&str; 3] = ["qwen2", "llama", "gemma3"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Gemma3,
    Qwen2,
    Llama,
}

struct Norm {
    weight: Tensor,
    eps: f32,
}

/// A norm's weight vector, as f32.
fn norm_weight<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, name: &str) -> Result<Tensor> {
    ct.tensor(r, name, &Device::Cpu)?.dequantize(&Device::Cpu)
}

impl Norm {
    fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        name: &str,
        eps: f32,
    ) -> Result<Norm> {
        let weight = norm_weight(ct, r, name)?;
        Ok(Norm { weight, eps })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)
    }
}

/// Apply an optional norm.
fn maybe(norm: &Option<Norm>, x: Tensor) -> Result<Tensor> {
    match norm {
        Some(n) => n.forward(&x),
        None => Ok(x),
    }
}

/// Rotary tables for one base, grown on demand: the cos and sin of each
/// position's `head_dim / 2` angles.
struct Rotary {
    inv_freq: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rotary {
    fn new(head_dim: usize, base: f32) -> Rotary {
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        Rotary {
            inv_freq,
            cos: Vec::new(),
            sin: Vec::new(),
        }
    }

    /// Make room for positions up to `end` (exclusive).
    fn reserve(&mut self, end: usize) {
        let half = self.inv_freq.len();
        let have = self.cos.len() / half.max(1);
        if end <= have {
            return;
        }
        // Double, so a long generation rebuilds the tables rarely.
        let upto = end.max(have * 2).max(256);
        for pos in have..upto {
            for f in &self.inv_freq {
                let angle = pos as f32 * f;
                self.cos.push(angle.cos());
                self.sin.push(angle.sin());
            }
        }
    }

    /// Rotate one head's vector to position `pos` (after [`Self::reserve`]):
    /// pairs `(i, i + d/2)` (rotate-half) or `(2i, 2i + 1)` (interleaved).
    fn apply(&self, x: &mut [f32], pos: usize, interleaved: bool) {
        let half = self.inv_freq.len();
        let cos = &self.cos[pos * half..][..half];
        let sin = &self.sin[pos * half..][..half];
        for i in 0..half {
            let (a, b) = if interleaved {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (x0, x1) = (x[a], x[b]);
            x[a] = x0 * cos[i] - x1 * sin[i];
            x[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

/// Gemma's RMS norm of each head's q or k vector.
struct HeadNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl HeadNorm {
    fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        name: &str,
        eps: f32,
    ) -> Result<HeadNorm> {
        let weight = norm_weight(ct, r, name)?.flatten_all()?.to_vec1()?;
        Ok(HeadNorm { weight, eps })
    }

    fn apply(&self, x: &mut [f32]) {
        let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
        let inv = 1.0 / (mean + self.eps).sqrt();
        for (v, w) in x.iter_mut().zip(&self.weight) {
            *v *= inv * w;
        }
    }
}

/// Keys and values of one layer, one entry per position from `first`:
/// `kv_heads × head_dim` floats each, appended in place (no copy of the
/// whole cache per token).
#[derive(Default)]
struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    first: usize,
}

/// A weight matrix: Q8_0 ones on our kernel, the rest (Q4_K, Q6_K...) on
/// candle's; with an optional bias.
struct Linear {
    weight: Kernel,
    bias: Option<Tensor>,
}

enum Kernel {
    Q8(Arc<Q8Matrix>),
    Candle(QMatMul),
}

impl Linear {
    fn new(t: QTensor, bias: Option<Tensor>) -> Result<Linear> {
        let weight = match Q8Matrix::from_qtensor(&t)? {
            Some(m) => Kernel::Q8(Arc::new(m)),
            None => Kernel::Candle(QMatMul::from_qtensor(t)?),
        };
        Ok(Linear { weight, bias })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Kernel::Q8(m) => m.forward(x)?,
            Kernel::Candle(m) => m.forward(x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

struct Layer {
    attn_norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    q_norm: Option<HeadNorm>,
    k_norm: Option<HeadNorm>,
    o: Linear,
    post_attn_norm: Option<Norm>,
    ffn_norm: Norm,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Option<Norm>,
    /// `None` for layers that see every earlier position.
    window: Option<usize>,
    /// Keys and values so far (sliding layers drop what the window no
    /// longer reaches).
    cache: KvCache,
}

/// A loaded model with its key/value cache.
pub struct Decoder {
    family: Family,
    embed: Embedding,
    /// Gemma scales the embedding by √d_model.
    scale: Option<f64>,
    layers: Vec<Layer>,
    norm: Norm,
    lm_head: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Gemma's sliding-window layers; `None` elsewhere.
    local_rope: Option<Rotary>,
    global_rope: Rotary,
}

impl Decoder {
    /// Load the model of a GGUF whose `general.architecture` is `arch`.
    pub fn from_gguf<R: Read + Seek>(
        arch: &str,
        ct: &gguf_file::Content,
        r: &mut R,
    ) -> Result<Decoder> {
        let family = match arch {
            "gemma3" => Family::Gemma3,
            "qwen2" => Family::Qwen2,
            "llama" => Family::Llama,
            other => candle_core::bail!(
                "architecture `{other}` is not supported ({} are)",
                ARCHITECTURES.join(", ")
            ),
        };
        let key = |k: &str| format!("{arch}.{k}");
        let md = |k: &str| {
            ct.metadata
                .get(&key(k))
                .ok_or_else(|| candle_core::Error::Msg(format!("missing {}", key(k))))
        };
        let heads = md("attention.head_count")?.to_u32()? as usize;
        let kv_heads = md("attention.head_count_kv")?.to_u32()? as usize;
        let blocks = md("block_count")?.to_u32()? as usize;
        let hidden = md("embedding_length")?.to_u32()? as usize;
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            candle_core::bail!("{heads} attention heads for {kv_heads} key/value heads");
        }
        let head_dim = match md("attention.key_length") {
            Ok(v) => v.to_u32()? as usize,
            Err(_) => hidden / heads,
        };
        let eps = md("attention.layer_norm_rms_epsilon")?.to_f32()?;
        let default_base = if family == Family::Gemma3 { 1e6 } else { 1e4 };
        let base = md("rope.freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(default_base);
        let gemma = family == Family::Gemma3;
        let window = if gemma {
            Some(md("attention.sliding_window")?.to_u32()? as usize)
        } else {
            None
        };
        let dev = Device::Cpu;
        let bias = |r: &mut R, name: &str| -> Result<Option<Tensor>> {
            if family != Family::Qwen2 {
                return Ok(None);
            }
            Ok(Some(ct.tensor(r, name, &dev)?.dequantize(&dev)?))
        };
        let matmul = |r: &mut R, name: &str| -> Result<Linear> {
            Linear::new(ct.tensor(r, &format!("{name}.weight"), &dev)?, None)
        };
        let biased = |r: &mut R, name: &str| -> Result<Linear> {
            let b = bias(r, &format!("{name}.bias"))?;
            Linear::new(ct.tensor(r, &format!("{name}.weight"), &dev)?, b)
        };
        let norm = |r: &mut R, name: &str| Norm::load(ct, r, &format!("{name}.weight"), eps);
        let gemma_norm = |r: &mut R, name: &str| -> Result<Option<Norm>> {
            if gemma {
                norm(r, name).map(Some)
            } else {
                Ok(None)
            }
        };
        let head_norm = |r: &mut R, name: &str| -> Result<Option<HeadNorm>> {
            if gemma {
                HeadNorm::load(ct, r, &format!("{name}.weight"), eps).map(Some)
            } else {
                Ok(None)
            }
        };
        let token_embd = ct.tensor(r, "token_embd.weight", &dev)?;
        let embed = match Q8Matrix::from_qtensor(&token_embd)? {
            Some(m) => Embedding::Q8(Arc::new(m)),
            None => Embedding::Candle(Arc::new(token_embd)),
        };
        // Tied when the file has no output matrix: the embedding, kept
        // quantized.
        let lm_head = match ct.tensor(r, "output.weight", &dev) {
            Ok(t) => Linear::new(t, None)?,
            Err(_) => Linear {
                weight: match &embed {
                    Embedding::Q8(m) => Kernel::Q8(Arc::clone(m)),
                    Embedding::Candle(t) => Kernel::Candle(QMatMul::from_arc(Arc::clone(t))?),
                },
                bias: None,
            },
        };
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let p = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: norm(r, &p("attn_norm"))?,
                q: biased(r, &p("attn_q"))?,
                k: biased(r, &p("attn_k"))?,
                v: biased(r, &p("attn_v"))?,
                q_norm: head_norm(r, &p("attn_q_norm"))?,
                k_norm: head_norm(r, &p("attn_k_norm"))?,
                o: matmul(r, &p("attn_output"))?,
                post_attn_norm: gemma_norm(r, &p("post_attention_norm"))?,
                ffn_norm: norm(r, &p("ffn_norm"))?,
                gate: matmul(r, &p("ffn_gate"))?,
                up: matmul(r, &p("ffn_up"))?,
                down: matmul(r, &p("ffn_down"))?,
                post_ffn_norm: gemma_norm(r, &p("post_ffw_norm"))?,
                window: window.filter(|_| (i + 1) % GEMMA_GLOBAL_EVERY != 0),
                cache: KvCache::default(),
            });
        }
        Ok(Decoder {
            family,
            embed,
            scale: gemma.then(|| (hidden as f64).sqrt()),
            layers,
            norm: norm(r, "output_norm")?,
            lm_head,
            heads,
            kv_heads,
            head_dim,
            local_rope: gemma.then(|| Rotary::new(head_dim, GEMMA_LOCAL_ROPE_BASE)),
            global_rope: Rotary::new(head_dim, base),
        })
    }

    /// Logits of the last position for `input` (shape `[1, t]`), the
    /// tokens at positions `pos..pos + t`. `pos = 0` starts a new sequence.
    pub fn forward(&mut self, input: &Tensor, pos: usize) -> Result<Tensor> {
        let (batch, t) = input.dims2()?;
        if batch != 1 {
            candle_core::bail!("one sequence at a time, not {batch}");
        }
        if pos == 0 {
            for layer in &mut self.layers {
                layer.cache = KvCache::default();
            }
        }
        let mut x = match &self.embed {
            Embedding::Q8(m) => m.embedding(input)?,
            Embedding::Candle(t) => t.embedding(input)?,
        };
        if let Some(scale) = self.scale {
            x = (x * scale)?;
        }
        self.global_rope.reserve(pos + t);
        if let Some(rope) = &mut self.local_rope {
            rope.reserve(pos + t);
        }
        let step = Step {
            t,
            pos,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            interleaved: self.family == Family::Llama,
        };
        for layer in &mut self.layers {
            let rope = match (&layer.window, &self.local_rope) {
                (Some(_), Some(local)) => local,
                _ => &self.global_rope,
            };
            let h = layer.attend(&layer.attn_norm.forward(&x)?, rope, &step)?;
            x = (x + maybe(&layer.post_attn_norm, h)?)?;
            let h = layer.ffn_norm.forward(&x)?;
            let gate = layer.gate.forward(&h)?;
            let gate = match self.family {
                Family::Gemma3 => {
                    let shape = gate.shape().clone();
                    let mut v = gate.flatten_all()?.to_vec1::<f32>()?;
                    gelu_tanh_in_place(&mut v);
                    Tensor::from_vec(v, shape, &Device::Cpu)?
                }
                Family::Qwen2 | Family::Llama => candle_nn::ops::silu(&gate)?,
            };
            let h = layer.down.forward(&(gate * layer.up.forward(&h)?)?)?;
            x = (x + maybe(&layer.post_ffn_norm, h)?)?;
        }
        let last = x.narrow(1, t - 1, 1)?;
        let last = self.norm.forward(&last)?;
        self.lm_head.forward(&last)?.squeeze(1)
    }
}

enum Embedding {
    Q8(Arc<Q8Matrix>),
    Candle(Arc<QTensor>),
}

/// The positions one forward pass adds, and the attention's shape.
struct Step {
    t: usize,
    pos: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Rotary on adjacent pairs (Llama) rather than halves.
    interleaved: bool,
}

impl Layer {
    /// Attention of the `s.t` new positions over the cache, in plain Rust:
    /// at one new token per step, candle's matmuls, the copy of the whole
    /// cache per token and the per-head expansion of shared keys cost more
    /// than the arithmetic.
    fn attend(&mut self, x: &Tensor, rope: &Rotary, s: &Step) -> Result<Tensor> {
        let hd = s.head_dim;
        let flat = |y: Tensor| -> Result<Vec<f32>> { y.flatten_all()?.to_vec1::<f32>() };
        let mut q = flat(self.q.forward(x)?)?;
        let mut k = flat(self.k.forward(x)?)?;
        let v = flat(self.v.forward(x)?)?;
        for (i, head) in q.chunks_exact_mut(hd).enumerate() {
            if let Some(n) = &self.q_norm {
                n.apply(head);
            }
            rope.apply(head, s.pos + i / s.heads, s.interleaved);
        }
        for (i, head) in k.chunks_exact_mut(hd).enumerate() {
            if let Some(n) = &self.k_norm {
                n.apply(head);
            }
            rope.apply(head, s.pos + i / s.kv_heads, s.interleaved);
        }
        let entry = s.kv_heads * hd;
        if self.cache.k.is_empty() {
            self.cache.first = s.pos;
        }
        let next = self.cache.first + self.cache.k.len() / entry;
        if next != s.pos {
            // Attention reads positions from the cache's length: a gap or
            // an overlap would silently mix up positions.
            candle_core::bail!("position {} does not follow the cached {next}", s.pos);
        }
        self.cache.k.extend_from_slice(&k);
        self.cache.v.extend_from_slice(&v);
        let out = attention(&q, &self.cache, s, self.window);

        // Drop what later positions can no longer see, in steps, so the
        // cache is not shifted on every token.
        if let Some(w) = self.window {
            let keep_from = (s.pos + s.t + 1).saturating_sub(w);
            let drop = keep_from.saturating_sub(self.cache.first);
            if drop >= 64 {
                self.cache.k.drain(..drop * entry);
                self.cache.v.drain(..drop * entry);
                self.cache.first += drop;
            }
        }
        self.o.forward(&Tensor::from_vec(
            out,
            (1, s.t, s.heads * hd),
            &Device::Cpu,
        )?)
    }
}

/// The first key position a query at `q` sees: all earlier positions, or
/// on a sliding layer only the last `window` (itself included).
fn first_visible(q: usize, window: Option<usize>) -> usize {
    window.map_or(0, |w| (q + 1).saturating_sub(w))
}

/// Grouped-query attention of `q` (`t × heads × head_dim`, the new
/// positions) over the cache, causal and windowed; the result has the
/// shape of `q`. Compiled per instruction set so the dot products and
/// weighted sums use the widest vectors.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn attention(q: &[f32], cache: &KvCache, s: &Step, window: Option<usize>) -> Vec<f32> {
    let hd = s.head_dim;
    let entry = s.kv_heads * hd;
    let rep = s.heads / s.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    let mut weights = Vec::new();
    for (i, (qi, oi)) in q
        .chunks_exact(s.heads * hd)
        .zip(out.chunks_exact_mut(s.heads * hd))
        .enumerate()
    {
        let at = s.pos + i;
        let from = first_visible(at, window).max(cache.first);
        let keys = from - cache.first..at + 1 - cache.first;
        for (h, (qh, oh)) in qi.chunks_exact(hd).zip(oi.chunks_exact_mut(hd)).enumerate() {
            let g = h / rep;
            weights.clear();
            let mut max = f32::NEG_INFINITY;
            for j in keys.clone() {
                let kj = &cache.k[j * entry + g * hd..][..hd];
                let score = dot(qh, kj) * scale;
                max = max.max(score);
                weights.push(score);
            }
            for w in &mut weights {
                *w = exp(*w - max);
            }
            let total = sum8(&weights);
            for (j, w) in keys.clone().zip(&weights) {
                let vj = &cache.v[j * entry + g * hd..][..hd];
                for (o, v) in oh.iter_mut().zip(vj) {
                    *o += w * v;
                }
            }
            let inv = 1.0 / total;
            for o in oh.iter_mut() {
                *o *= inv;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache whose value at position p is `p` in every dimension, and
    /// whose keys are zero: every visible position then weighs the same,
    /// so each output is the mean of the visible positions.
    fn positions(first: usize, n: usize, kv_heads: usize, hd: usize) -> KvCache {
        let mut cache = KvCache {
            first,
            ..KvCache::default()
        };
        for p in first..first + n {
            cache.k.extend(std::iter::repeat_n(0.0, kv_heads * hd));
            cache.v.extend(std::iter::repeat_n(p as f32, kv_heads * hd));
        }
        cache
    }

    fn step(t: usize, pos: usize, heads: usize, kv_heads: usize) -> Step {
        Step {
            t,
            pos,
            heads,
            kv_heads,
            head_dim: 4,
            interleaved: false,
        }
    }

    /// The first dimension of each head's output, per new position.
    fn means(out: &[f32], heads: usize) -> Vec<Vec<f32>> {
        out.chunks_exact(heads * 4)
            .map(|row| row.chunks_exact(4).map(|h| h[0]).collect())
            .collect()
    }

    #[test]
    fn a_prompt_sees_only_earlier_positions() {
        let cache = positions(0, 3, 1, 4);
        let out = attention(&[1.0; 12], &cache, &step(3, 0, 1, 1), None);
        assert_eq!(means(&out, 1), vec![vec![0.0], vec![0.5], vec![1.0]]);
    }

    #[test]
    fn a_sliding_layer_sees_only_its_window() {
        // Window 2: position 3 sees 2 and 3, not 0 or 1.
        let cache = positions(0, 4, 1, 4);
        let out = attention(&[1.0; 8], &cache, &step(2, 2, 1, 1), Some(2));
        assert_eq!(means(&out, 1), vec![vec![1.5], vec![2.5]]);
    }

    #[test]
    fn a_trimmed_cache_keeps_positions_and_heads_share_keys() {
        // The cache starts at position 8; two query heads share one
        // key/value head; a new token at 10 sees 8..=10.
        let cache = positions(8, 3, 1, 4);
        let out = attention(&[1.0; 8], &cache, &step(1, 10, 2, 1), None);
        assert_eq!(means(&out, 2), vec![vec![9.0, 9.0]]);
    }

    #[test]
    fn scores_follow_the_keys() {
        // Position 1's key matches the query: it outweighs position 0.
        let mut cache = positions(0, 2, 1, 4);
        cache.k[4..8].copy_from_slice(&[4.0, 0.0, 0.0, 0.0]);
        let q = [1.0, 0.0, 0.0, 0.0];
        let out = attention(&q, &cache, &step(1, 1, 1, 1), None);
        // softmax([0, 4 / sqrt(4)]) = [0.119, 0.881]: mean 0.881.
        assert!((out[0] - 0.8808).abs() < 1e-3, "{out:?}");
    }

    #[test]
    fn rotation_pairs_halves_or_neighbours() {
        let mut rope = Rotary::new(4, 10_000.0);
        rope.reserve(2);
        let mut halves = [1.0, 0.0, 0.0, 0.0];
        rope.apply(&mut halves, 1, false);
        // Angle 1 rad for the first pair: (cos 1, ., sin 1, .).
        assert!((halves[0] - 1f32.cos()).abs() < 1e-6 && (halves[2] - 1f32.sin()).abs() < 1e-6);
        let mut pairs = [1.0, 0.0, 0.0, 0.0];
        rope.apply(&mut pairs, 1, true);
        assert!((pairs[0] - 1f32.cos()).abs() < 1e-6 && (pairs[1] - 1f32.sin()).abs() < 1e-6);
    }
}
