//! One compact line per AWS resource, for a model to read; the same code
//! for live answers and replays, since both come in the APIs' shapes.

use super::world::time_at;
use super::{Datapoint, items, tag, text};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

fn num(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "-".to_owned(),
    }
}

/// `key=value` pairs of a `Tags`/`TagList` array, `Name` first.
pub(crate) fn tags(list: Option<&Value>) -> String {
    let mut pairs: Vec<String> = list
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(format!(
                "{}={}",
                text(t, "/Key")?,
                text(t, "/Value").unwrap_or("")
            ))
        })
        .collect();
    pairs.sort_by_key(|p| !p.starts_with("Name="));
    pairs.join(" ")
}

/// A time as `2026-05-19 02:10:12Z`, and how long before `now`.
pub(crate) fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let ago = now - t;
    let rel = if ago.num_seconds() < 0 {
        "in the future".to_owned()
    } else if ago.num_minutes() < 120 {
        format!("{}m ago", ago.num_minutes())
    } else if ago.num_hours() < 72 {
        format!("{}h ago", ago.num_hours())
    } else {
        format!("{}d ago", ago.num_days())
    };
    format!("{} ({rel})", t.format("%Y-%m-%d %H:%M:%SZ"))
}

pub(crate) fn instance(i: &Value, now: DateTime<Utc>) -> String {
    format!(
        "{} {} {} ip {} az {} launched {} {}",
        or_dash(text(i, "/InstanceId")),
        or_dash(text(i, "/State/Name")),
        or_dash(text(i, "/InstanceType")),
        or_dash(text(i, "/PrivateIpAddress")),
        or_dash(text(i, "/Placement/AvailabilityZone")),
        when(time_at(i, "/LaunchTime"), now),
        tags(i.get("Tags")),
    )
    .trim_end()
    .to_owned()
}

fn check(v: &Value, pointer: &str) -> String {
    let status = or_dash(text(v, &format!("{pointer}/Status")));
    let failed: Vec<&str> = items(v, &format!("{pointer}/Details"))
        .filter(|d| text(d, "/Status").is_some_and(|s| s != "passed"))
        .filter_map(|d| text(d, "/Name"))
        .collect();
    if failed.is_empty() {
        status.to_owned()
    } else {
        format!("{status} (failed: {})", failed.join(", "))
    }
}

pub(crate) fn status(s: &Value) -> String {
    let events: Vec<String> = items(s, "/Events")
        .map(|e| {
            format!(
                "{} {}",
                or_dash(text(e, "/Code")),
                or_dash(text(e, "/Description"))
            )
        })
        .collect();
    let mut line = format!(
        "{} {} system {} instance {}",
        or_dash(text(s, "/InstanceId")),
        or_dash(text(s, "/InstanceState/Name")),
        check(s, "/SystemStatus"),
        check(s, "/InstanceStatus"),
    );
    if !events.is_empty() {
        line.push_str(&format!(" scheduled: {}", events.join("; ")));
    }
    line
}

pub(crate) fn asg(g: &Value) -> String {
    let count = |pointer: &str, value: &str| {
        items(g, "/Instances")
            .filter(|i| text(i, pointer) == Some(value))
            .count()
    };
    let healthy = count("/HealthStatus", "Healthy");
    let in_service = count("/LifecycleState", "InService");
    format!(
        "{} desired {} min {} max {} instances {} (in service {in_service}, healthy {healthy}) {}",
        or_dash(text(g, "/AutoScalingGroupName")),
        num(g, "/DesiredCapacity"),
        num(g, "/MinSize"),
        num(g, "/MaxSize"),
        items(g, "/Instances").count(),
        tags(g.get("Tags")),
    )
    .trim_end()
    .to_owned()
}

pub(crate) fn asg_instance(i: &Value) -> String {
    format!(
        "  {} {} {} {} {}",
        or_dash(text(i, "/InstanceId")),
        or_dash(text(i, "/LifecycleState")),
        or_dash(text(i, "/HealthStatus")),
        or_dash(text(i, "/InstanceType")),
        or_dash(text(i, "/AvailabilityZone")),
    )
}

pub(crate) fn activity(a: &Value, now: DateTime<Utc>) -> String {
    format!(
        "{} {} {} — {}",
        when(time_at(a, "/StartTime"), now),
        or_dash(text(a, "/StatusCode")),
        or_dash(text(a, "/Description")),
        or_dash(text(a, "/Cause")),
    )
}

pub(crate) fn db(d: &Value) -> String {
    let pending = d
        .get("PendingModifiedValues")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
        .map(|p| format!(" pending {}", Value::Object(p.clone())))
        .unwrap_or_default();
    format!(
        "{} {} {} {} {} storage {} GiB {} multi-az {} endpoint {}:{}{pending} {}",
        or_dash(text(d, "/DBInstanceIdentifier")),
        or_dash(text(d, "/DBInstanceStatus")),
        or_dash(text(d, "/DBInstanceClass")),
        or_dash(text(d, "/Engine")),
        or_dash(text(d, "/EngineVersion")),
        num(d, "/AllocatedStorage"),
        or_dash(text(d, "/StorageType")),
        num(d, "/MultiAZ"),
        or_dash(text(d, "/Endpoint/Address")),
        num(d, "/Endpoint/Port"),
        tags(d.get("TagList")),
    )
    .trim_end()
    .to_owned()
}

pub(crate) fn db_event(e: &Value, now: DateTime<Utc>) -> String {
    let cats: Vec<&str> = items(e, "/EventCategories")
        .filter_map(Value::as_str)
        .collect();
    format!(
        "{} {} [{}] {}",
        when(time_at(e, "/Date"), now),
        or_dash(text(e, "/SourceIdentifier")),
        cats.join(","),
        or_dash(text(e, "/Message")),
    )
}

pub(crate) fn dims(list: Option<&Value>) -> String {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| Some(format!("{}={}", text(d, "/Name")?, text(d, "/Value")?)))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn alarm(a: &Value, now: DateTime<Utc>) -> String {
    format!(
        "{} {} since {} — {}/{} {{{}}} {} {} {} over {}x{}s — {}",
        or_dash(text(a, "/AlarmName")),
        or_dash(text(a, "/StateValue")),
        when(time_at(a, "/StateUpdatedTimestamp"), now),
        or_dash(text(a, "/Namespace")),
        or_dash(text(a, "/MetricName")),
        dims(a.get("Dimensions")),
        or_dash(text(a, "/Statistic").or(text(a, "/ExtendedStatistic"))),
        or_dash(text(a, "/ComparisonOperator")),
        num(a, "/Threshold"),
        num(a, "/EvaluationPeriods"),
        num(a, "/Period"),
        or_dash(text(a, "/StateReason")),
    )
}

pub(crate) fn history(h: &Value, now: DateTime<Utc>) -> String {
    format!(
        "{} {} {} {}",
        when(time_at(h, "/Timestamp"), now),
        or_dash(text(h, "/AlarmName")),
        or_dash(text(h, "/HistoryItemType")),
        or_dash(text(h, "/HistorySummary")),
    )
}

pub(crate) fn metric_id(m: &Value) -> String {
    format!(
        "{} {} {{{}}}",
        or_dash(text(m, "/Namespace")),
        or_dash(text(m, "/MetricName")),
        dims(m.get("Dimensions")),
    )
}

/// Min, max, last and the trend of a series: structured and as text.
pub(crate) fn summary(points: &[Datapoint]) -> (String, Value) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return ("no datapoints".to_owned(), json!(null));
    };
    let min = points.iter().map(|p| p.value).fold(f64::INFINITY, f64::min);
    let max = points
        .iter()
        .map(|p| p.value)
        .fold(f64::NEG_INFINITY, f64::max);
    let third = points.len().div_ceil(3);
    let mean = |ps: &[Datapoint]| ps.iter().map(|p| p.value).sum::<f64>() / ps.len().max(1) as f64;
    let early = mean(&points[..third]);
    let late = mean(&points[points.len() - third..]);
    let scale = early.abs().max(late.abs()).max(f64::EPSILON);
    let trend = if (late - early) / scale > 0.1 {
        "rising"
    } else if (early - late) / scale > 0.1 {
        "falling"
    } else {
        "flat"
    };
    let text = format!(
        "min {} max {} last {} (at {}) first {} trend {trend} ({} points)",
        round(min),
        round(max),
        round(last.value),
        last.at.format("%H:%M:%SZ"),
        round(first.value),
        points.len()
    );
    let data = json!({"min": min, "max": max, "last": last.value, "first": first.value,
                      "trend": trend, "points": points.len()});
    (text, data)
}

pub(crate) fn round(v: f64) -> String {
    let r = (v * 1000.0).round() / 1000.0;
    r.to_string()
}

pub(crate) fn log_event(e: &Value) -> String {
    let at = e
        .get("timestamp")
        .and_then(Value::as_i64)
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or("-".to_owned(), |t| {
            t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
        });
    let message: String = or_dash(text(e, "/message"))
        .trim_end()
        .chars()
        .take(400)
        .collect();
    format!("{at} {} {message}", or_dash(text(e, "/logStreamName")))
}

pub(crate) fn load_balancer(lb: &Value) -> String {
    format!(
        "{} {} {} {} {} {}",
        or_dash(text(lb, "/LoadBalancerName")),
        or_dash(text(lb, "/Type")),
        or_dash(text(lb, "/Scheme")),
        or_dash(text(lb, "/State/Code")),
        or_dash(text(lb, "/DNSName")),
        or_dash(text(lb, "/LoadBalancerArn")),
    )
}

pub(crate) fn target_group(tg: &Value) -> String {
    format!(
        "{} {} {}:{} target-type {} health {} {} {}",
        or_dash(text(tg, "/TargetGroupName")),
        or_dash(text(tg, "/Protocol")),
        or_dash(text(tg, "/VpcId")),
        num(tg, "/Port"),
        or_dash(text(tg, "/TargetType")),
        or_dash(text(tg, "/HealthCheckProtocol")),
        or_dash(text(tg, "/HealthCheckPath")),
        or_dash(text(tg, "/TargetGroupArn")),
    )
}

pub(crate) fn target_health(t: &Value) -> String {
    format!(
        "{}:{} {} {} {}",
        or_dash(text(t, "/Target/Id")),
        num(t, "/Target/Port"),
        or_dash(text(t, "/TargetHealth/State")),
        or_dash(text(t, "/TargetHealth/Reason")),
        or_dash(text(t, "/TargetHealth/Description")),
    )
}

pub(crate) fn ecs_service(s: &Value) -> String {
    format!(
        "{} {} running {} desired {} pending {} deployments {} task {} launch {}",
        or_dash(text(s, "/serviceName")),
        or_dash(text(s, "/status")),
        num(s, "/runningCount"),
        num(s, "/desiredCount"),
        num(s, "/pendingCount"),
        s.get("deployments")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        or_dash(text(s, "/taskDefinition")),
        or_dash(text(s, "/launchType")),
    )
}

pub(crate) fn ecs_deployment(d: &Value, now: DateTime<Utc>) -> String {
    format!(
        "  deployment {} {} {} running {} desired {} failed {} rollout {} since {}",
        or_dash(text(d, "/id")),
        or_dash(text(d, "/status")),
        or_dash(text(d, "/taskDefinition")),
        num(d, "/runningCount"),
        num(d, "/desiredCount"),
        num(d, "/failedTasks"),
        or_dash(text(d, "/rolloutState")),
        when(time_at(d, "/createdAt"), now),
    )
}

pub(crate) fn lambda(f: &Value) -> String {
    format!(
        "{} {} {} MB {} s {} modified {}",
        or_dash(text(f, "/FunctionName")),
        or_dash(text(f, "/Runtime")),
        num(f, "/MemorySize"),
        num(f, "/Timeout"),
        or_dash(text(f, "/State")),
        or_dash(text(f, "/LastModified")),
    )
}

pub(crate) fn bucket(b: &Value, now: DateTime<Utc>) -> String {
    format!(
        "{} created {}",
        or_dash(text(b, "/Name")),
        when(time_at(b, "/CreationDate"), now)
    )
}

pub(crate) fn trail_event(e: &Value, now: DateTime<Utc>) -> String {
    let resources: Vec<String> = items(e, "/Resources")
        .filter_map(|r| text(r, "/ResourceName").map(str::to_owned))
        .collect();
    format!(
        "{} {} {} by {} on {}",
        when(time_at(e, "/EventTime"), now),
        or_dash(text(e, "/EventSource")),
        or_dash(text(e, "/EventName")),
        or_dash(text(e, "/Username")),
        if resources.is_empty() {
            "-".to_owned()
        } else {
            resources.join(",")
        },
    )
}

/// Whether `v`'s tags hold `filter`: `key=value`, or `key` for any value.
pub(crate) fn has_tag(tags: Option<&Value>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => tag(tags, k.trim()) == Some(v.trim()),
        None => tag(tags, filter.trim()).is_some(),
    }
}
