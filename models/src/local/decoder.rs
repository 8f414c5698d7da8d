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

use super::q8::Q8Matrix;
use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{DType, Device, Module, Result, Tensor};
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

impl Norm {
    fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        name: &str,
        eps: f32,
    ) -> Result<Norm> {
        let weight = ct.tensor(r, name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
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

/// Rotary tables for one base, grown on demand.
struct Rotary {
    inv_freq: Vec<f32>,
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(head_dim: usize, base: f32) -> Result<Rotary> {
        let inv_freq: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        let empty = Tensor::zeros((0, head_dim / 2), DType::F32, &Device::Cpu)?;
        Ok(Rotary {
            inv_freq,
            cos: empty.clone(),
            sin: empty,
        })
    }

    /// cos and sin for positions `start..start + len`.
    fn tables(&mut self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let end = start + len;
        let have = self.cos.dim(0)?;
        if end > have {
            // Double, so a long generation rebuilds the tables rarely.
            let upto = end.max(have * 2).max(256);
            let half = self.inv_freq.len();
            let mut angles = Vec::with_capacity(upto * half);
            for pos in 0..upto {
                angles.extend(self.inv_freq.iter().map(|f| pos as f32 * f));
            }
            let angles = Tensor::from_vec(angles, (upto, half), &Device::Cpu)?;
            self.cos = angles.cos()?;
            self.sin = angles.sin()?;
        }
        Ok((
            self.cos.narrow(0, start, len)?,
            self.sin.narrow(0, start, len)?,
        ))
    }
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
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    o: Linear,
    post_attn_norm: Option<Norm>,
    ffn_norm: Norm,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Option<Norm>,
    /// `None` for layers that see every earlier position.
    window: Option<usize>,
    /// Keys and values so far, and the position of their first entry
    /// (sliding layers drop what the window no longer reaches).
    cache: Option<(Tensor, Tensor, usize)>,
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
                q_norm: gemma_norm(r, &p("attn_q_norm"))?,
                k_norm: gemma_norm(r, &p("attn_k_norm"))?,
                o: matmul(r, &p("attn_output"))?,
                post_attn_norm: gemma_norm(r, &p("post_attention_norm"))?,
                ffn_norm: norm(r, &p("ffn_norm"))?,
                gate: matmul(r, &p("ffn_gate"))?,
                up: matmul(r, &p("ffn_up"))?,
                down: matmul(r, &p("ffn_down"))?,
                post_ffn_norm: gemma_norm(r, &p("post_ffw_norm"))?,
                window: window.filter(|_| (i + 1) % GEMMA_GLOBAL_EVERY != 0),
                cache: None,
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
            local_rope: if gemma {
                Some(Rotary::new(head_dim, GEMMA_LOCAL_ROPE_BASE)?)
            } else {
                None
            },
            global_rope: Rotary::new(head_dim, base)?,
        })
    }

    /// Logits of the last position for `input` (shape `[1, t]`), the
    /// tokens at positions `pos..pos + t`. `pos = 0` starts a new sequence.
    pub fn forward(&mut self, input: &Tensor, pos: usize) -> Result<Tensor> {
        let (batch, t) = input.dims2()?;
        if pos == 0 {
            for layer in &mut self.layers {
                layer.cache = None;
            }
        }
        let mut x = match &self.embed {
            Embedding::Q8(m) => m.embedding(input)?,
            Embedding::Candle(t) => t.embedding(input)?,
        };
        if let Some(scale) = self.scale {
            x = (x * scale)?;
        }
        let global = self.global_rope.tables(pos, t)?;
        let local = match &mut self.local_rope {
            Some(rope) => Some(rope.tables(pos, t)?),
            None => None,
        };
        let shape = Shape {
            batch,
            t,
            pos,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            interleaved: self.family == Family::Llama,
        };
        for layer in &mut self.layers {
            let (cos, sin) = match (&layer.window, &local) {
                (Some(_), Some((c, s))) => (c, s),
                _ => (&global.0, &global.1),
            };
            let h = layer.attend(&layer.attn_norm.forward(&x)?, cos, sin, &shape)?;
            x = (x + maybe(&layer.post_attn_norm, h)?)?;
            let h = layer.ffn_norm.forward(&x)?;
            let gate = layer.gate.forward(&h)?;
            let gate = match self.family {
                Family::Gemma3 => gate.gelu()?,
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

struct Shape {
    batch: usize,
    t: usize,
    pos: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Rotary on adjacent pairs (Llama) rather than halves.
    interleaved: bool,
}

impl Layer {
    fn attend(&mut self, x: &Tensor, cos: &Tensor, sin: &Tensor, s: &Shape) -> Result<Tensor> {
        let split = |y: Tensor, heads: usize| -> Result<Tensor> {
            y.reshape((s.batch, s.t, heads, s.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q.forward(x)?, s.heads)?;
        let k = split(self.k.forward(x)?, s.kv_heads)?;
        let v = split(self.v.forward(x)?, s.kv_heads)?;
        let rope = |y: Tensor| -> Result<Tensor> {
            if s.interleaved {
                candle_nn::rotary_emb::rope_i(&y, cos, sin)
            } else {
                candle_nn::rotary_emb::rope(&y, cos, sin)
            }
        };
        let q = rope(maybe(&self.q_norm, q)?)?;
        let k = rope(maybe(&self.k_norm, k)?)?;

        let (k, v, first) = match self.cache.take() {
            Some((ck, cv, first)) => (
                Tensor::cat(&[&ck, &k], 2)?,
                Tensor::cat(&[&cv, &v], 2)?,
                first,
            ),
            None => (k, v, s.pos),
        };
        let keys = k.dim(2)?;
        let rep = s.heads / s.kv_heads;
        let expand = |y: &Tensor| -> Result<Tensor> {
            if rep == 1 {
                return Ok(y.clone());
            }
            let (b, kvh, n, d) = y.dims4()?;
            y.unsqueeze(2)?
                .expand((b, kvh, rep, n, d))?
                .reshape((b, kvh * rep, n, d))
        };
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        let mut scores = (q.matmul(&expand(&k)?.t()?)? * scale)?;
        if let Some(mask) = mask(s.t, s.pos, first, keys, self.window)? {
            scores = scores.broadcast_add(&mask)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&expand(&v)?.contiguous()?)?;
        let out = out
            .transpose(1, 2)?
            .reshape((s.batch, s.t, s.heads * s.head_dim))?;

        // Keep what later positions can still see.
        let end = s.pos + s.t;
        let keep_from = match self.window {
            Some(w) => end.saturating_sub(w.saturating_sub(1)).max(first),
            None => first,
        };
        let drop = keep_from - first;
        self.cache = Some(if drop > 0 {
            (
                k.narrow(2, drop, keys - drop)?.contiguous()?,
                v.narrow(2, drop, keys - drop)?.contiguous()?,
                keep_from,
            )
        } else {
            (k, v, first)
        });
        self.o.forward(&out)
    }
}

/// The additive attention mask for queries at `pos..pos + t` over keys at
/// `first..first + keys`: a query sees itself, earlier positions, and on a
/// sliding layer only the last `window` of them. `None` when nothing is
/// masked.
fn mask(
    t: usize,
    pos: usize,
    first: usize,
    keys: usize,
    window: Option<usize>,
) -> Result<Option<Tensor>> {
    let visible = |q: usize, k: usize| k <= q && window.is_none_or(|w| q - k < w);
    let mut m = Vec::with_capacity(t * keys);
    let mut hidden = false;
    for i in 0..t {
        for j in 0..keys {
            let seen = visible(pos + i, first + j);
            hidden |= !seen;
            m.push(if seen { 0f32 } else { f32::NEG_INFINITY });
        }
    }
    if !hidden {
        return Ok(None);
    }
    Tensor::from_vec(m, (t, keys), &Device::Cpu).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(m: &Option<Tensor>, t: usize, keys: usize) -> Vec<Vec<bool>> {
        match m {
            None => vec![vec![true; keys]; t],
            Some(m) => m
                .to_vec2::<f32>()
                .unwrap()
                .into_iter()
                .map(|row| row.into_iter().map(|v| v == 0.0).collect())
                .collect(),
        }
    }

    #[test]
    fn a_prompt_sees_only_earlier_positions() {
        let m = mask(3, 0, 0, 3, None).unwrap();
        assert_eq!(
            visible(&m, 3, 3),
            vec![
                vec![true, false, false],
                vec![true, true, false],
                vec![true, true, true]
            ]
        );
    }

    #[test]
    fn a_sliding_layer_sees_only_its_window() {
        // Window 2: position 3 sees 2 and 3, not 0 or 1.
        let m = mask(2, 2, 0, 4, Some(2)).unwrap();
        assert_eq!(
            visible(&m, 2, 4),
            vec![
                vec![false, true, true, false],
                vec![false, false, true, true]
            ]
        );
    }

    #[test]
    fn one_new_token_over_a_trimmed_cache_needs_no_mask() {
        // Cache trimmed to the window's last entries: nothing to hide.
        assert!(mask(1, 10, 8, 3, Some(3)).unwrap().is_none());
    }
}
