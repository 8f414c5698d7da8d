//! Time-series analysis behind `summarize_metric` and
//! `what_changed_around`: level shifts by binary segmentation, outliers by
//! robust z-score on what the piecewise-constant fit leaves, and
//! before/after window comparison. Pure functions over `(ms, value)`.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Robust z-score above which a point is an outlier (Iglewicz and Hoaglin).
const OUTLIER_Z: f64 = 3.5;
/// A level shift smaller than this fraction of the larger level is noise.
const MIN_RELATIVE_SHIFT: f64 = 0.1;
const MAX_CHANGE_POINTS: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub points: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub first: f64,
    pub last: f64,
    /// `rising`, `falling` or `flat`, from a least-squares line.
    pub trend: &'static str,
    pub events: Vec<Event>,
}

/// Something an SRE would point at on the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The level moved from `before` to `after` at `at` and stayed.
    LevelShift {
        at: DateTime<Utc>,
        before: f64,
        after: f64,
    },
    /// The level went to `peak` at `at` for `duration_s` and came back.
    Spike {
        at: DateTime<Utc>,
        peak: f64,
        baseline: f64,
        duration_s: i64,
    },
    /// One point far from its neighbours' level.
    Outlier {
        at: DateTime<Utc>,
        value: f64,
        z: f64,
    },
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Summarize one series; NaN samples are skipped. `None` when empty.
pub fn summarize(samples: &[(i64, f64)]) -> Option<Summary> {
    let samples: Vec<(i64, f64)> = samples
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let values: Vec<f64> = samples.iter().map(|(_, v)| *v).collect();
    let (first, last) = (*values.first()?, *values.last()?);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let m = mean(&values);
    let cps = change_points(&values);
    let mut events = classify(&samples, &values, &cps);
    events.extend(outliers(&samples, &values, &cps));
    events.sort_by_key(|e| match e {
        Event::LevelShift { at, .. } | Event::Spike { at, .. } | Event::Outlier { at, .. } => *at,
    });
    Some(Summary {
        points: values.len(),
        min,
        max,
        mean: m,
        first,
        last,
        trend: trend(&samples, m, max - min),
        events,
    })
}

fn trend(samples: &[(i64, f64)], m: f64, spread: f64) -> &'static str {
    let (Some(&(t0, _)), Some(&(t1, _))) = (samples.first(), samples.last()) else {
        return "flat";
    };
    if samples.len() < 3 || t1 == t0 {
        return "flat";
    }
    let n = samples.len() as f64;
    let mx = samples.iter().map(|(t, _)| (t - t0) as f64).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for &(t, v) in samples {
        let x = (t - t0) as f64 - mx;
        cov += x * (v - m);
        var += x * x;
    }
    let rise = cov / var * (t1 - t0) as f64;
    let scale = m.abs().max(spread).max(f64::MIN_POSITIVE);
    if rise > 0.1 * scale {
        "rising"
    } else if rise < -0.1 * scale {
        "falling"
    } else {
        "flat"
    }
}

/// Indices where a new level starts, by binary segmentation on the mean.
pub fn change_points(values: &[f64]) -> Vec<usize> {
    let mut out = Vec::new();
    segment(values, 0, &mut out, 0);
    out.sort_unstable();
    out.truncate(MAX_CHANGE_POINTS);
    out
}

fn segment(values: &[f64], offset: usize, out: &mut Vec<usize>, depth: usize) {
    const MIN_SEGMENT: usize = 2;
    let n = values.len();
    if depth > 3 || n < 2 * MIN_SEGMENT {
        return;
    }
    // Prefix sums make every candidate split's cost O(1).
    let mut sum = vec![0.0; n + 1];
    let mut sq = vec![0.0; n + 1];
    for (i, v) in values.iter().enumerate() {
        sum[i + 1] = sum[i] + v;
        sq[i + 1] = sq[i] + v * v;
    }
    let cost = |a: usize, b: usize| -> f64 {
        let k = (b - a) as f64;
        if k == 0.0 {
            0.0
        } else {
            (sq[b] - sq[a]) - (sum[b] - sum[a]).powi(2) / k
        }
    };
    let total = cost(0, n);
    // One split (a level shift), or an inner stretch against the rest (a
    // spike or a dip, which a single split cannot isolate).
    let mut best: Option<(usize, usize, f64)> = None;
    for i in MIN_SEGMENT..=n - MIN_SEGMENT {
        let reduction = total - cost(0, i) - cost(i, n);
        if best.is_none_or(|b| reduction > b.2) {
            best = Some((i, n, reduction));
        }
    }
    // Quadratic: only on series short enough to stay cheap.
    if n <= 720 {
        for i in 1..n {
            for j in i + 1..n {
                let inside = cost(i, j);
                let k_out = (n - (j - i)) as f64;
                let s_out = sum[n] - (sum[j] - sum[i]);
                let q_out = sq[n] - (sq[j] - sq[i]);
                let outside = q_out - s_out * s_out / k_out;
                let reduction = total - inside - outside;
                if best.is_none_or(|b| reduction > b.2 * 1.05) {
                    best = Some((i, j, reduction));
                }
            }
        }
    }
    let Some((i, j, reduction)) = best else {
        return;
    };
    let inside = values.get(i..j).unwrap_or(&[]);
    let outside: Vec<f64> = values
        .iter()
        .take(i)
        .chain(values.iter().skip(j))
        .copied()
        .collect();
    let (mo, mi) = (mean(&outside), mean(inside));
    let shift = (mi - mo).abs();
    let noise = ((total - reduction).max(0.0) / (n as f64 - 2.0).max(1.0)).sqrt();
    let level = mo.abs().max(mi.abs());
    if shift <= MIN_RELATIVE_SHIFT * level || shift <= 4.0 * noise || shift == 0.0 {
        return;
    }
    out.push(offset + i);
    if j < n {
        out.push(offset + j);
    }
    let (head, rest) = values.split_at(i);
    let (middle, tail) = rest.split_at(j - i);
    segment(head, offset, out, depth + 1);
    segment(middle, offset + i, out, depth + 1);
    segment(tail, offset + j, out, depth + 1);
}

/// Level shifts, with a short excursion that comes back called a spike.
fn classify(samples: &[(i64, f64)], values: &[f64], cps: &[usize]) -> Vec<Event> {
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(cps.iter().copied())
        .chain([values.len()])
        .collect();
    let levels: Vec<f64> = bounds
        .windows(2)
        .map(|w| mean(values.get(w[0]..w[1]).unwrap_or(&[])))
        .collect();
    let short = (values.len() / 6).max(3);
    let mut events = Vec::new();
    let mut i = 0;
    while i < cps.len() {
        let (before, during) = (levels[i], levels[i + 1]);
        let at = samples.get(cps[i]).map_or(0, |s| s.0);
        if i + 1 < cps.len() {
            let after = levels[i + 2];
            let width = cps[i + 1] - cps[i];
            if width <= short && (after - before).abs() < 0.3 * (during - before).abs() {
                let end = samples.get(cps[i + 1]).map_or(at, |s| s.0);
                events.push(Event::Spike {
                    at: time(at),
                    peak: values.get(cps[i]..cps[i + 1]).map_or(during, |s| {
                        s.iter().copied().fold(during, |p, v| {
                            if (v - before).abs() > (p - before).abs() {
                                v
                            } else {
                                p
                            }
                        })
                    }),
                    baseline: before,
                    duration_s: (end - at) / 1000,
                });
                i += 2;
                continue;
            }
        }
        events.push(Event::LevelShift {
            at: time(at),
            before,
            after: during,
        });
        i += 1;
    }
    events
}

/// Points whose distance to their segment's level has a robust z-score
/// (median absolute deviation) above [`OUTLIER_Z`]; at most three.
fn outliers(samples: &[(i64, f64)], values: &[f64], cps: &[usize]) -> Vec<Event> {
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(cps.iter().copied())
        .chain([values.len()])
        .collect();
    let mut residuals = Vec::with_capacity(values.len());
    for w in bounds.windows(2) {
        let seg = values.get(w[0]..w[1]).unwrap_or(&[]);
        let mut sorted = seg.to_vec();
        let m = median(&mut sorted);
        residuals.extend(seg.iter().map(|v| v - m));
    }
    let mut abs: Vec<f64> = residuals.iter().map(|r| r.abs()).collect();
    let mad = median(&mut abs);
    // With more than half the points exactly on their level the MAD is 0;
    // fall back to the mean absolute deviation (scaled to match).
    let scale = if mad > 0.0 {
        mad / 0.6745
    } else {
        1.2533 * mean(&abs)
    };
    if scale <= 0.0 {
        return Vec::new();
    }
    // A point must also stand out against the whole graph: a wobble on a
    // very quiet series has a large z but nothing to see.
    let range = values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - values.iter().copied().fold(f64::INFINITY, f64::min);
    let mut found: Vec<(f64, usize)> = residuals
        .iter()
        .enumerate()
        .filter(|(_, r)| r.abs() > 0.1 * range)
        .map(|(i, r)| (r / scale, i))
        .filter(|(z, _)| z.abs() > OUTLIER_Z)
        .collect();
    found.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    found
        .into_iter()
        .take(3)
        .filter_map(|(z, i)| {
            let &(t, v) = samples.get(i)?;
            Some(Event::Outlier {
                at: time(t),
                value: v,
                z,
            })
        })
        .collect()
}

/// The comparison of one series' mean before and after a time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowChange {
    pub before: f64,
    pub after: f64,
    /// `(after - before) / |before|`; infinite when `before` is 0.
    pub relative: f64,
}

/// Mean of the samples in `[t - window, t)` against `[t, t + window]`.
pub fn compare_windows(samples: &[(i64, f64)], t: i64, window: i64) -> Option<WindowChange> {
    let pick = |lo: i64, hi: i64, incl: bool| -> Vec<f64> {
        samples
            .iter()
            .filter(|(ts, v)| *ts >= lo && (*ts < hi || (incl && *ts == hi)) && v.is_finite())
            .map(|(_, v)| *v)
            .collect()
    };
    let before = pick(t - window, t, false);
    let after = pick(t, t + window, true);
    if before.is_empty() || after.is_empty() {
        return None;
    }
    let (b, a) = (mean(&before), mean(&after));
    let relative = if b == 0.0 {
        if a == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(a)
        }
    } else {
        (a - b) / b.abs()
    };
    Some(WindowChange {
        before: b,
        after: a,
        relative,
    })
}

/// A number for a model to read: three significant digits, SI suffix for
/// large magnitudes.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return super::format_value(v);
    }
    let a = v.abs();
    let (scaled, suffix) = match a {
        _ if a >= 1e12 => (v / 1e12, "T"),
        _ if a >= 1e9 => (v / 1e9, "G"),
        _ if a >= 1e6 => (v / 1e6, "M"),
        _ if a >= 1e5 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    if scaled == 0.0 {
        return "0".into();
    }
    let magnitude = scaled.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 12) as usize;
    let mut s = format!("{scaled:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{s}{suffix}")
}

/// `+1950%`, `-40%`, or `from 0`.
pub fn percent(relative: f64) -> String {
    if relative.is_infinite() {
        "new, from 0".into()
    } else {
        format!("{:+.0}%", relative * 100.0)
    }
}

/// One event as a sentence: "rose from 0.2 to 4.1 at 10:42 (+1950%)".
pub fn describe(e: &Event, fmt_time: &dyn Fn(DateTime<Utc>) -> String) -> String {
    match e {
        Event::LevelShift { at, before, after } => {
            let verb = if after > before { "rose" } else { "fell" };
            let rel = if *before == 0.0 {
                f64::INFINITY
            } else {
                (after - before) / before.abs()
            };
            format!(
                "{verb} from {} to {} at {} ({})",
                num(*before),
                num(*after),
                fmt_time(*at),
                percent(rel)
            )
        }
        Event::Spike {
            at,
            peak,
            baseline,
            duration_s,
        } => format!(
            "spiked to {} at {} for {}m, then back near {}",
            num(*peak),
            fmt_time(*at),
            (duration_s + 59) / 60,
            num(*baseline)
        ),
        Event::Outlier { at, value, z } => {
            format!(
                "outlier {} at {} (robust z {:.1})",
                num(*value),
                fmt_time(*at),
                z
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<(i64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 60_000, *v))
            .collect()
    }

    #[test]
    fn a_step_change_is_one_level_shift_at_the_step() {
        let mut v = vec![0.2, 0.21, 0.19, 0.2, 0.22, 0.2, 0.18, 0.2];
        v.extend([4.1, 4.0, 4.2, 4.1, 4.05, 4.1]);
        let s = summarize(&series(&v)).unwrap();
        let shifts: Vec<&Event> = s
            .events
            .iter()
            .filter(|e| matches!(e, Event::LevelShift { .. }))
            .collect();
        assert_eq!(shifts.len(), 1, "{:?}", s.events);
        let Event::LevelShift { at, before, after } = shifts[0] else {
            unreachable!()
        };
        assert_eq!(at.timestamp(), 8 * 60);
        assert!((before - 0.2).abs() < 0.02 && (after - 4.09).abs() < 0.05);
        assert_eq!(s.trend, "rising");
        let text = describe(shifts[0], &|t| t.format("%H:%M").to_string());
        assert!(
            text.starts_with("rose from 0.2 to 4.09 at 00:08 (+"),
            "{text}"
        );
    }

    #[test]
    fn a_short_excursion_is_a_spike_and_a_lone_point_an_outlier() {
        let mut v = vec![10.0; 20];
        v[7] = 11.0;
        v[12] = 10.5;
        for x in &mut v[14..17] {
            *x = 50.0;
        }
        v[3] = 30.0;
        let s = summarize(&series(&v)).unwrap();
        assert!(
            s.events
                .iter()
                .any(|e| matches!(e, Event::Spike { at, .. } if at.timestamp() == 14 * 60)),
            "{:?}",
            s.events
        );
        // A lone point is an outlier or a one-step spike; either is right.
        assert!(
            s.events
                .iter()
                .any(|e| matches!(e, Event::Outlier { at, .. } | Event::Spike { at, .. } if at.timestamp() == 3 * 60)),
            "{:?}",
            s.events
        );
        assert!(
            !s.events
                .iter()
                .any(|e| matches!(e, Event::LevelShift { .. })),
            "{:?}",
            s.events
        );
    }

    #[test]
    fn flat_noise_has_no_events() {
        let v: Vec<f64> = (0..40)
            .map(|i| 100.0 + ((i * 7919) % 13) as f64 / 10.0)
            .collect();
        let s = summarize(&series(&v)).unwrap();
        assert!(s.events.is_empty(), "{:?}", s.events);
        assert_eq!(s.trend, "flat");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(0.0021), "0.0021");
        assert_eq!(num(4.1), "4.1");
        assert_eq!(num(1140.0), "1140");
        assert_eq!(num(536_000_000.0), "536M");
        assert_eq!(num(-0.123456), "-0.123");
        assert_eq!(num(0.0), "0");
        assert_eq!(percent(19.5), "+1950%");
    }

    #[test]
    fn windows_compare_means() {
        let s = series(&[1.0, 1.0, 1.0, 3.0, 3.0, 3.0]);
        let c = compare_windows(&s, 3 * 60_000, 3 * 60_000).unwrap();
        assert_eq!((c.before, c.after), (1.0, 3.0));
        assert_eq!(c.relative, 2.0);
    }
}
