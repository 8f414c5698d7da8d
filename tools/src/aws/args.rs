//! The arguments of the AWS read tools, as a model sees them: every field
//! described, unknown fields refused.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListEc2Args {
    /// Only instances in this state: pending, running, stopping, stopped, shutting-down, terminated.
    #[serde(default)]
    pub(crate) state: Option<String>,
    /// Only instances with this tag: `key=value`, or `key` for any value (e.g. `env=prod`, `Name=web-1`).
    #[serde(default)]
    pub(crate) tag: Option<String>,
    /// Only these instance ids (e.g. `i-0a1b2c3d4e5f67890`).
    #[serde(default)]
    pub(crate) instance_ids: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ec2Args {
    /// The instance id, e.g. `i-0a1b2c3d4e5f67890`.
    pub(crate) instance_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusArgs {
    /// Only these instance ids; all instances when omitted.
    #[serde(default)]
    pub(crate) instance_ids: Option<Vec<String>>,
    /// Only instances whose system or instance check is not `ok`.
    #[serde(default)]
    pub(crate) only_impaired: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListAsgArgs {
    /// Only groups whose name contains this text.
    #[serde(default)]
    pub(crate) name_contains: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsgArgs {
    /// The Auto Scaling group's name.
    pub(crate) name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsgActivitiesArgs {
    /// The Auto Scaling group's name.
    pub(crate) name: String,
    /// At most this many activities, newest first (default 10).
    #[serde(default)]
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RdsArgs {
    /// The DB instance identifier, e.g. `orders-db`.
    pub(crate) db_instance_identifier: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RdsEventsArgs {
    /// Only events of this DB instance; all sources when omitted.
    #[serde(default)]
    pub(crate) db_instance_identifier: Option<String>,
    /// Start of the window: RFC 3339 or an offset such as `-24h` (the default; RDS keeps 14 days).
    #[serde(default)]
    pub(crate) start: Option<String>,
    /// End of the window: RFC 3339 or an offset; default now.
    #[serde(default)]
    pub(crate) end: Option<String>,
}

/// A CloudWatch alarm state.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmsArgs {
    /// Only alarms in this state: OK, ALARM or INSUFFICIENT_DATA.
    #[serde(default)]
    pub(crate) state: Option<AlarmState>,
    /// Only alarms whose name starts with this text.
    #[serde(default)]
    pub(crate) name_prefix: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmHistoryArgs {
    /// Only this alarm's history; all alarms when omitted.
    #[serde(default)]
    pub(crate) alarm_name: Option<String>,
    /// Start of the window: RFC 3339 or an offset such as `-24h` (the default).
    #[serde(default)]
    pub(crate) start: Option<String>,
    /// End of the window: RFC 3339 or an offset; default now.
    #[serde(default)]
    pub(crate) end: Option<String>,
}

/// A CloudWatch statistic.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub(crate) enum Stat {
    Average,
    Maximum,
    Minimum,
    Sum,
    SampleCount,
}

impl Stat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stat::Average => "Average",
            Stat::Maximum => "Maximum",
            Stat::Minimum => "Minimum",
            Stat::Sum => "Sum",
            Stat::SampleCount => "SampleCount",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricArgs {
    /// The namespace, e.g. `AWS/RDS`, `AWS/EC2`, `AWS/ApplicationELB`.
    pub(crate) namespace: String,
    /// The metric, e.g. `DatabaseConnections`, `CPUUtilization`.
    pub(crate) metric_name: String,
    /// All of the metric's dimensions, e.g. `{"DBInstanceIdentifier": "orders-db"}`; list_cloudwatch_metrics shows them.
    #[serde(default)]
    pub(crate) dimensions: BTreeMap<String, String>,
    /// The statistic: Average (default), Maximum, Minimum, Sum or SampleCount.
    #[serde(default)]
    pub(crate) stat: Option<Stat>,
    /// Seconds per datapoint, a multiple of 60 (default 300).
    #[serde(default)]
    pub(crate) period_seconds: Option<u32>,
    /// Start of the window: RFC 3339 or an offset such as `-1h` (the default).
    #[serde(default)]
    pub(crate) start: Option<String>,
    /// End of the window: RFC 3339 or an offset; default now.
    #[serde(default)]
    pub(crate) end: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListMetricsArgs {
    /// Only this namespace, e.g. `AWS/RDS`.
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    /// Only this metric name.
    #[serde(default)]
    pub(crate) metric_name: Option<String>,
    /// Only metrics with this dimension: `Name=Value` (e.g. `DBInstanceIdentifier=orders-db`) or `Name`.
    #[serde(default)]
    pub(crate) dimension: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogGroupsArgs {
    /// Only groups whose name starts with this text, e.g. `/aws/lambda/`.
    #[serde(default)]
    pub(crate) prefix: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsArgs {
    /// The log group, e.g. `/aws/lambda/checkout` (list_log_groups lists them).
    pub(crate) log_group: String,
    /// A CloudWatch Logs filter pattern: `ERROR` (contains), `ERROR timeout` (both), `"exact phrase"`, `?ERROR ?WARN` (either), `-healthz` (not). Every event when omitted.
    #[serde(default)]
    pub(crate) pattern: Option<String>,
    /// Start of the window: RFC 3339 or an offset such as `-1h` (the default).
    #[serde(default)]
    pub(crate) start: Option<String>,
    /// End of the window: RFC 3339 or an offset; default now.
    #[serde(default)]
    pub(crate) end: Option<String>,
    /// At most this many events, oldest first (default 50, at most 500).
    #[serde(default)]
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetGroupsArgs {
    /// Only the target groups of this load balancer (its ARN); all when omitted.
    #[serde(default)]
    pub(crate) load_balancer_arn: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetHealthArgs {
    /// The target group's name or ARN.
    pub(crate) target_group: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EcsClusterArgs {
    /// The ECS cluster's name or ARN.
    pub(crate) cluster: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EcsServiceArgs {
    /// The ECS cluster's name or ARN.
    pub(crate) cluster: String,
    /// The service's name or ARN.
    pub(crate) service: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LambdaListArgs {
    /// Only functions whose name contains this text.
    #[serde(default)]
    pub(crate) name_contains: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LambdaErrorsArgs {
    /// The function's name.
    pub(crate) function_name: String,
    /// Start of the window: RFC 3339 or an offset such as `-1h` (the default).
    #[serde(default)]
    pub(crate) start: Option<String>,
    /// End of the window: RFC 3339 or an offset; default now.
    #[serde(default)]
    pub(crate) end: Option<String>,
    /// Seconds per datapoint (default 300).
    #[serde(default)]
    pub(crate) period_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3MetricsArgs {
    /// The bucket's name.
    pub(crate) bucket: String,
    /// The request-metrics filter configured on the bucket (default `EntireBucket`).
    #[serde(default)]
    pub(crate) filter_id: Option<String>,
    /// Start of the window: RFC 3339 or an offset such as `-1h` (the default).
    #[serde(default)]
    pub(crate) start: Option<String>,
    /// End of the window: RFC 3339 or an offset; default now.
    #[serde(default)]
    pub(crate) end: Option<String>,
    /// Seconds per datapoint (default 300).
    #[serde(default)]
    pub(crate) period_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrailArgs {
    /// Only events about this resource (an instance id, a DB identifier, a group or bucket name).
    #[serde(default)]
    pub(crate) resource_name: Option<String>,
    /// Start of the window: RFC 3339 or an offset such as `-24h` (the default).
    #[serde(default)]
    pub(crate) start: Option<String>,
    /// End of the window: RFC 3339 or an offset; default now.
    #[serde(default)]
    pub(crate) end: Option<String>,
    /// At most this many events, newest first (default 50).
    #[serde(default)]
    pub(crate) limit: Option<usize>,
}
