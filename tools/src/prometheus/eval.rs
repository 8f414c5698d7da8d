//! Evaluates the PromQL subset of [`super::promql`] over recorded series,
//! with the semantics of Prometheus 2.x: an instant selector at `t` takes
//! the latest sample in `[t - 5m, t]`, a range selector `[r]` the samples in
//! `[t - r, t]` (both ends inclusive, as in 2.x; 3.x made the start
//! exclusive), and `rate`/`increase`/`delta` extrapolate like
//! `extrapolatedRate` in promql/functions.go.

use super::Labels;
use super::promql::{AggOp, BinOp, Expr, Grouping, Matcher};
use std::collections::BTreeMap;

/// How far back an instant selector looks for a sample.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;
/// Prometheus refuses range queries with more points per series.
pub const MAX_POINTS: i64 = 11_000;

/// A series with its samples sorted by time (milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSeries {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// The value of an expression at one time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

/// Series that every matcher accepts (a missing label is the empty string).
pub fn select<'a>(
    store: &'a [StoredSeries],
    matchers: &'a [Matcher],
) -> impl Iterator<Item = &'a StoredSeries> + 'a {
    store.iter().filter(move |s| {
        matchers
            .iter()
            .all(|m| m.matches(s.labels.get(&m.label).map_or("", String::as_str)))
    })
}

/// Evaluate `expr` at `t` (milliseconds).
pub fn eval(expr: &Expr, store: &[StoredSeries], t: i64) -> Result<Value, String> {
    match expr {
        Expr::Number(n) => Ok(Value::Scalar(*n)),
        Expr::Neg(e) => match eval(e, store, t)? {
            Value::Scalar(v) => Ok(Value::Scalar(-v)),
            Value::Vector(v) => Ok(Value::Vector(
                v.into_iter().map(|(l, x)| (drop_name(l), -x)).collect(),
            )),
            Value::Matrix(_) => Err("cannot negate a range vector".into()),
        },
        Expr::Selector(m) => {
            let mut out = Vec::new();
            for s in select(store, m) {
                if let Some(&(_, v)) = s
                    .samples
                    .iter()
                    .rev()
                    .find(|(ts, _)| *ts <= t && *ts >= t - LOOKBACK_MS)
                {
                    out.push((s.labels.clone(), v));
                }
            }
            Ok(Value::Vector(out))
        }
        Expr::Range(m, range) => {
            let mut out = Vec::new();
            for s in select(store, m) {
                let w = window(&s.samples, t - range, t);
                if !w.is_empty() {
                    out.push((s.labels.clone(), w.to_vec()));
                }
            }
            Ok(Value::Matrix(out))
        }
        Expr::Call(name, args) => call(name, args, store, t),
        Expr::Aggregate {
            op,
            grouping,
            param,
            expr,
        } => {
            let Value::Vector(v) = eval(expr, store, t)? else {
                return Err(format!("{op:?} expects an instant vector").to_lowercase());
            };
            let k = match param {
                Some(p) => match eval(p, store, t)? {
                    Value::Scalar(k) => Some(k),
                    _ => return Err("the k of topk/bottomk must be a number".into()),
                },
                None => None,
            };
            Ok(Value::Vector(aggregate(*op, grouping, k, v)))
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            return_bool,
        } => binary(
            *op,
            *return_bool,
            eval(lhs, store, t)?,
            eval(rhs, store, t)?,
        ),
    }
}

/// The samples of `samples` (sorted) with `start <= t <= end`.
fn window(samples: &[(i64, f64)], start: i64, end: i64) -> &[(i64, f64)] {
    let from = samples.partition_point(|(t, _)| *t < start);
    let to = samples.partition_point(|(t, _)| *t <= end);
    samples.get(from..to.max(from)).unwrap_or(&[])
}

pub fn drop_name(mut l: Labels) -> Labels {
    l.remove("__name__");
    l
}

fn call(name: &str, args: &[Expr], store: &[StoredSeries], t: i64) -> Result<Value, String> {
    match (name, args) {
        ("abs", [e]) => match eval(e, store, t)? {
            Value::Vector(v) => Ok(Value::Vector(
                v.into_iter()
                    .map(|(l, x)| (drop_name(l), x.abs()))
                    .collect(),
            )),
            _ => Err("abs() expects an instant vector".into()),
        },
        ("histogram_quantile", [q, e]) => {
            let Value::Scalar(q) = eval(q, store, t)? else {
                return Err("the first argument of histogram_quantile() must be a number".into());
            };
            let Value::Vector(v) = eval(e, store, t)? else {
                return Err("histogram_quantile() expects an instant vector of buckets".into());
            };
            Ok(Value::Vector(histogram_quantile(q, v)))
        }
        (_, [Expr::Range(m, range)]) => {
            let mut out = Vec::new();
            for s in select(store, m) {
                let w = window(&s.samples, t - range, t);
                if let Some(v) = range_function(name, w, t - range, t, *range)? {
                    let labels = if name == "last_over_time" {
                        s.labels.clone()
                    } else {
                        drop_name(s.labels.clone())
                    };
                    out.push((labels, v));
                }
            }
            Ok(Value::Vector(out))
        }
        _ => Err(format!(
            "the function `{name}` is not supported by the scenario replay"
        )),
    }
}

fn range_function(
    name: &str,
    w: &[(i64, f64)],
    start: i64,
    end: i64,
    range: i64,
) -> Result<Option<f64>, String> {
    let values = || w.iter().map(|(_, v)| *v);
    let n = w.len() as f64;
    Ok(match name {
        _ if w.is_empty() => None,
        "rate" => extrapolated(w, start, end, true, true, range),
        "increase" => extrapolated(w, start, end, true, false, range),
        "delta" => extrapolated(w, start, end, false, false, range),
        "irate" => irate(w),
        "deriv" => deriv(w),
        "avg_over_time" => Some(values().sum::<f64>() / n),
        "sum_over_time" => Some(values().sum()),
        "count_over_time" => Some(n),
        "min_over_time" => values().fold(None, |m: Option<f64>, v| {
            Some(m.map_or(v, |m| if v < m || m.is_nan() { v } else { m }))
        }),
        "max_over_time" => values().fold(None, |m: Option<f64>, v| {
            Some(m.map_or(v, |m| if v > m || m.is_nan() { v } else { m }))
        }),
        "last_over_time" => w.last().map(|(_, v)| *v),
        _ => {
            return Err(format!(
                "the function `{name}` is not supported by the scenario replay"
            ));
        }
    })
}

/// `extrapolatedRate` of Prometheus 2.x.
fn extrapolated(
    w: &[(i64, f64)],
    start: i64,
    end: i64,
    counter: bool,
    per_second: bool,
    range: i64,
) -> Option<f64> {
    let (&(first_t, first_v), &(last_t, last_v)) = (w.first()?, w.last()?);
    if w.len() < 2 {
        return None;
    }
    let mut result = last_v - first_v;
    if counter {
        let mut previous = 0.0;
        for &(_, v) in w {
            if v < previous {
                result += previous;
            }
            previous = v;
        }
    }
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let average_gap = sampled / (w.len() - 1) as f64;
    let mut to_start = (first_t - start) as f64 / 1000.0;
    let to_end = (end - last_t) as f64 / 1000.0;
    if counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_gap / 2.0
    };
    result *= interval / sampled;
    if per_second {
        result /= range as f64 / 1000.0;
    }
    Some(result)
}

fn irate(w: &[(i64, f64)]) -> Option<f64> {
    let [.., (pt, pv), (lt, lv)] = w else {
        return None;
    };
    let dt = (lt - pt) as f64 / 1000.0;
    if dt == 0.0 {
        return None;
    }
    let diff = if lv < pv { *lv } else { lv - pv };
    Some(diff / dt)
}

/// Least-squares slope per second, times counted from the first sample.
fn deriv(w: &[(i64, f64)]) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let t0 = w.first()?.0;
    let n = w.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
    for &(t, v) in w {
        let x = (t - t0) as f64 / 1000.0;
        sx += x;
        sy += v;
        sxy += x * v;
        sxx += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sxx - sx * sx / n;
    Some(cov / var)
}

fn group_key(labels: &Labels, grouping: &Grouping) -> Labels {
    match grouping {
        Grouping::None => Labels::new(),
        Grouping::By(keep) => labels
            .iter()
            .filter(|(k, _)| keep.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Grouping::Without(drop) => labels
            .iter()
            .filter(|(k, _)| *k != "__name__" && !drop.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn aggregate(
    op: AggOp,
    grouping: &Grouping,
    k: Option<f64>,
    v: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    let mut groups: BTreeMap<Labels, Vec<(Labels, f64)>> = BTreeMap::new();
    for (l, x) in v {
        groups
            .entry(group_key(&l, grouping))
            .or_default()
            .push((l, x));
    }
    let mut out = Vec::new();
    for (key, members) in groups {
        let values = || members.iter().map(|(_, x)| *x);
        let n = members.len() as f64;
        let value = match op {
            AggOp::Sum => values().sum(),
            AggOp::Avg => values().sum::<f64>() / n,
            AggOp::Count => n,
            AggOp::Min => values().fold(f64::NAN, |m, x| if x < m || m.is_nan() { x } else { m }),
            AggOp::Max => values().fold(f64::NAN, |m, x| if x > m || m.is_nan() { x } else { m }),
            AggOp::Topk | AggOp::Bottomk => {
                let k = k.unwrap_or(0.0);
                if k < 1.0 {
                    continue;
                }
                let mut members = members;
                // NaN sorts last for both, as in Prometheus.
                members.sort_by(|a, b| {
                    let ord = if op == AggOp::Topk {
                        b.1.partial_cmp(&a.1)
                    } else {
                        a.1.partial_cmp(&b.1)
                    };
                    ord.unwrap_or_else(|| a.1.is_nan().cmp(&b.1.is_nan()))
                });
                out.extend(members.into_iter().take(k as usize));
                continue;
            }
        };
        out.push((key, value));
    }
    out
}

fn apply(op: BinOp, a: f64, b: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (a + b, true),
        BinOp::Sub => (a - b, true),
        BinOp::Mul => (a * b, true),
        BinOp::Div => (a / b, true),
        BinOp::Mod => (a % b, true),
        BinOp::Pow => (a.powf(b), true),
        BinOp::Eq => (a, a == b),
        BinOp::Ne => (a, a != b),
        BinOp::Gt => (a, a > b),
        BinOp::Lt => (a, a < b),
        BinOp::Ge => (a, a >= b),
        BinOp::Le => (a, a <= b),
    }
}

/// `lhs op rhs` for one pair of samples: `None` when a comparison filters
/// it out. `keep` is the value a filtering comparison keeps.
fn combine(op: BinOp, return_bool: bool, a: f64, b: f64, keep: f64) -> Option<f64> {
    let (v, ok) = apply(op, a, b);
    if !op.is_comparison() {
        return Some(v);
    }
    if return_bool {
        return Some(if ok { 1.0 } else { 0.0 });
    }
    ok.then_some(keep)
}

fn binary(op: BinOp, return_bool: bool, lhs: Value, rhs: Value) -> Result<Value, String> {
    let rename = |l: Labels| {
        if !op.is_comparison() || return_bool {
            drop_name(l)
        } else {
            l
        }
    };
    match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            if op.is_comparison() && !return_bool {
                return Err("comparisons between scalars must use the bool modifier".into());
            }
            Ok(Value::Scalar(
                combine(op, return_bool, a, b, a).unwrap_or(f64::NAN),
            ))
        }
        (Value::Vector(v), Value::Scalar(b)) => Ok(Value::Vector(
            v.into_iter()
                .filter_map(|(l, a)| combine(op, return_bool, a, b, a).map(|x| (rename(l), x)))
                .collect(),
        )),
        (Value::Scalar(a), Value::Vector(v)) => Ok(Value::Vector(
            v.into_iter()
                .filter_map(|(l, b)| combine(op, return_bool, a, b, b).map(|x| (rename(l), x)))
                .collect(),
        )),
        (Value::Vector(l), Value::Vector(r)) => {
            let mut right: BTreeMap<Labels, f64> = BTreeMap::new();
            for (labels, v) in r {
                if right.insert(drop_name(labels), v).is_some() {
                    return Err("many-to-many matching not allowed: found duplicate series on the right side \
                                of the operation; aggregate it with sum by (...) first"
                        .into());
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            let mut out = Vec::new();
            for (labels, a) in l {
                let sig = drop_name(labels.clone());
                let Some(&b) = right.get(&sig) else { continue };
                if !seen.insert(sig) {
                    return Err("many-to-many matching not allowed: found duplicate series on the left side \
                                of the operation; aggregate it with sum by (...) first"
                        .into());
                }
                if let Some(x) = combine(op, return_bool, a, b, a) {
                    out.push((rename(labels), x));
                }
            }
            Ok(Value::Vector(out))
        }
        _ => Err("binary operators take scalars and instant vectors, not range vectors".into()),
    }
}

/// `histogram_quantile` over classic buckets (`le` labels), as
/// `bucketQuantile` in Prometheus 2.x.
fn histogram_quantile(q: f64, v: Vec<(Labels, f64)>) -> Vec<(Labels, f64)> {
    let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for (mut labels, count) in v {
        let Some(le) = labels.remove("le").and_then(|le| super::parse_value(&le)) else {
            continue;
        };
        groups
            .entry(drop_name(labels))
            .or_default()
            .push((le, count));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| (labels, bucket_quantile(q, buckets)))
        .collect()
}

fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds, then force the counts to be non-decreasing.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (le, c) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else {
            b.1 = max;
        }
    }
    let n = merged.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..n - 1].partition_point(|x| x.1 < rank);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}
