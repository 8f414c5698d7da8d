//! AWS: the APIs the tools read and act through, as a trait ([`AwsApi`])
//! with a live client over the AWS SDK for Rust ([`LiveAws`]) and a
//! scenario replay answering from `world.aws` ([`WorldAws`]), and the tools
//! an agent calls over either ([`AwsTools`]).
//!
//! Resources travel as JSON in the shapes the AWS APIs document (PascalCase
//! members: `InstanceId`, `State.Name`, `Tags`, ...), the shapes of
//! shared/evals/SPEC.md's `world.aws`, so one set of formatting code serves
//! the live API and the replay. Times are RFC 3339 strings.

mod actions;
mod args;
mod cloudwatch;
mod convert;
mod format;
pub mod live;
mod pattern;
mod tools;
pub mod world;

pub use live::{AwsConfig, LiveAws, StaticCredentials};
pub use tools::AwsTools;
pub use world::WorldAws;

use async_trait::async_trait;
use brain::backends::ToolError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One CloudWatch metric statistic over a window (`GetMetricData` with a
/// `MetricStat`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub namespace: String,
    pub metric_name: String,
    /// Exactly the metric's dimensions, as CloudWatch matches them.
    pub dimensions: BTreeMap<String, String>,
    /// `Average`, `Maximum`, `Minimum`, `Sum` or `SampleCount`.
    pub stat: String,
    /// Seconds per datapoint.
    pub period: u32,
    pub window: Window,
}

/// One datapoint of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Datapoint {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// A change to a DB instance (`ModifyDBInstance`, or for
/// `max_connections` `ModifyDBParameterGroup` on its parameter group).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RdsChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_storage: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Apply now rather than in the next maintenance window.
    pub apply_immediately: bool,
}

/// The AWS APIs as much as the tools use them. Lists come back in the
/// API's member shape (one `Instance` of `DescribeInstances`, one
/// `DBInstance` of `DescribeDBInstances`, ...). Asking for a named resource
/// that does not exist is `ToolError::NotFound` naming it, as the API does.
#[async_trait]
pub trait AwsApi: Send + Sync {
    /// Where answers come from, for messages: `AWS us-east-1`.
    fn describe(&self) -> String;
    /// The present: the wall clock live, `world.now` in a replay.
    fn now(&self) -> DateTime<Utc>;

    /// `DescribeInstances` (`Instance`s; all of them when `ids` is empty).
    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Value>, ToolError>;
    /// `DescribeInstanceStatus` with `IncludeAllInstances`.
    async fn describe_instance_status(&self, ids: &[String]) -> Result<Vec<Value>, ToolError>;
    /// `RebootInstances`; with `dry_run` only checked (EC2's `DryRun`).
    async fn reboot_instances(&self, ids: &[String], dry_run: bool) -> Result<(), ToolError>;

    /// `DescribeAutoScalingGroups` (all when `names` is empty).
    async fn describe_auto_scaling_groups(&self, names: &[String])
    -> Result<Vec<Value>, ToolError>;
    /// `DescribeScalingActivities` of one group, newest first.
    async fn describe_scaling_activities(&self, group: &str) -> Result<Vec<Value>, ToolError>;
    /// `SetDesiredCapacity`.
    async fn set_desired_capacity(&self, group: &str, desired: i32) -> Result<(), ToolError>;

    /// `DescribeDBInstances` (all when `id` is `None`).
    async fn describe_db_instances(&self, id: Option<&str>) -> Result<Vec<Value>, ToolError>;
    /// RDS `DescribeEvents` in `window`, for one source or all.
    async fn describe_db_events(
        &self,
        source: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError>;
    /// `RebootDBInstance`; returns the `DBInstance`.
    async fn reboot_db_instance(&self, id: &str, force_failover: bool) -> Result<Value, ToolError>;
    /// `ModifyDBInstance` and/or `ModifyDBParameterGroup`; returns the
    /// `DBInstance` after the call.
    async fn modify_db_instance(&self, id: &str, change: &RdsChange) -> Result<Value, ToolError>;

    /// `DescribeAlarms` `MetricAlarms`, optionally by state and name prefix.
    async fn describe_alarms(
        &self,
        state: Option<&str>,
        name_prefix: Option<&str>,
    ) -> Result<Vec<Value>, ToolError>;
    /// `DescribeAlarmHistory` `AlarmHistoryItems`, newest first.
    async fn describe_alarm_history(
        &self,
        alarm_name: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError>;
    /// `ListMetrics` `Metrics` (`Namespace`, `MetricName`, `Dimensions`).
    async fn list_metrics(
        &self,
        namespace: Option<&str>,
        metric_name: Option<&str>,
    ) -> Result<Vec<Value>, ToolError>;
    /// `GetMetricData` for one statistic, oldest first.
    async fn get_metric_data(&self, query: &MetricQuery) -> Result<Vec<Datapoint>, ToolError>;

    /// CloudWatch Logs `DescribeLogGroups` `logGroups`.
    async fn describe_log_groups(&self, prefix: Option<&str>) -> Result<Vec<Value>, ToolError>;
    /// `FilterLogEvents` `events` (`timestamp` in ms, `message`,
    /// `logStreamName`), oldest first, at most `limit`.
    async fn filter_log_events(
        &self,
        group: &str,
        pattern: Option<&str>,
        window: Window,
        limit: usize,
    ) -> Result<Vec<Value>, ToolError>;

    /// ELBv2 `DescribeLoadBalancers`.
    async fn describe_load_balancers(&self) -> Result<Vec<Value>, ToolError>;
    /// ELBv2 `DescribeTargetGroups`, of one load balancer or all.
    async fn describe_target_groups(
        &self,
        load_balancer_arn: Option<&str>,
    ) -> Result<Vec<Value>, ToolError>;
    /// ELBv2 `DescribeTargetHealth` `TargetHealthDescriptions`.
    async fn describe_target_health(&self, target_group_arn: &str)
    -> Result<Vec<Value>, ToolError>;

    /// ECS `ListServices` then `DescribeServices`: the `Service`s of a cluster.
    async fn describe_ecs_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Value>, ToolError>;
    /// Lambda `ListFunctions` `Functions`.
    async fn list_functions(&self) -> Result<Vec<Value>, ToolError>;
    /// S3 `ListBuckets` `Buckets`.
    async fn list_buckets(&self) -> Result<Vec<Value>, ToolError>;
    /// CloudTrail `LookupEvents` `Events`, newest first, optionally for
    /// one resource name.
    async fn lookup_cloudtrail_events(
        &self,
        resource_name: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError>;
}

/// The string at a JSON pointer such as `/State/Name`.
pub(crate) fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The elements of the array at a JSON pointer; none when it is missing or
/// not an array.
pub(crate) fn items<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The value of tag `key` in a `Tags`/`TagList` array of `{Key, Value}`.
pub(crate) fn tag<'a>(tags: Option<&'a Value>, key: &str) -> Option<&'a str> {
    tags?
        .as_array()?
        .iter()
        .find(|t| text(t, "/Key") == Some(key))
        .and_then(|t| text(t, "/Value"))
}
