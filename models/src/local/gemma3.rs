//! Gemma 3 text models from GGUF, on candle's quantized matmuls.
//!
//! Written here rather than taken from candle-transformers, whose
//! `quantized_gemma3` (0.11) runs the MLP with SiLU where Gemma uses GELU
//! (tanh approximation) and builds rotary tables for 131,072 positions at
//! load. What a layer does, in order:
//!
//! - the embedding row times √d_model;
//! - attention: RMS-normed input; q, k, v projections; q and k RMS-normed
//!   per head; rotary positions (rotate-half) with base 10,000 on the
//!   sliding-window layers and `rope.freq_base` (1,000,000) on the global
//!   ones, every sixth layer; grouped-query attention scaled by
//!   1/√head_dim; the sliding layers see the last `attention.sliding_window`
//!   positions only; the output projection RMS-normed again before the
//!   residual add;
//! - the MLP: RMS-normed input, `down(gelu_tanh(gate(x)) * up(x))`,
//!   RMS-normed before the residual add;
//! - the final RMS norm, and logits from the tied embedding matrix.
//!
//! The GGUF converter has already added Gemma's `1 +` to every norm
//! weight, so the norms here multiply by the stored weight as is.

use super::q8::Q8Matrix;
use candle_core::quantized::{QMatMul, gguf_file};
use candle_core::{DType, Device, Module, Result, Tensor};
use std::io::{Read, Seek};
use std::sync::Arc;

/// Every n-th layer attends globally; the others use the sliding window.
const GLOBAL_EVERY: usize = 6;
/// Rotary base of the sliding-window layers (not in the GGUF metadata).
const LOCAL_ROPE_BASE: f32 = 10_000.0;

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
/// candle's.
enum Linear {
    Q8(Arc<Q8Matrix>),
    Candle(QMatMul),
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Q8(m) => m.forward(x),
            Linear::Candle(m) => m.forward(x),
        }
    }
}

struct Layer {
    attn_norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    q_norm: Norm,
    k_norm: Norm,
    o: Linear,
    post_attn_norm: Norm,
    ffn_norm: Norm,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Norm,
    /// `None` for global layers.
    window: Option<usize>,
    /// Keys and values so far, and the position of their first entry
    /// (sliding layers drop what the window no longer reaches).
    cache: Option<(Tensor, Tensor, usize)>,
}

/// A loaded Gemma 3 model with its key/value cache.
pub struct Gemma3 {
    /// The embedding matrix, also the output projection (tied weights).
    embed: Embedding,
    scale: f64,
    layers: Vec<Layer>,
    norm: Norm,
    lm_head: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    local_rope: Rotary,
    global_rope: Rotary,
}

impl Gemma3 {
    pub fn from_gguf<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R) -> Result<Gemma3> {
        let md = |key: &str| {
            ct.metadata
                .get(&format!("gemma3.{key}"))
                .ok_or_else(|| candle_core::Error::Msg(format!("missing gemma3.{key}")))
        };
        let heads = md("attention.head_count")?.to_u32()? as usize;
        let kv_heads = md("attention.head_count_kv")?.to_u32()? as usize;
        let blocks = md("block_count")?.to_u32()? as usize;
        let hidden = md("embedding_length")?.to_u32()? as usize;
        let head_dim = md("attention.key_length")?.to_u32()? as usize;
        let eps = md("attention.layer_norm_rms_epsilon")?.to_f32()?;
        let window = md("attention.sliding_window")?.to_u32()? as usize;
        let global_base = md("rope.freq_base").and_then(|v| v.to_f32()).unwrap_or(1e6);
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            candle_core::bail!("{heads} attention heads for {kv_heads} key/value heads");
        }
        let dev = Device::Cpu;
        let linear = |t: candle_core::quantized::QTensor| -> Result<Linear> {
            Ok(match Q8Matrix::from_qtensor(&t)? {
                Some(m) => Linear::Q8(Arc::new(m)),
                None => Linear::Candle(QMatMul::from_qtensor(t)?),
            })
        };
        let matmul =
            |r: &mut R, name: &str| -> Result<Linear> { linear(ct.tensor(r, name, &dev)?) };
        let token_embd = ct.tensor(r, "token_embd.weight", &dev)?;
        let embed = match Q8Matrix::from_qtensor(&token_embd)? {
            Some(m) => Embedding::Q8(Arc::new(m)),
            None => Embedding::Candle(Arc::new(token_embd)),
        };
        // Tied: the output projection is the embedding matrix.
        let lm_head = match ct.tensor(r, "output.weight", &dev) {
            Ok(t) => linear(t)?,
            Err(_) => match &embed {
                Embedding::Q8(m) => Linear::Q8(Arc::clone(m)),
                Embedding::Candle(t) => Linear::Candle(QMatMul::from_arc(Arc::clone(t))?),
            },
        };
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: Norm::load(ct, r, &p("attn_norm"), eps)?,
                q: matmul(r, &p("attn_q"))?,
                k: matmul(r, &p("attn_k"))?,
                v: matmul(r, &p("attn_v"))?,
                q_norm: Norm::load(ct, r, &p("attn_q_norm"), eps)?,
                k_norm: Norm::load(ct, r, &p("attn_k_norm"), eps)?,
                o: matmul(r, &p("attn_output"))?,
                post_attn_norm: Norm::load(ct, r, &p("post_attention_norm"), eps)?,
                ffn_norm: Norm::load(ct, r, &p("ffn_norm"), eps)?,
                gate: matmul(r, &p("ffn_gate"))?,
                up: matmul(r, &p("ffn_up"))?,
                down: matmul(r, &p("ffn_down"))?,
                post_ffn_norm: Norm::load(ct, r, &p("post_ffw_norm"), eps)?,
                window: ((i + 1) % GLOBAL_EVERY != 0).then_some(window),
                cache: None,
            });
        }
        Ok(Gemma3 {
            embed,
            scale: (hidden as f64).sqrt(),
            layers,
            norm: Norm::load(ct, r, "output_norm.weight", eps)?,
            lm_head,
            heads,
            kv_heads,
            head_dim,
            local_rope: Rotary::new(head_dim, LOCAL_ROPE_BASE)?,
            global_rope: Rotary::new(head_dim, global_base)?,
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
        x = (x * self.scale)?;
        let (lcos, lsin) = self.local_rope.tables(pos, t)?;
        let (gcos, gsin) = self.global_rope.tables(pos, t)?;
        let shape = Shape {
            batch,
            t,
            pos,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        };
        for layer in &mut self.layers {
            let (cos, sin) = match layer.window {
                Some(_) => (&lcos, &lsin),
                None => (&gcos, &gsin),
            };
            let h = layer.attend(&layer.attn_norm.forward(&x)?, cos, sin, &shape)?;
            x = (x + layer.post_attn_norm.forward(&h)?)?;
            let h = layer.ffn_norm.forward(&x)?;
            let gated = (layer.gate.forward(&h)?.gelu()? * layer.up.forward(&h)?)?;
            let h = layer.down.forward(&gated)?;
            x = (x + layer.post_ffn_norm.forward(&h)?)?;
        }
        let last = x.narrow(1, t - 1, 1)?;
        let last = self.norm.forward(&last)?;
        self.lm_head.forward(&last)?.squeeze(1)
    }
}

enum Embedding {
    Q8(Arc<Q8Matrix>),
    Candle(Arc<candle_core::quantized::QTensor>),
}

struct Shape {
    batch: usize,
    t: usize,
    pos: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
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
        let q = candle_nn::rotary_emb::rope(&self.q_norm.forward(&q)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&self.k_norm.forward(&k)?, cos, sin)?;

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
