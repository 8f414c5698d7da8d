//! The CloudWatch tools: alarms and their history, metrics listed and
//! fetched with a summary, and the per-service error views built on metrics
//! (Lambda errors and throttles, S3 request errors).

use super::args::{
    AlarmHistoryArgs, AlarmState, AlarmsArgs, LambdaErrorsArgs, ListMetricsArgs, MetricArgs,
    S3MetricsArgs, Stat,
};
use super::tools::{lines, output, window};
use super::{AwsApi, Datapoint, MetricQuery, Window, format, text};
use brain::backends::{ToolError, ToolOutput};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) async fn alarms(api: &dyn AwsApi, a: AlarmsArgs) -> Result<ToolOutput, ToolError> {
    let alarms = api
        .describe_alarms(a.state.map(AlarmState::as_str), a.name_prefix.as_deref())
        .await?;
    let now = api.now();
    Ok(lines(
        "CloudWatch alarms",
        &alarms,
        |x| format::alarm(x, now),
        json!({"alarms": alarms}),
    ))
}

pub(crate) async fn alarm_history(
    api: &dyn AwsApi,
    a: AlarmHistoryArgs,
) -> Result<ToolOutput, ToolError> {
    let w = window(
        api,
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Duration::hours(24),
    )?;
    let items = api
        .describe_alarm_history(a.alarm_name.as_deref(), w)
        .await?;
    let now = api.now();
    Ok(lines(
        "alarm history items",
        &items,
        |h| format::history(h, now),
        json!({"items": items}),
    ))
}

fn period(p: Option<u32>) -> Result<u32, ToolError> {
    let p = p.unwrap_or(300);
    if p == 0 || (p >= 60 && !p.is_multiple_of(60)) || p > 86_400 {
        return Err(ToolError::InvalidArguments(format!(
            "`period_seconds`: {p} must be 1, 5, 10, 30 or a multiple of 60 up to 86400"
        )));
    }
    Ok(p)
}

pub(crate) async fn metric(api: &dyn AwsApi, a: MetricArgs) -> Result<ToolOutput, ToolError> {
    let w = window(
        api,
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Duration::hours(1),
    )?;
    let q = MetricQuery {
        namespace: a.namespace,
        metric_name: a.metric_name,
        dimensions: a.dimensions,
        stat: a.stat.unwrap_or(Stat::Average).as_str().to_owned(),
        period: period(a.period_seconds)?,
        window: w,
    };
    let points = api.get_metric_data(&q).await?;
    let (summary, data) = format::summary(&points);
    let dims: Vec<String> = q
        .dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut text = format!(
        "{} {} {{{}}} {} per {}s: {summary}",
        q.namespace,
        q.metric_name,
        dims.join(","),
        q.stat,
        q.period
    );
    if points.is_empty() {
        text.push_str(" — check the name and that the dimensions are all of the metric's (list_cloudwatch_metrics)");
    }
    text.push('\n');
    text.push_str(&points_line(&points));
    Ok(output(
        text,
        json!({"summary": data, "datapoints": points, "stat": q.stat, "period": q.period}),
    ))
}

fn points_line(points: &[Datapoint]) -> String {
    points
        .iter()
        .map(|p| format!("{} {}", p.at.format("%H:%M"), format::round(p.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn list_metrics(
    api: &dyn AwsApi,
    a: ListMetricsArgs,
) -> Result<ToolOutput, ToolError> {
    let metrics: Vec<Value> = api
        .list_metrics(a.namespace.as_deref(), a.metric_name.as_deref())
        .await?
        .into_iter()
        .filter(|m| {
            a.dimension.as_deref().is_none_or(|d| {
                let (name, value) = d.split_once('=').map_or((d, None), |(n, v)| (n, Some(v)));
                m.get("Dimensions")
                    .and_then(Value::as_array)
                    .is_some_and(|ds| {
                        ds.iter().any(|x| {
                            text(x, "/Name") == Some(name.trim())
                                && value.is_none_or(|v| text(x, "/Value") == Some(v.trim()))
                        })
                    })
            })
        })
        .collect();
    Ok(lines(
        "metrics",
        &metrics,
        format::metric_id,
        json!({"metrics": metrics}),
    ))
}

/// Sums of several metrics of one namespace and dimension set.
async fn sums(
    api: &dyn AwsApi,
    namespace: &str,
    names: &[&str],
    dimensions: BTreeMap<String, String>,
    period: u32,
    w: Window,
) -> Result<(String, Value), ToolError> {
    let mut text = String::new();
    let mut data = serde_json::Map::new();
    for name in names {
        let q = MetricQuery {
            namespace: namespace.to_owned(),
            metric_name: (*name).to_owned(),
            dimensions: dimensions.clone(),
            stat: "Sum".to_owned(),
            period,
            window: w,
        };
        let points = api.get_metric_data(&q).await?;
        let total: f64 = points.iter().map(|p| p.value).sum();
        let peak = points.iter().map(|p| p.value).fold(0.0, f64::max);
        text.push_str(&format!(
            "{name}: total {} peak {} per {period}s\n",
            format::round(total),
            format::round(peak)
        ));
        if !points.is_empty() {
            text.push_str(&format!("  {}\n", points_line(&points)));
        }
        data.insert(
            (*name).to_owned(),
            json!({"total": total, "peak": peak, "datapoints": points}),
        );
    }
    Ok((text, Value::Object(data)))
}

fn ratio(data: &Value, part: &str, whole: &str) -> Option<f64> {
    let p = data.pointer(&format!("/{part}/total"))?.as_f64()?;
    let w = data.pointer(&format!("/{whole}/total"))?.as_f64()?;
    (w > 0.0).then_some(p / w)
}

pub(crate) async fn lambda_errors(
    api: &dyn AwsApi,
    a: LambdaErrorsArgs,
) -> Result<ToolOutput, ToolError> {
    let w = window(
        api,
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Duration::hours(1),
    )?;
    let dims = BTreeMap::from([("FunctionName".to_owned(), a.function_name.clone())]);
    let (body, mut data) = sums(
        api,
        "AWS/Lambda",
        &["Invocations", "Errors", "Throttles"],
        dims,
        period(a.period_seconds)?,
        w,
    )
    .await?;
    let rate = ratio(&data, "Errors", "Invocations");
    if let Some(map) = data.as_object_mut() {
        map.insert("error_rate".into(), json!(rate));
    }
    let head = match rate {
        Some(r) => format!("{}: error rate {:.2}%\n", a.function_name, r * 100.0),
        None => format!("{}: no invocations in the window\n", a.function_name),
    };
    Ok(output(head + &body, data))
}

pub(crate) async fn s3_metrics(
    api: &dyn AwsApi,
    a: S3MetricsArgs,
) -> Result<ToolOutput, ToolError> {
    let w = window(
        api,
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Duration::hours(1),
    )?;
    let filter = a.filter_id.unwrap_or_else(|| "EntireBucket".to_owned());
    let dims = BTreeMap::from([
        ("BucketName".to_owned(), a.bucket.clone()),
        ("FilterId".to_owned(), filter),
    ]);
    let (body, mut data) = sums(
        api,
        "AWS/S3",
        &["AllRequests", "4xxErrors", "5xxErrors"],
        dims,
        period(a.period_seconds)?,
        w,
    )
    .await?;
    let r4 = ratio(&data, "4xxErrors", "AllRequests");
    let r5 = ratio(&data, "5xxErrors", "AllRequests");
    if let Some(map) = data.as_object_mut() {
        map.insert("rate_4xx".into(), json!(r4));
        map.insert("rate_5xx".into(), json!(r5));
    }
    let pct = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0));
    let head = format!(
        "{}: 4xx {} 5xx {} of requests\n",
        a.bucket,
        pct(r4),
        pct(r5)
    );
    Ok(output(head + &body, data))
}
