//! The arithmetic behind the insight tools: least-squares lines and when
//! they cross a threshold, Pearson correlation at a lag, SLO burn rates,
//! and the episodes of an `ALERTS` series. Pure functions over
//! `(ms, value)` samples; non-finite values are skipped, never a panic.

use serde::Serialize;

/// A least-squares line `v = intercept + slope * (t - t0)`, `t` in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Line {
    /// The first sample's time, in ms, the origin of the fit.
    pub t0_ms: i64,
    pub intercept: f64,
    /// Change per second.
    pub slope_per_s: f64,
    /// Share of the variance the line explains, 0..=1; 1 for a constant.
    pub r2: f64,
    pub points: usize,
}

impl Line {
    /// The fitted value at `t_ms`.
    pub fn at(&self, t_ms: i64) -> f64 {
        self.intercept + self.slope_per_s * (t_ms - self.t0_ms) as f64 / 1000.0
    }

    /// When the line reaches `threshold` after `from_ms`, in ms; `None` when
    /// it is flat, moves away from it, or is already past it.
    pub fn crossing(&self, threshold: f64, from_ms: i64) -> Option<i64> {
        if !threshold.is_finite() || self.slope_per_s == 0.0 || !self.slope_per_s.is_finite() {
            return None;
        }
        let secs = (threshold - self.at(from_ms)) / self.slope_per_s;
        // Beyond ~290 years is "never" for an incident.
        (secs.is_finite() && (0.0..9.0e9).contains(&secs))
            .then(|| from_ms.saturating_add((secs * 1000.0) as i64))
    }
}

/// The least-squares line through the finite samples; `None` with fewer
/// than two points or all at one time.
pub fn fit_line(samples: &[(i64, f64)]) -> Option<Line> {
    let pts: Vec<(i64, f64)> = samples
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let &(t0, _) = pts.first()?;
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let xs: Vec<f64> = pts.iter().map(|(t, _)| (t - t0) as f64 / 1000.0).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = pts.iter().map(|(_, v)| v).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, (_, y)) in xs.iter().zip(&pts) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy <= 0.0 {
        1.0
    } else {
        (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
    };
    Some(Line {
        t0_ms: t0,
        intercept: my - slope * mx,
        slope_per_s: slope,
        r2,
        points: pts.len(),
    })
}

/// Pearson's r over the pairs where both are finite; `None` with fewer
/// than `min_pairs` pairs or when either side is constant over them.
pub fn pearson(pairs: &[(f64, f64)], min_pairs: usize) -> Option<f64> {
    let pts: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    if pts.len() < min_pairs.max(2) {
        return None;
    }
    let n = pts.len() as f64;
    let ma = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let mb = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (a, b) in &pts {
        sab += (a - ma) * (b - mb);
        saa += (a - ma) * (a - ma);
        sbb += (b - mb) * (b - mb);
    }
    // Relative to the scale, so float noise on a constant is still constant.
    let tiny = |s: f64, m: f64| s <= 1e-18 * (m * m * n).max(f64::MIN_POSITIVE);
    if tiny(saa, ma) || tiny(sbb, mb) {
        return None;
    }
    let r = sab / (saa.sqrt() * sbb.sqrt());
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// The strongest correlation of `candidate` with `target` over lags
/// `-max_lag..=max_lag` steps, both keyed by timestamp: `(r, lag)` where a
/// positive lag means the candidate moves `lag` steps *before* the target.
/// Ties go to the smallest lag.
pub fn best_lagged(
    target: &[(i64, f64)],
    candidate: &[(i64, f64)],
    step_ms: i64,
    max_lag: i64,
    min_pairs: usize,
) -> Option<(f64, i64)> {
    if step_ms <= 0 {
        return None;
    }
    let cand: std::collections::HashMap<i64, f64> = candidate.iter().copied().collect();
    let mut best: Option<(f64, i64)> = None;
    let mut lags: Vec<i64> = (-max_lag.abs()..=max_lag.abs()).collect();
    lags.sort_by_key(|l| l.abs());
    for lag in lags {
        let pairs: Vec<(f64, f64)> = target
            .iter()
            .filter_map(|(t, v)| {
                let at = t.checked_sub(lag.checked_mul(step_ms)?)?;
                cand.get(&at).map(|c| (*v, *c))
            })
            .collect();
        if let Some(r) = pearson(&pairs, min_pairs)
            && best.is_none_or(|(b, _)| r.abs() > b.abs() + 1e-9)
        {
            best = Some((r, lag));
        }
    }
    best
}

/// One window of a multi-window burn-rate check (Google SRE workbook,
/// "Alerting on SLOs", table 5-8): page or ticket when both the long
/// and the short window burn faster than `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BurnPolicy {
    pub long_s: u64,
    pub short_s: u64,
    pub factor: f64,
    /// `page` or `ticket`.
    pub severity: &'static str,
}

/// The workbook's recommended pairs for a 30-day budget: 2% of the budget
/// in 1h, 5% in 6h (page), 10% in 1d, 10% in 3d (ticket).
pub const BURN_POLICIES: [BurnPolicy; 4] = [
    BurnPolicy {
        long_s: 3600,
        short_s: 300,
        factor: 14.4,
        severity: "page",
    },
    BurnPolicy {
        long_s: 6 * 3600,
        short_s: 1800,
        factor: 6.0,
        severity: "page",
    },
    BurnPolicy {
        long_s: 24 * 3600,
        short_s: 2 * 3600,
        factor: 3.0,
        severity: "ticket",
    },
    BurnPolicy {
        long_s: 3 * 24 * 3600,
        short_s: 6 * 3600,
        factor: 1.0,
        severity: "ticket",
    },
];

/// How many times faster than sustainable the budget burns: the error
/// ratio over the allowed ratio `1 - slo`. `None` without traffic or with
/// an SLO outside (0, 1).
pub fn burn_rate(errors: f64, total: f64, slo: f64) -> Option<f64> {
    if !(slo > 0.0 && slo < 1.0 && errors.is_finite() && total.is_finite() && total > 0.0) {
        return None;
    }
    let ratio = (errors / total).clamp(0.0, 1.0);
    Some(ratio / (1.0 - slo))
}

/// A stretch of time a series was present, in ms, both ends sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Episode {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Split sample times into episodes where consecutive samples are at most
/// `max_gap_ms` apart; times need not be sorted.
pub fn episodes(times: &[i64], max_gap_ms: i64) -> Vec<Episode> {
    let mut ts: Vec<i64> = times.to_vec();
    ts.sort_unstable();
    ts.dedup();
    let mut out: Vec<Episode> = Vec::new();
    for t in ts {
        match out.last_mut() {
            Some(e) if t.saturating_sub(e.end_ms) <= max_gap_ms => e.end_ms = t,
            _ => out.push(Episode {
                start_ms: t,
                end_ms: t,
            }),
        }
    }
    out
}

/// The median spacing of sorted-or-not sample times; `None` under two.
pub fn median_interval(times: &[i64]) -> Option<i64> {
    let mut ts = times.to_vec();
    ts.sort_unstable();
    ts.dedup();
    let mut gaps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied()
}

/// `3h10m`, `45m`, `2d4h`, `40s`: a duration for a sentence.
pub fn human(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn series(n: i64, step_ms: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
        (0..n).map(|i| (i * step_ms, f(i))).collect()
    }

    #[test]
    fn a_line_fits_a_linear_series_and_finds_its_crossing() {
        // 50 + 0.5/min, sampled every minute: reaches 100 after 100 minutes.
        let s = series(61, 60_000, |i| 50.0 + 0.5 * i as f64);
        let l = fit_line(&s).unwrap();
        assert!((l.slope_per_s - 0.5 / 60.0).abs() < 1e-12);
        assert!((l.r2 - 1.0).abs() < 1e-12);
        let at = l.crossing(100.0, 60 * 60_000).unwrap();
        assert_eq!((at + 500) / 1000, 100 * 60);
        // Moving away, or flat: never.
        assert_eq!(l.crossing(0.0, 0), None);
        let flat = fit_line(&series(10, 1000, |_| 3.0)).unwrap();
        assert_eq!(flat.slope_per_s, 0.0);
        assert_eq!(flat.crossing(5.0, 0), None);
        // Falling free bytes reach zero.
        let free = fit_line(&series(11, 60_000, |i| 1000.0 - 10.0 * i as f64)).unwrap();
        let zero = free.crossing(0.0, 10 * 60_000).unwrap();
        assert_eq!(zero / 60_000, 100);
    }

    #[test]
    fn a_fit_survives_nan_single_points_and_one_instant() {
        assert!(fit_line(&[]).is_none());
        assert!(fit_line(&[(0, 1.0)]).is_none());
        assert!(fit_line(&[(5, 1.0), (5, 2.0)]).is_none());
        assert!(fit_line(&[(0, f64::NAN), (1000, f64::INFINITY)]).is_none());
        let l = fit_line(&[(0, 0.0), (1000, f64::NAN), (2000, 2.0)]).unwrap();
        assert_eq!(l.points, 2);
        assert!((l.slope_per_s - 1.0).abs() < 1e-12);
        assert_eq!(l.crossing(f64::NAN, 0), None);
    }

    #[test]
    fn pearson_is_one_for_a_scaled_copy_and_none_for_a_constant() {
        let a: Vec<f64> = (0..20).map(|i| ((i * 7) % 5) as f64).collect();
        let pairs: Vec<(f64, f64)> = a.iter().map(|x| (*x, 3.0 * x + 1.0)).collect();
        assert!((pearson(&pairs, 5).unwrap() - 1.0).abs() < 1e-12);
        let neg: Vec<(f64, f64)> = a.iter().map(|x| (*x, -x)).collect();
        assert!((pearson(&neg, 5).unwrap() + 1.0).abs() < 1e-12);
        let constant: Vec<(f64, f64)> = a.iter().map(|x| (*x, 7.0)).collect();
        assert_eq!(pearson(&constant, 5), None);
        assert_eq!(pearson(&pairs[..3], 5), None);
        let with_nan = vec![(1.0, f64::NAN); 10];
        assert_eq!(pearson(&with_nan, 2), None);
    }

    #[test]
    fn a_candidate_that_leads_by_three_steps_is_found_at_lag_three() {
        let wave = |i: i64| ((i * 37) % 11) as f64 + if i % 4 == 0 { 5.0 } else { 0.0 };
        let cand = series(60, 1000, wave);
        // The target repeats the candidate three steps later.
        let target = series(60, 1000, |i| 2.0 * wave(i - 3) + 1.0);
        let (r, lag) = best_lagged(&target, &cand, 1000, 5, 8).unwrap();
        assert_eq!(lag, 3);
        assert!(r > 0.999, "{r}");
        // A gap in the candidate only removes pairs.
        let gappy: Vec<(i64, f64)> = cand
            .iter()
            .copied()
            .filter(|(t, _)| !(20_000..30_000).contains(t))
            .collect();
        assert_eq!(best_lagged(&target, &gappy, 1000, 5, 8).unwrap().1, 3);
        assert_eq!(best_lagged(&target, &cand, 0, 5, 8), None);
    }

    #[test]
    fn burn_rate_is_the_error_ratio_over_the_allowed_ratio() {
        // 1% errors against a 99.9% SLO burns 10x.
        assert!((burn_rate(10.0, 1000.0, 0.999).unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(burn_rate(0.0, 1000.0, 0.99), Some(0.0));
        assert_eq!(burn_rate(1.0, 0.0, 0.999), None);
        assert_eq!(burn_rate(1.0, 10.0, 1.0), None);
        assert_eq!(burn_rate(1.0, 10.0, f64::NAN), None);
        // The workbook's page threshold: 2% of 30 days in 1 hour.
        let p = BURN_POLICIES[0];
        assert!((p.factor * p.long_s as f64 / (30.0 * 86_400.0) - 0.02).abs() < 1e-9);
    }

    #[test]
    fn episodes_split_at_gaps() {
        let m = 60_000;
        let times: Vec<i64> = (0..10).chain(15..18).chain([30]).map(|i| i * m).collect();
        let e = episodes(&times, 2 * m);
        assert_eq!(
            e,
            vec![
                Episode {
                    start_ms: 0,
                    end_ms: 9 * m
                },
                Episode {
                    start_ms: 15 * m,
                    end_ms: 17 * m
                },
                Episode {
                    start_ms: 30 * m,
                    end_ms: 30 * m
                },
            ]
        );
        assert_eq!(median_interval(&times), Some(m));
        assert_eq!(median_interval(&[5]), None);
        assert!(episodes(&[], m).is_empty());
        assert_eq!(human(3 * 3_600_000 + 10 * m), "3h10m");
        assert_eq!(human(45 * m), "45m");
        assert_eq!(human(40_000), "40s");
        assert_eq!(human(2 * 86_400_000 + 4 * 3_600_000), "2d4h");
    }
}
