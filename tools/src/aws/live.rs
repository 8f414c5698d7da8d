//! The live AWS backend over the AWS SDK for Rust: clients built once from
//! the standard configuration chain (or an endpoint override for an
//! emulator), every operation under the SDK's timeouts with bounded
//! retries, SDK errors mapped to what the agent should do about them.

use super::{AwsApi, Datapoint, MetricQuery, RdsChange, Window, convert};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::DateTime as SdkTime;
use aws_smithy_types::error::display::DisplayErrorContext;
use brain::backends::ToolError;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Pages of one listing read at most; past this the answer is what was read.
const MAX_PAGES: usize = 20;

/// Static credentials, for emulators and tests; otherwise the standard
/// chain (environment, profile, SSO, instance role) is used.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// How to reach AWS.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Region; the chain's (`AWS_REGION`, profile) when `None`.
    pub region: Option<String>,
    /// An endpoint override, e.g. `http://127.0.0.1:4566` for an emulator.
    pub endpoint_url: Option<String>,
    /// A named profile of the shared config files.
    pub profile: Option<String>,
    pub credentials: Option<StaticCredentials>,
    /// Most time for one operation, retries included.
    pub operation_timeout: Duration,
    /// Most attempts per operation (1 = no retry).
    pub max_attempts: u32,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: None,
            endpoint_url: None,
            profile: None,
            credentials: None,
            operation_timeout: Duration::from_secs(20),
            max_attempts: 3,
        }
    }
}

/// The AWS APIs through the SDK's clients.
#[derive(Debug, Clone)]
pub struct LiveAws {
    place: String,
    ec2: aws_sdk_ec2::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    rds: aws_sdk_rds::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ecs: aws_sdk_ecs::Client,
    lambda: aws_sdk_lambda::Client,
    s3: aws_sdk_s3::Client,
    cloudtrail: aws_sdk_cloudtrail::Client,
}

impl LiveAws {
    /// Clients for `config`. Nothing is called yet: bad credentials or an
    /// unreachable endpoint show at the first call, as a readable error.
    pub async fn connect(config: &AwsConfig) -> LiveAws {
        let attempt =
            (config.operation_timeout / config.max_attempts.max(1)).max(Duration::from_secs(1));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(config.operation_timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts.max(1)));
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                None,
                None,
                "cerebro-config",
            ));
        }
        let sdk = loader.load().await;
        let region = sdk
            .region()
            .map_or("(no region)".to_owned(), ToString::to_string);
        let place = match &config.endpoint_url {
            Some(url) => format!("AWS {region} at {url}"),
            None => format!("AWS {region}"),
        };
        // S3 on an emulator answers on one host: path-style addressing.
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(config.endpoint_url.is_some())
            .build();
        LiveAws {
            place,
            ec2: aws_sdk_ec2::Client::new(&sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
            rds: aws_sdk_rds::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            ecs: aws_sdk_ecs::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
        }
    }

    /// What an SDK error means for the agent: retry later, a missing
    /// resource (named), or a backend problem said plainly.
    fn error<E, R>(&self, op: &str, what: Option<String>, err: SdkError<E, R>) -> ToolError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let code = err.code().unwrap_or_default().to_owned();
        let message = err.message().unwrap_or_default().to_owned();
        match &err {
            SdkError::DispatchFailure(_) => {
                return ToolError::Backend(format!(
                    "{op}: cannot reach {}: {}",
                    self.place,
                    DisplayErrorContext(&err)
                ));
            }
            SdkError::TimeoutError(_) => {
                return ToolError::Unavailable(format!(
                    "{op}: {} did not answer in time",
                    self.place
                ));
            }
            _ => {}
        }
        const THROTTLED: &[&str] = &[
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestLimitExceeded",
            "RequestThrottled",
            "RequestThrottledException",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "SlowDown",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "InternalError",
            "InternalFailure",
        ];
        const DENIED: &[&str] = &[
            "AccessDenied",
            "AccessDeniedException",
            "UnauthorizedOperation",
            "AuthFailure",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "ExpiredToken",
            "ExpiredTokenException",
            "SignatureDoesNotMatch",
            "InvalidSignatureException",
        ];
        if THROTTLED.contains(&code.as_str()) {
            ToolError::Unavailable(format!("{op} on {}: {code}: {message}", self.place))
        } else if DENIED.contains(&code.as_str()) {
            ToolError::Backend(format!(
                "{op}: access denied by {} ({code}: {message}); the credentials or their IAM policy do not allow it",
                self.place
            ))
        } else if code.contains("NotFound") || code.starts_with("NoSuch") {
            ToolError::NotFound {
                what: what.unwrap_or_else(|| format!("the resource of {op} ({code}: {message})")),
            }
        } else if code.starts_with("Validation")
            || code.starts_with("InvalidParameter")
            || code == "InvalidDBInstanceState"
        {
            ToolError::InvalidArguments(format!("{op}: {code}: {message}"))
        } else if code.is_empty() {
            ToolError::Backend(format!(
                "{op} on {}: {}",
                self.place,
                DisplayErrorContext(&err)
            ))
        } else {
            ToolError::Backend(format!("{op} on {}: {code}: {message}", self.place))
        }
    }
}

fn sdk_time(t: DateTime<Utc>) -> SdkTime {
    SdkTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

fn build_error(what: &str, e: impl fmt::Display) -> ToolError {
    ToolError::Backend(format!("building the {what} request: {e}"))
}

/// One page of a listing: its items and the token of the next page.
type Page<T> = Result<(Vec<T>, Option<String>), ToolError>;

/// Every item of a paged listing: `page(token)` reads one page (the first
/// with `None`). Stops at the last page or after `MAX_PAGES`.
async fn paged<T, F, Fut>(mut page: F) -> Result<Vec<T>, ToolError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Page<T>>,
{
    paged_up_to(usize::MAX, |token, _| page(token)).await
}

/// As [`paged`], but stops once `limit` items are read; `page(token, read)`
/// is told how many it has so far, to ask for no more than are wanted.
async fn paged_up_to<T, F, Fut>(limit: usize, mut page: F) -> Result<Vec<T>, ToolError>
where
    F: FnMut(Option<String>, usize) -> Fut,
    Fut: Future<Output = Page<T>>,
{
    let mut out = Vec::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let (items, next) = page(token, out.len()).await?;
        out.extend(items);
        // Some services end a listing with an empty token rather than none.
        token = next.filter(|t| !t.is_empty());
        if token.is_none() || out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[async_trait]
impl AwsApi for LiveAws {
    fn describe(&self) -> String {
        self.place.clone()
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Value>, ToolError> {
        let out = paged(|token| async move {
            let mut req = self.ec2.describe_instances().set_next_token(token);
            if !ids.is_empty() {
                req = req.set_instance_ids(Some(ids.to_vec()));
            }
            let page = req.send().await.map_err(|e| {
                self.error(
                    "DescribeInstances",
                    Some(format!("EC2 instance {}", ids.join(", "))),
                    e,
                )
            })?;
            let items = page
                .reservations()
                .iter()
                .flat_map(|r| r.instances().iter().map(convert::instance))
                .collect();
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await?;
        // Some emulators answer unknown ids with nothing; AWS says NotFound.
        let missing: Vec<&str> = ids
            .iter()
            .filter(|id| {
                !out.iter()
                    .any(|i| super::text(i, "/InstanceId") == Some(id.as_str()))
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(ToolError::NotFound {
                what: format!("EC2 instance {}", missing.join(", ")),
            });
        }
        Ok(out)
    }

    async fn describe_instance_status(&self, ids: &[String]) -> Result<Vec<Value>, ToolError> {
        paged(|token| async move {
            let mut req = self
                .ec2
                .describe_instance_status()
                .include_all_instances(true)
                .set_next_token(token);
            if !ids.is_empty() {
                req = req.set_instance_ids(Some(ids.to_vec()));
            }
            let page = req.send().await.map_err(|e| {
                self.error(
                    "DescribeInstanceStatus",
                    Some(format!("EC2 instance {}", ids.join(", "))),
                    e,
                )
            })?;
            let items = page.instance_statuses().iter();
            let items = items.map(convert::instance_status).collect();
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn reboot_instances(&self, ids: &[String], dry_run: bool) -> Result<(), ToolError> {
        let res = self
            .ec2
            .reboot_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .dry_run(dry_run)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // EC2 answers an allowed dry run with this "error".
            Err(e) if dry_run && e.code() == Some("DryRunOperation") => Ok(()),
            Err(e) => Err(self.error(
                "RebootInstances",
                Some(format!("EC2 instance {}", ids.join(", "))),
                e,
            )),
        }
    }

    async fn describe_auto_scaling_groups(
        &self,
        names: &[String],
    ) -> Result<Vec<Value>, ToolError> {
        paged(|token| async move {
            let mut req = self
                .autoscaling
                .describe_auto_scaling_groups()
                .set_next_token(token);
            if !names.is_empty() {
                req = req.set_auto_scaling_group_names(Some(names.to_vec()));
            }
            let page = req
                .send()
                .await
                .map_err(|e| self.error("DescribeAutoScalingGroups", None, e))?;
            let items = page
                .auto_scaling_groups()
                .iter()
                .map(convert::asg)
                .collect();
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn describe_scaling_activities(&self, group: &str) -> Result<Vec<Value>, ToolError> {
        let page = self
            .autoscaling
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(100)
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "DescribeScalingActivities",
                    Some(format!("Auto Scaling group {group}")),
                    e,
                )
            })?;
        let mut out: Vec<Value> = page.activities().iter().map(convert::activity).collect();
        out.sort_by_key(|a| std::cmp::Reverse(super::world::time_at(a, "/StartTime")));
        Ok(out)
    }

    async fn set_desired_capacity(&self, group: &str, desired: i32) -> Result<(), ToolError> {
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                self.error(
                    "SetDesiredCapacity",
                    Some(format!("Auto Scaling group {group}")),
                    e,
                )
            })
    }

    async fn describe_db_instances(&self, id: Option<&str>) -> Result<Vec<Value>, ToolError> {
        let what = id.map(|i| format!("DB instance {i}"));
        let out = paged(|marker| {
            let what = what.clone();
            async move {
                let page = self
                    .rds
                    .describe_db_instances()
                    .set_db_instance_identifier(id.map(str::to_owned))
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| self.error("DescribeDBInstances", what, e))?;
                let items = page.db_instances().iter().map(convert::db).collect();
                Ok((items, page.marker().map(str::to_owned)))
            }
        })
        .await?;
        if let (Some(what), true) = (what, out.is_empty()) {
            return Err(ToolError::NotFound { what });
        }
        Ok(out)
    }

    async fn describe_db_events(
        &self,
        source: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError> {
        let mut req = self
            .rds
            .describe_events()
            .start_time(sdk_time(window.start))
            .end_time(sdk_time(window.end))
            .max_records(100);
        if let Some(s) = source {
            req = req
                .source_identifier(s)
                .source_type(aws_sdk_rds::types::SourceType::DbInstance);
        }
        let page = req.send().await.map_err(|e| {
            self.error(
                "DescribeEvents",
                source.map(|s| format!("DB instance {s}")),
                e,
            )
        })?;
        let mut out: Vec<Value> = page.events().iter().map(convert::db_event).collect();
        out.sort_by_key(|e| super::world::time_at(e, "/Date"));
        Ok(out)
    }

    async fn reboot_db_instance(&self, id: &str, force_failover: bool) -> Result<Value, ToolError> {
        let out = self
            .rds
            .reboot_db_instance()
            .db_instance_identifier(id)
            .force_failover(force_failover)
            .send()
            .await
            .map_err(|e| self.error("RebootDBInstance", Some(format!("DB instance {id}")), e))?;
        match out.db_instance() {
            Some(db) => Ok(convert::db(db)),
            None => self.one_db(id).await,
        }
    }

    async fn modify_db_instance(&self, id: &str, change: &RdsChange) -> Result<Value, ToolError> {
        if let Some(n) = change.max_connections {
            let db = self.one_db(id).await?;
            let group = super::text(&db, "/DBParameterGroups/0/DBParameterGroupName")
                .ok_or_else(|| {
                    ToolError::Backend(format!(
                        "DB instance {id} has no parameter group to set max_connections on"
                    ))
                })?
                .to_owned();
            let parameter = aws_sdk_rds::types::Parameter::builder()
                .parameter_name("max_connections")
                .parameter_value(n.to_string())
                .apply_method(aws_sdk_rds::types::ApplyMethod::PendingReboot)
                .build();
            self.rds
                .modify_db_parameter_group()
                .db_parameter_group_name(&group)
                .parameters(parameter)
                .send()
                .await
                .map_err(|e| {
                    self.error(
                        "ModifyDBParameterGroup",
                        Some(format!("DB parameter group {group}")),
                        e,
                    )
                })?;
        }
        if change.allocated_storage.is_none() && change.instance_class.is_none() {
            return self.one_db(id).await;
        }
        let out = self
            .rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .set_allocated_storage(change.allocated_storage)
            .set_db_instance_class(change.instance_class.clone())
            .apply_immediately(change.apply_immediately)
            .send()
            .await
            .map_err(|e| self.error("ModifyDBInstance", Some(format!("DB instance {id}")), e))?;
        match out.db_instance() {
            Some(db) => Ok(convert::db(db)),
            None => self.one_db(id).await,
        }
    }

    async fn describe_alarms(
        &self,
        state: Option<&str>,
        name_prefix: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        paged(|token| async move {
            let page = self
                .cloudwatch
                .describe_alarms()
                .set_state_value(state.map(aws_sdk_cloudwatch::types::StateValue::from))
                .set_alarm_name_prefix(name_prefix.map(str::to_owned))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| self.error("DescribeAlarms", None, e))?;
            let items = page.metric_alarms().iter().map(convert::alarm).collect();
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn describe_alarm_history(
        &self,
        alarm_name: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError> {
        let page = self
            .cloudwatch
            .describe_alarm_history()
            .set_alarm_name(alarm_name.map(str::to_owned))
            .start_date(sdk_time(window.start))
            .end_date(sdk_time(window.end))
            .scan_by(aws_sdk_cloudwatch::types::ScanBy::TimestampDescending)
            .max_records(100)
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "DescribeAlarmHistory",
                    alarm_name.map(|n| format!("alarm {n}")),
                    e,
                )
            })?;
        let mut out: Vec<Value> = page
            .alarm_history_items()
            .iter()
            .map(convert::alarm_history)
            .collect();
        out.sort_by_key(|h| std::cmp::Reverse(super::world::time_at(h, "/Timestamp")));
        Ok(out)
    }

    async fn list_metrics(
        &self,
        namespace: Option<&str>,
        metric_name: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        paged(|token| async move {
            let page = self
                .cloudwatch
                .list_metrics()
                .set_namespace(namespace.map(str::to_owned))
                .set_metric_name(metric_name.map(str::to_owned))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| self.error("ListMetrics", None, e))?;
            let items = page.metrics().iter().map(convert::metric).collect();
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn get_metric_data(&self, q: &MetricQuery) -> Result<Vec<Datapoint>, ToolError> {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
        let dims: Vec<Dimension> = q
            .dimensions
            .iter()
            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
            .collect();
        let metric = Metric::builder()
            .namespace(&q.namespace)
            .metric_name(&q.metric_name)
            .set_dimensions(Some(dims))
            .build();
        let period = i32::try_from(q.period).unwrap_or(i32::MAX);
        let stat = MetricStat::builder()
            .metric(metric)
            .period(period)
            .stat(&q.stat)
            .build();
        let query = MetricDataQuery::builder()
            .id("m0")
            .metric_stat(stat)
            .return_data(true)
            .build();
        let query = &query;
        let mut points = paged(|token| async move {
            let page = self
                .cloudwatch
                .get_metric_data()
                .metric_data_queries(query.clone())
                .start_time(sdk_time(q.window.start))
                .end_time(sdk_time(q.window.end))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| self.error("GetMetricData", None, e))?;
            let mut items = Vec::new();
            for r in page.metric_data_results() {
                for (t, v) in r.timestamps().iter().zip(r.values()) {
                    if let Some(at) = DateTime::from_timestamp(t.secs(), t.subsec_nanos()) {
                        items.push(Datapoint { at, value: *v });
                    }
                }
            }
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await?;
        points.sort_by_key(|p| p.at);
        Ok(points)
    }

    async fn describe_log_groups(&self, prefix: Option<&str>) -> Result<Vec<Value>, ToolError> {
        paged(|token| async move {
            let page = self
                .logs
                .describe_log_groups()
                .set_log_group_name_prefix(prefix.map(str::to_owned))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| self.error("DescribeLogGroups", None, e))?;
            let items = page.log_groups().iter().map(convert::log_group).collect();
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn filter_log_events(
        &self,
        group: &str,
        pattern: Option<&str>,
        window: Window,
        limit: usize,
    ) -> Result<Vec<Value>, ToolError> {
        let mut out = paged_up_to(limit, |token, read| async move {
            let page = self
                .logs
                .filter_log_events()
                .log_group_name(group)
                .set_filter_pattern(pattern.map(str::to_owned))
                .start_time(window.start.timestamp_millis())
                .end_time(window.end.timestamp_millis())
                .limit(i32::try_from(limit.saturating_sub(read)).unwrap_or(10_000))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    self.error("FilterLogEvents", Some(format!("log group {group}")), e)
                })?;
            let items = page.events().iter().map(convert::log_event).collect();
            Ok((items, page.next_token().map(str::to_owned)))
        })
        .await?;
        out.sort_by_key(|e| e.get("timestamp").and_then(Value::as_i64));
        out.truncate(limit);
        Ok(out)
    }

    async fn describe_load_balancers(&self) -> Result<Vec<Value>, ToolError> {
        paged(|marker| async move {
            let page = self
                .elb
                .describe_load_balancers()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| self.error("DescribeLoadBalancers", None, e))?;
            let items = page.load_balancers().iter().map(convert::load_balancer);
            Ok((items.collect(), page.next_marker().map(str::to_owned)))
        })
        .await
    }

    async fn describe_target_groups(
        &self,
        load_balancer_arn: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        paged(|marker| async move {
            let page = self
                .elb
                .describe_target_groups()
                .set_load_balancer_arn(load_balancer_arn.map(str::to_owned))
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| {
                    self.error(
                        "DescribeTargetGroups",
                        load_balancer_arn.map(|a| format!("load balancer {a}")),
                        e,
                    )
                })?;
            let items = page.target_groups().iter().map(convert::target_group);
            Ok((items.collect(), page.next_marker().map(str::to_owned)))
        })
        .await
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<Value>, ToolError> {
        let page = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "DescribeTargetHealth",
                    Some(format!("target group {target_group_arn}")),
                    e,
                )
            })?;
        Ok(page
            .target_health_descriptions()
            .iter()
            .map(convert::target_health)
            .collect())
    }

    async fn describe_ecs_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Value>, ToolError> {
        let what = || Some(format!("ECS cluster {cluster}"));
        let mut names = names.to_vec();
        if names.is_empty() {
            names = paged(|token| async move {
                let page = self
                    .ecs
                    .list_services()
                    .cluster(cluster)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| self.error("ListServices", what(), e))?;
                let arns = page.service_arns().to_vec();
                Ok((arns, page.next_token().map(str::to_owned)))
            })
            .await?;
        }
        let mut out = Vec::new();
        // DescribeServices takes at most 10 services per call.
        for chunk in names.chunks(10) {
            let page = self
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| self.error("DescribeServices", what(), e))?;
            out.extend(page.services().iter().map(convert::ecs_service));
        }
        Ok(out)
    }

    async fn list_functions(&self) -> Result<Vec<Value>, ToolError> {
        paged(|marker| async move {
            let page = self
                .lambda
                .list_functions()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| self.error("ListFunctions", None, e))?;
            let items = page.functions().iter().map(convert::function).collect();
            Ok((items, page.next_marker().map(str::to_owned)))
        })
        .await
    }

    async fn list_buckets(&self) -> Result<Vec<Value>, ToolError> {
        let page = self
            .s3
            .list_buckets()
            .send()
            .await
            .map_err(|e| self.error("ListBuckets", None, e))?;
        Ok(page.buckets().iter().map(convert::bucket).collect())
    }

    async fn lookup_cloudtrail_events(
        &self,
        resource_name: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError> {
        use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
        let mut req = self
            .cloudtrail
            .lookup_events()
            .start_time(sdk_time(window.start))
            .end_time(sdk_time(window.end))
            .max_results(50);
        if let Some(r) = resource_name {
            let attr = LookupAttribute::builder()
                .attribute_key(LookupAttributeKey::ResourceName)
                .attribute_value(r)
                .build()
                .map_err(|e| build_error("LookupEvents", e))?;
            req = req.lookup_attributes(attr);
        }
        let page = req
            .send()
            .await
            .map_err(|e| self.error("LookupEvents", None, e))?;
        let mut out: Vec<Value> = page.events().iter().map(convert::trail_event).collect();
        out.sort_by_key(|e| std::cmp::Reverse(super::world::time_at(e, "/EventTime")));
        Ok(out)
    }
}

impl LiveAws {
    async fn one_db(&self, id: &str) -> Result<Value, ToolError> {
        self.describe_db_instances(Some(id))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ToolError::NotFound {
                what: format!("DB instance {id}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::config::http::HttpResponse;
    use aws_sdk_ec2::error::ErrorMetadata;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesError;
    use aws_smithy_types::body::SdkBody;

    fn service_error(status: u16, code: &str) -> SdkError<DescribeInstancesError, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("said the service")
            .build();
        SdkError::service_error(
            DescribeInstancesError::generic(meta),
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    #[tokio::test]
    async fn paging_stops_at_the_last_page_the_page_limit_or_enough_items() {
        let endless = |token: Option<String>| async move {
            let n = token.map_or(0, |t| t.parse::<usize>().unwrap());
            Ok((vec![n], Some((n + 1).to_string())))
        };
        assert_eq!(paged(endless).await.unwrap().len(), MAX_PAGES);
        let read = paged_up_to(3, |token, _| endless(token)).await.unwrap();
        assert_eq!(read, vec![0, 1, 2]);
        let empty_token_ends = paged(|token: Option<String>| async move {
            let next = if token.is_none() { "" } else { "more" };
            Ok((vec![1], Some(next.to_owned())))
        });
        assert_eq!(empty_token_ends.await.unwrap(), vec![1]);
        let failing = paged::<u8, _, _>(|_| async { Err(ToolError::Unavailable("x".into())) });
        assert!(matches!(failing.await, Err(ToolError::Unavailable(_))));
    }

    #[tokio::test]
    async fn service_errors_map_to_what_the_agent_should_do() {
        let aws = LiveAws::connect(&AwsConfig {
            region: Some("us-east-1".into()),
            endpoint_url: Some("http://127.0.0.1:9".into()),
            ..AwsConfig::default()
        })
        .await;
        let what = || Some("EC2 instance i-0abc".to_owned());
        let e = aws.error(
            "DescribeInstances",
            what(),
            service_error(503, "RequestLimitExceeded"),
        );
        assert!(matches!(e, ToolError::Unavailable(_)), "{e}");
        let e = aws.error(
            "DescribeInstances",
            what(),
            service_error(403, "UnauthorizedOperation"),
        );
        assert!(
            matches!(e, ToolError::Backend(ref m) if m.contains("access denied") && m.contains("IAM policy")),
            "{e}"
        );
        let e = aws.error(
            "DescribeInstances",
            what(),
            service_error(400, "InvalidInstanceID.NotFound"),
        );
        assert!(
            matches!(e, ToolError::NotFound { ref what } if what == "EC2 instance i-0abc"),
            "{e}"
        );
        let e = aws.error(
            "DescribeDBInstances",
            None,
            service_error(404, "DBInstanceNotFound"),
        );
        assert!(
            matches!(e, ToolError::NotFound { ref what } if what.contains("DBInstanceNotFound")),
            "{e}"
        );
        let e = aws.error(
            "SetDesiredCapacity",
            None,
            service_error(400, "ValidationError"),
        );
        assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
        let e = aws.error("DescribeInstances", None, service_error(500, "Boom"));
        assert!(
            matches!(e, ToolError::Backend(ref m) if m == "DescribeInstances on AWS us-east-1 at http://127.0.0.1:9: Boom: said the service"),
            "{e}"
        );
    }
}
