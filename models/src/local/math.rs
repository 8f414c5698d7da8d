//! Branch-free numeric helpers the compiler vectorizes inside the
//! per-instruction-set loops of the attention and activation code.

/// A dot product in eight independent sums, so it vectorizes.
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, ar) = a.split_at(a.len() / 8 * 8);
    let (b8, br) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + ar.iter().zip(br).map(|(x, y)| x * y).sum::<f32>()
}

/// A sum in eight independent lanes, so it vectorizes.
#[inline(always)]
pub(super) fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (body, rest) = xs.split_at(xs.len() / 8 * 8);
    for c in body.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// `e^x` to about 2 ulp, without branches or calls, so loops over it
/// vectorize: `2^n · e^r` with `r` in ±ln2/2 and a degree-6 polynomial.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    // ln 2 in two parts, so `r` keeps its low bits.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n from its exponent bits, without a float-to-int cast (whose
    // saturation keeps loops scalar): for a whole number m in [0, 2^23),
    // the bits of m + 2^23 are 0x4B00_0000 + m. The clamp keeps n + 127 in
    // 1..=254.
    let biased = (n + 127.0 + 8_388_608.0).to_bits() - 0x4B00_0000;
    p * f32::from_bits(biased << 23)
}

/// erf to about 1.5e-7 absolute (Abramowitz and Stegun 7.1.26).
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// GELU in its tanh form (Gemma's): `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`,
/// with `tanh(u) = 1 - 2 / (e^{2u} + 1)` so it vectorizes (candle's calls
/// libm's `tanhf` per value: 17% of a Gemma 3 prompt).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
pub(super) fn gelu_tanh_in_place(xs: &mut [f32]) {
    const C: f32 = 0.797_884_6; // √(2/π)
    for x in xs {
        let u = C * (*x + 0.044_715 * *x * *x * *x);
        let tanh = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
        *x = 0.5 * *x * (1.0 + tanh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_tanh_matches_the_formula() {
        let xs: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).collect();
        let mut ours = xs.clone();
        gelu_tanh_in_place(&mut ours);
        for (x, got) in xs.iter().zip(ours) {
            let x64 = f64::from(*x);
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3));
            let want = 0.5 * x64 * (1.0 + u.tanh());
            assert!(
                (f64::from(got) - want).abs() < 2e-6,
                "gelu({x}) = {got} vs {want}"
            );
        }
    }

    #[test]
    fn exp_and_erf_match_the_library_functions() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let want = x.exp();
            assert!(
                (exp(x) - want).abs() <= want * 1e-6,
                "exp({x}) = {} vs {want}",
                exp(x)
            );
        }
        for i in -300..=300 {
            let x = i as f32 / 100.0;
            let want = erf_series(f64::from(x));
            assert!((f64::from(erf(x)) - want).abs() < 5e-7, "erf({x})");
        }
        // Beyond 3, erf is within 2.3e-5 of ±1.
        for x in [3.5f32, 5.0, 9.0, -4.0] {
            assert!((erf(x) - x.signum()).abs() < 2.3e-5, "erf({x})");
        }
    }

    /// erf in f64 by its Taylor series (exact to ~1e-12 for |x| ≤ 3).
    fn erf_series(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
