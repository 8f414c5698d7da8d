//! A BERT encoder for sentence embeddings (all-MiniLM-L6-v2), written here
//! rather than taken from candle-transformers for three reasons measured on
//! 1,000 log lines: candle's model pads every text of a batch to the longest
//! one and masks the padding, where here a batch is one packed run of real
//! tokens (the matrix products see every token once, attention runs per
//! text); its GELU computes `erf` through the `libm` crate one value at a
//! time (14% of the run), here a polynomial the compiler vectorizes; and its
//! attention is a chain of small tensor ops per layer.
//!
//! Per layer, as in the original: self-attention (q, k, v projections in
//! one product, scaled dot products, softmax, the output projection), added
//! to the input and layer-normed; the feed-forward part (GELU between two
//! projections), added and layer-normed again. The sentence vector is the
//! mean of the last states over the text's tokens.

use super::math::{erf, exp, sum8};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use multiversion::multiversion;

/// The shape of a BERT checkpoint (its `config.json`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn gelu() -> String {
    "gelu".into()
}

/// `x · wᵀ + b`.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(vb: &VarBuilder, name: &str, inputs: usize, outputs: usize) -> Result<Dense> {
        Ok(Dense {
            weight: vb.get((outputs, inputs), &format!("{name}.weight"))?,
            bias: vb.get(outputs, &format!("{name}.bias"))?,
        })
    }

    /// Several projections of the same input as one.
    fn stacked(parts: &[Dense]) -> Result<Dense> {
        let weights: Vec<&Tensor> = parts.iter().map(|d| &d.weight).collect();
        let biases: Vec<&Tensor> = parts.iter().map(|d| &d.bias).collect();
        Ok(Dense {
            weight: Tensor::cat(&weights, 0)?,
            bias: Tensor::cat(&biases, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: &VarBuilder, name: &str, size: usize, eps: f32) -> Result<Norm> {
        Ok(Norm {
            weight: vb.get(size, &format!("{name}.weight"))?,
            bias: vb.get(size, &format!("{name}.bias"))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    qkv: Dense,
    out: Dense,
    attn_norm: Norm,
    up: Dense,
    down: Dense,
    ffn_norm: Norm,
}

/// The encoder, with its weights in f32.
pub struct Bert {
    words: Tensor,
    positions: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    max_positions: usize,
}

impl Bert {
    /// The model of a sentence-transformers BERT checkpoint. Only GELU
    /// (erf) models are accepted: the one activation implemented.
    pub fn load(vb: VarBuilder, config: &BertConfig) -> Result<Bert> {
        if config.hidden_act != "gelu" {
            candle_core::bail!(
                "hidden_act `{}` is not supported (gelu is)",
                config.hidden_act
            );
        }
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !h.is_multiple_of(heads) {
            candle_core::bail!("{heads} attention heads for a hidden size of {h}");
        }
        let eps = config.layer_norm_eps as f32;
        let e = vb.pp("embeddings");
        let words = e.get_unchecked_dtype("word_embeddings.weight", DType::F32)?;
        let positions = e.get(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let token_type = e
            .get_unchecked_dtype("token_type_embeddings.weight", DType::F32)?
            .get(0)?;
        let emb_norm = Norm::load(&e, "LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let qkv = Dense::stacked(&[
                Dense::load(&l, "attention.self.query", h, h)?,
                Dense::load(&l, "attention.self.key", h, h)?,
                Dense::load(&l, "attention.self.value", h, h)?,
            ])?;
            layers.push(Layer {
                qkv,
                out: Dense::load(&l, "attention.output.dense", h, h)?,
                attn_norm: Norm::load(&l, "attention.output.LayerNorm", h, eps)?,
                up: Dense::load(&l, "intermediate.dense", h, config.intermediate_size)?,
                down: Dense::load(&l, "output.dense", config.intermediate_size, h)?,
                ffn_norm: Norm::load(&l, "output.LayerNorm", h, eps)?,
            });
        }
        Ok(Bert {
            words,
            positions,
            token_type,
            emb_norm,
            layers,
            heads,
            hidden: h,
            max_positions: config.max_position_embeddings,
        })
    }

    /// The mean-pooled last states of each text (`texts[i]`: its token
    /// ids, special tokens included), not normalised.
    pub fn pooled(&self, texts: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let lens: Vec<usize> = texts.iter().map(Vec::len).collect();
        if let Some(long) = lens.iter().find(|n| **n > self.max_positions) {
            candle_core::bail!("{long} tokens is more than {}", self.max_positions);
        }
        let total: usize = lens.iter().sum();
        if total == 0 {
            return Ok(vec![vec![0.0; self.hidden]; texts.len()]);
        }
        let dev = Device::Cpu;
        let ids: Vec<u32> = texts.iter().flatten().copied().collect();
        let pos: Vec<u32> = lens.iter().flat_map(|n| 0..*n as u32).collect();
        let ids = Tensor::from_vec(ids, total, &dev)?;
        let pos = Tensor::from_vec(pos, total, &dev)?;
        let x = (self.words.embedding(&ids)? + self.positions.embedding(&pos)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.emb_norm.forward(&x)?;
        let shape = Packed {
            lens: &lens,
            heads: self.heads,
            hidden: self.hidden,
        };
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            let context = attention(&qkv, &shape);
            let context = Tensor::from_vec(context, (total, self.hidden), &dev)?;
            let h = layer.out.forward(&context)?;
            x = layer.attn_norm.forward(&(x + h)?)?;
            let mut up = layer.up.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            gelu_in_place(&mut up);
            let up = Tensor::from_vec(up, (total, layer.up.bias.dim(0)?), &dev)?;
            let h = layer.down.forward(&up)?;
            x = layer.ffn_norm.forward(&(x + h)?)?;
        }
        let states = x.to_vec2::<f32>()?;
        let mut out = Vec::with_capacity(texts.len());
        let mut at = 0;
        for n in lens {
            let mut mean = vec![0f32; self.hidden];
            for row in &states[at..at + n] {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            let inv = 1.0 / n.max(1) as f32;
            mean.iter_mut().for_each(|m| *m *= inv);
            out.push(mean);
            at += n;
        }
        Ok(out)
    }
}

/// Texts packed one after another, and the attention's shape.
struct Packed<'a> {
    lens: &'a [usize],
    heads: usize,
    hidden: usize,
}

/// Self-attention of each text over its own tokens. `qkv` holds, per
/// token, its query, key and value (`hidden` each, heads side by side);
/// the result is each token's context (`hidden`).
#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn attention(qkv: &[f32], s: &Packed) -> Vec<f32> {
    let h = s.hidden;
    let hd = h / s.heads;
    let row = 3 * h;
    let scale = 1.0 / (hd as f32).sqrt();
    let total: usize = s.lens.iter().sum();
    let mut out = vec![0f32; total * h];
    // Per text and head, the keys transposed (`hd × n8`, `n` rounded up to
    // 8 with zero keys) and the values (`n × hd`) side by side in memory:
    // eight scores at a time stay in one register across the head's
    // dimensions, and the context in registers across the keys.
    let (mut keys, mut values, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0;
    for &n in s.lens {
        let n8 = n.div_ceil(8) * 8;
        for head in 0..s.heads {
            keys.clear();
            keys.resize(hd * n8, 0f32);
            values.clear();
            for (j, token) in qkv[start * row..(start + n) * row]
                .chunks_exact(row)
                .enumerate()
            {
                for (d, k) in token[h + head * hd..][..hd].iter().enumerate() {
                    keys[d * n8 + j] = *k;
                }
                values.extend_from_slice(&token[2 * h + head * hd..][..hd]);
            }
            for i in start..start + n {
                let q = &qkv[i * row + head * hd..][..hd];
                scores.clear();
                for j in (0..n8).step_by(8) {
                    let mut acc = [0f32; 8];
                    for (qd, kd) in q.iter().zip(keys.chunks_exact(n8)) {
                        for (a, k) in acc.iter_mut().zip(&kd[j..j + 8]) {
                            *a += qd * k;
                        }
                    }
                    scores.extend_from_slice(&acc);
                }
                scores.truncate(n);
                let max = scores.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) * scale;
                for sc in &mut scores {
                    *sc = exp(*sc * scale - max);
                }
                let sum = sum8(&scores);
                let o = &mut out[i * h + head * hd..][..hd];
                weighted_sum(&scores, &values, 1.0 / sum, o);
            }
        }
        start += n;
    }
    out
}

/// `out = scale · Σ_j w_j · values[j]`, the sum kept in registers for the
/// common head sizes.
#[inline(always)]
fn weighted_sum(w: &[f32], values: &[f32], scale: f32, out: &mut [f32]) {
    fn fixed<const D: usize>(w: &[f32], values: &[f32], scale: f32, out: &mut [f32]) {
        let mut acc = [0f32; D];
        for (wj, v) in w.iter().zip(values.chunks_exact(D)) {
            for (a, v) in acc.iter_mut().zip(v) {
                *a += wj * v;
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = a * scale;
        }
    }
    match out.len() {
        32 => fixed::<32>(w, values, scale, out),
        64 => fixed::<64>(w, values, scale, out),
        hd => {
            out.fill(0.0);
            for (wj, v) in w.iter().zip(values.chunks_exact(hd)) {
                for (o, v) in out.iter_mut().zip(v) {
                    *o += wj * v;
                }
            }
            out.iter_mut().for_each(|o| *o *= scale);
        }
    }
}

/// GELU with the exact (erf) form BERT uses: `x · Φ(x)`.
#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn gelu_in_place(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_attends_only_to_itself() {
        // Two texts packed: one token, then two. With zero queries every
        // visible token weighs the same, so a context is the mean of its
        // own text's values.
        let h = 2;
        let mut qkv = Vec::new();
        for value in [1.0f32, 10.0, 20.0] {
            qkv.extend([0.0, 0.0, 0.0, 0.0, value, value]);
        }
        let out = attention(
            &qkv,
            &Packed {
                lens: &[1, 2],
                heads: 1,
                hidden: h,
            },
        );
        assert_eq!(out, vec![1.0, 1.0, 15.0, 15.0, 15.0, 15.0]);
    }
}
