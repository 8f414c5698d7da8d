//! Matrix-vector products over Q8_0 weights, faster than candle's on CPU.
//!
//! Profiling Gemma 3 decode put 64% of the model thread in candle's Q8_0
//! dot product and another 9% in converting each 32-value block's f16 scale
//! to f32, once per block per token. Here the scales are converted once, at
//! load, and the quantized values sit contiguously per row.
//!
//! On x86-64 with AVX2 and FMA (checked at run time) a block's 32 products
//! are summed the way llama.cpp does: the weights' signs moved onto
//! the activations so one unsigned×signed multiply-add (`vpmaddubsw`) takes
//! the pairs, and the block's scale is applied to eight lanes at once with
//! a fused multiply-add; the lanes are summed once per row. This is the
//! crate's only `unsafe`: the call into the `target_feature` function,
//! made after the feature check. LLVM's own vectorization of the plain
//! loop (kept for other CPUs, compiled per instruction set by
//! `multiversion`) sums every block across lanes before scaling it, and
//! ran at half the speed.
//!
//! Activations are quantized to Q8_0 exactly as candle and llama.cpp do it
//! (per block of 32: scale = max |x| / 127, stored as f16; values rounded),
//! so results agree with theirs to float rounding.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

const BLOCK: usize = 32;
/// Bytes of one Q8_0 block in GGUF: an f16 scale, then 32 i8.
const BLOCK_BYTES: usize = 2 + BLOCK;
/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// A Q8_0 matrix of `rows` × `cols`, values and scales apart.
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    values: Vec<i8>,
    /// One per block, row-major: `rows × cols / 32`.
    scales: Vec<f32>,
}

impl Q8Matrix {
    /// The matrix of a 2-D Q8_0 tensor; `None` for other types.
    pub fn from_qtensor(t: &QTensor) -> Result<Option<Q8Matrix>> {
        if t.dtype() != GgmlDType::Q8_0 {
            return Ok(None);
        }
        let (rows, cols) = t.shape().dims2()?;
        if cols % BLOCK != 0 {
            candle_core::bail!("Q8_0 row of {cols} values is not whole blocks");
        }
        let data = t.data()?;
        let blocks = rows * cols / BLOCK;
        if data.len() != blocks * BLOCK_BYTES {
            candle_core::bail!(
                "Q8_0 data is {} bytes, expected {}",
                data.len(),
                blocks * BLOCK_BYTES
            );
        }
        let mut values = Vec::with_capacity(rows * cols);
        let mut scales = Vec::with_capacity(blocks);
        for block in data.chunks_exact(BLOCK_BYTES) {
            scales.push(half::f16::from_le_bytes([block[0], block[1]]).to_f32());
            values.extend(block[2..].iter().map(|b| *b as i8));
        }
        Ok(Some(Q8Matrix {
            rows,
            cols,
            values,
            scales,
        }))
    }

    /// `x · selfᵀ` for `x` of shape `(..., cols)`: shape `(..., rows)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some((&cols, lead)) = dims.split_last() else {
            candle_core::bail!("Q8_0 matmul of a scalar");
        };
        if cols != self.cols {
            candle_core::bail!("Q8_0 matmul: {cols} inputs for {} columns", self.cols);
        }
        let flat = x.flatten_to(lead.len().saturating_sub(1))?;
        let flat = if lead.is_empty() {
            flat.unsqueeze(0)?
        } else {
            flat
        };
        let input: Vec<Vec<f32>> = flat.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let quantized: Vec<QRow> = input.iter().map(|r| quantize(r)).collect();
        let m = quantized.len();
        // Each task owns a contiguous slice: its rows' products, by
        // activation row (`[i][row]`); gathered into `[i][all rows]` below.
        let mut out = vec![0f32; self.rows * m];
        let nb = self.cols / BLOCK;
        let task = |(n, chunk): (usize, &mut [f32])| {
            let first = n * ROWS_PER_TASK;
            let rows = chunk.len() / m;
            let values = &self.values[first * self.cols..(first + rows) * self.cols];
            let scales = &self.scales[first * nb..(first + rows) * nb];
            rows_dot(values, scales, &quantized, chunk);
        };
        // With one thread, stay on this one: handing each product to a pool
        // worker and waiting costs two context switches per matrix.
        if rayon::current_num_threads() > 1 {
            out.par_chunks_mut(ROWS_PER_TASK * m)
                .enumerate()
                .for_each(task);
        } else {
            out.chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(task);
        }
        let mut gathered = vec![0f32; self.rows * m];
        for (n, chunk) in out.chunks(ROWS_PER_TASK * m).enumerate() {
            let rows = chunk.len() / m;
            for (i, part) in chunk.chunks_exact(rows).enumerate() {
                let at = i * self.rows + n * ROWS_PER_TASK;
                gathered[at..at + rows].copy_from_slice(part);
            }
        }
        let mut shape = lead.to_vec();
        shape.push(self.rows);
        Tensor::from_vec(gathered, shape, &Device::Cpu)
    }

    /// Rows `ids` of the matrix, dequantized: an embedding lookup.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let ids = ids.flatten_all()?.to_vec1::<u32>()?;
        let nb = self.cols / BLOCK;
        let mut out = Vec::with_capacity(ids.len() * self.cols);
        for id in &ids {
            let r = *id as usize;
            if r >= self.rows {
                candle_core::bail!("token id {r} is outside the {} embeddings", self.rows);
            }
            let values = &self.values[r * self.cols..(r + 1) * self.cols];
            let scales = &self.scales[r * nb..(r + 1) * nb];
            for (block, scale) in values.chunks_exact(BLOCK).zip(scales) {
                out.extend(block.iter().map(|v| f32::from(*v) * scale));
            }
        }
        Tensor::from_vec(out, (1, ids.len(), self.cols), &Device::Cpu)
    }
}

/// Quantize a row of activations to Q8_0 values and (f16-rounded) scales.
/// Compiled per instruction set: on baseline x86-64 rounding is a libm
/// call per value (7% of SmolLM2's decoding).
#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn quantize(x: &[f32]) -> (Vec<i8>, Vec<f32>) {
    let mut values = Vec::with_capacity(x.len());
    let mut scales = Vec::with_capacity(x.len() / BLOCK);
    for block in x.chunks_exact(BLOCK) {
        let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        // Ties to even, as llama.cpp's AVX quantizer rounds.
        values.extend(block.iter().map(|v| (v * inv).round_ties_even() as i8));
        scales.push(half::f16::from_f32(d).to_f32());
    }
    (values, scales)
}

/// Blocks summed side by side.
const LANES: usize = 8;

/// The dot product of one block of weights and activations.
#[inline(always)]
fn block_dot(w: &[i8], x: &[i8]) -> i32 {
    w.iter()
        .zip(x)
        .map(|(a, b)| i32::from(*a) * i32::from(*b))
        .sum()
}

/// A quantized activation row: values and per-block scales.
type QRow = (Vec<i8>, Vec<f32>);

/// For every weight row `r` in `values`/`scales` and every activation row
/// `i` of `xs`, the dot product, written to `out[i * rows + r]`.
#[allow(unsafe_code)]
fn rows_dot(values: &[i8], scales: &[f32], xs: &[QRow], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            if has!("avx512vnni") && has!("avx512vl") {
                // SAFETY: the kernel needs AVX2, FMA, AVX-512 VNNI and
                // AVX-512 VL, and this CPU has all four (checked above);
                // it reads and writes memory only through slices.
                unsafe { x86::rows_dot_vnni(values, scales, xs, out) };
            } else {
                // SAFETY: as above, for AVX2 and FMA.
                unsafe { x86::rows_dot_avx2(values, scales, xs, out) };
            }
            return;
        }
    }
    for (i, (xv, xsc)) in xs.iter().enumerate() {
        rows_dot_portable(values, scales, xv, xsc, out, i);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, QRow};
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_add_ps, _mm256_cvtepi32_ps, _mm256_dpbusd_epi32, _mm256_fmadd_ps,
        _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_set1_epi16, _mm256_set1_ps,
        _mm256_setzero_ps, _mm256_setzero_si256, _mm256_sign_epi8,
    };

    /// 32 bytes as a vector, through a copy (no pointer casts).
    #[inline(always)]
    fn load(block: &[i8]) -> __m256i {
        bytemuck::pod_read_unaligned(bytemuck::cast_slice::<i8, u8>(&block[..BLOCK]))
    }

    #[inline(always)]
    fn sum(v: __m256) -> f32 {
        let lanes: [f32; 8] = bytemuck::cast(v);
        lanes.iter().sum()
    }

    /// One kernel per way of summing a block's 32 products into eight
    /// 32-bit lanes. `$dot(|w|, x with w's sign)`: since `|w|` is read as
    /// unsigned, a stored -128 becomes 128; our activations lie in
    /// -127..=127, so moving a sign onto them never overflows.
    macro_rules! kernel {
        ($name:ident, $features:literal, $dot:expr) => {
            #[target_feature(enable = $features)]
            pub(super) fn $name(values: &[i8], scales: &[f32], xs: &[QRow], out: &mut [f32]) {
                let Some(cols) = xs.first().map(|x| x.0.len()) else {
                    return;
                };
                let nb = cols / BLOCK;
                let rows = values.len() / cols;
                let dot = $dot;
                for (row, (w, ws)) in values
                    .chunks_exact(cols)
                    .zip(scales.chunks_exact(nb))
                    .enumerate()
                {
                    // Four activation rows per pass over the weight row
                    // (a prompt): each weight block is loaded and its sign
                    // taken once for four products.
                    let fours = xs.chunks_exact(4);
                    let done = xs.len() - fours.remainder().len();
                    for (g, group) in fours.enumerate() {
                        let mut acc = [_mm256_setzero_ps(); 4];
                        for (b, (wb, sw)) in w.chunks_exact(BLOCK).zip(ws).enumerate() {
                            let w8 = load(wb);
                            let aw = _mm256_sign_epi8(w8, w8);
                            for (a, (xv, xsc)) in acc.iter_mut().zip(group) {
                                let x8 = load(&xv[b * BLOCK..]);
                                let p = _mm256_cvtepi32_ps(dot(aw, _mm256_sign_epi8(x8, w8)));
                                *a = _mm256_fmadd_ps(p, _mm256_set1_ps(sw * xsc[b]), *a);
                            }
                        }
                        for (k, a) in acc.into_iter().enumerate() {
                            out[(g * 4 + k) * rows + row] = sum(a);
                        }
                    }
                    // One row at a time (decoding): two accumulators,
                    // alternating, so consecutive blocks do not wait on
                    // each other's fused multiply-add (named, not an
                    // array indexed by parity, which LLVM kept in memory).
                    for (i, (xv, xsc)) in xs.iter().enumerate().skip(done) {
                        let block = |b: usize, acc: __m256| {
                            let w8 = load(&w[b * BLOCK..]);
                            let x8 = load(&xv[b * BLOCK..]);
                            let p = dot(_mm256_sign_epi8(w8, w8), _mm256_sign_epi8(x8, w8));
                            _mm256_fmadd_ps(
                                _mm256_cvtepi32_ps(p),
                                _mm256_set1_ps(ws[b] * xsc[b]),
                                acc,
                            )
                        };
                        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                        for b in (0..nb - nb % 2).step_by(2) {
                            even = block(b, even);
                            odd = block(b + 1, odd);
                        }
                        if nb % 2 == 1 {
                            even = block(nb - 1, even);
                        }
                        out[i * rows + row] = sum(_mm256_add_ps(even, odd));
                    }
                }
            }
        };
    }

    // Pairs of products summed to 16 bits (at most 2 × 128 × 127, no
    // saturation), then pairs of those to 32.
    kernel!(rows_dot_avx2, "avx2,fma", |a, b| _mm256_madd_epi16(
        _mm256_maddubs_epi16(a, b),
        _mm256_set1_epi16(1)
    ));
    // Four products straight into each 32-bit lane.
    kernel!(rows_dot_vnni, "avx2,fma,avx512vnni,avx512vl", |a, b| {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
    });
}

/// [`rows_dot`] in plain Rust, vectorized by LLVM per instruction set.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512vnni",
    "x86_64+avx2+fma",
    "aarch64+neon+dotprod"
))]
fn rows_dot_portable(
    values: &[i8],
    scales: &[f32],
    xv: &[i8],
    xs: &[f32],
    out: &mut [f32],
    i: usize,
) {
    let cols = xv.len();
    let nb = xs.len();
    let rows = values.len() / cols;
    for (row, (w, ws)) in values
        .chunks_exact(cols)
        .zip(scales.chunks_exact(nb))
        .enumerate()
    {
        // Eight blocks at a time into eight accumulators: one running sum
        // would make every block wait for the previous block's add.
        let mut acc = [0f32; LANES];
        let (wg, wr) = w.split_at(w.len() / (LANES * BLOCK) * LANES * BLOCK);
        let (xg, xr) = xv.split_at(wg.len());
        let (sg, sr) = ws.split_at(wg.len() / BLOCK);
        let (tg, tr) = xs.split_at(sg.len());
        for (((w8, x8), s8), t8) in wg
            .chunks_exact(LANES * BLOCK)
            .zip(xg.chunks_exact(LANES * BLOCK))
            .zip(sg.chunks_exact(LANES))
            .zip(tg.chunks_exact(LANES))
        {
            for (k, a) in acc.iter_mut().enumerate() {
                let d = block_dot(&w8[k * BLOCK..][..BLOCK], &x8[k * BLOCK..][..BLOCK]);
                *a += d as f32 * (s8[k] * t8[k]);
            }
        }
        for (((wb, xb), sw), sx) in wr
            .chunks_exact(BLOCK)
            .zip(xr.chunks_exact(BLOCK))
            .zip(sr)
            .zip(tr)
        {
            acc[0] += block_dot(wb, xb) as f32 * (sw * sx);
        }
        let acc: f32 = acc.iter().sum();
        out[i * rows + row] = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Module;
    use candle_core::quantized::QMatMul;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn agrees_with_candles_q8_0_matmul() {
        let (rows, cols) = (130, 256);
        let w = Tensor::from_vec(random(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let ours = Q8Matrix::from_qtensor(&q).unwrap().unwrap();
        let theirs = QMatMul::from_qtensor(q).unwrap();
        for m in [1, 3, 6] {
            let x = Tensor::from_vec(random(m * cols, 7 + m as u64), (1, m, cols), &Device::Cpu)
                .unwrap();
            let a = ours.forward(&x).unwrap();
            let b = theirs.forward(&x).unwrap();
            assert_eq!(a.dims(), b.dims());
            let diff = (a - &b).unwrap().abs().unwrap().max_all().unwrap();
            let scale = b.abs().unwrap().max_all().unwrap();
            let (diff, scale) = (
                diff.to_scalar::<f32>().unwrap(),
                scale.to_scalar::<f32>().unwrap(),
            );
            assert!(
                diff <= scale * 1e-4,
                "m={m}: max difference {diff} of {scale}"
            );
        }
    }

    #[test]
    fn the_dispatched_kernel_agrees_with_the_portable_one_even_on_minus_128() {
        // GGUF writers may store -128; a sign trick that negates weights
        // would wrap it. Exact integer products, so the two must agree to
        // float rounding of the sums.
        let (rows, cols) = (3, 96);
        let mut values: Vec<i8> = random(rows * cols, 11)
            .iter()
            .map(|v| (v * 127.0) as i8)
            .collect();
        values[0] = -128;
        values[cols + 5] = -128;
        let scales: Vec<f32> = (0..rows * cols / BLOCK)
            .map(|i| 0.01 + i as f32 * 1e-3)
            .collect();
        let mut xv: Vec<i8> = random(cols, 12).iter().map(|v| (v * 127.0) as i8).collect();
        xv[0] = -127;
        xv[5] = 127;
        let xs: Vec<f32> = (0..cols / BLOCK).map(|i| 0.02 + i as f32 * 1e-3).collect();
        let mut plain = vec![0f32; rows];
        rows_dot_portable(&values, &scales, &xv, &xs, &mut plain, 0);
        // Five copies of the activations: a tile of four and one alone.
        let many = vec![(xv.clone(), xs.clone()); 5];
        let mut fast = vec![0f32; rows * 5];
        rows_dot(&values, &scales, &many, &mut fast);
        let exact: Vec<f32> = (0..rows)
            .map(|r| {
                (0..cols)
                    .map(|c| {
                        f64::from(values[r * cols + c])
                            * f64::from(xv[c])
                            * f64::from(scales[r * cols / BLOCK + c / BLOCK])
                            * f64::from(xs[c / BLOCK])
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        for r in 0..rows {
            for i in 0..5 {
                let got = fast[i * rows + r];
                assert!(
                    (got - exact[r]).abs() < 1e-3,
                    "row {r}, copy {i}: {got} vs {}",
                    exact[r]
                );
            }
            assert!(
                (plain[r] - exact[r]).abs() < 1e-3,
                "row {r}: {} vs {}",
                plain[r],
                exact[r]
            );
        }
    }

    #[test]
    fn an_embedding_row_is_the_dequantized_weight_row() {
        let (rows, cols) = (5, 64);
        let w = Tensor::from_vec(random(rows * cols, 3), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let expected = q.dequantize(&Device::Cpu).unwrap();
        let ours = Q8Matrix::from_qtensor(&q).unwrap().unwrap();
        let ids = Tensor::new(&[[4u32, 0]], &Device::Cpu).unwrap();
        let got = ours.embedding(&ids).unwrap();
        let want = expected
            .index_select(&Tensor::new(&[4u32, 0], &Device::Cpu).unwrap(), 0)
            .unwrap();
        let diff = (got.squeeze(0).unwrap() - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        assert!(
            ours.embedding(&Tensor::new(&[[5u32]], &Device::Cpu).unwrap())
                .is_err()
        );
    }
}
