//! The AWS tools an agent reads with, over any [`AwsApi`] (the CloudWatch
//! ones are in `cloudwatch.rs`, the tools that act in `actions.rs`).
//! Filters the APIs lack (tags, states, name parts) are applied here, so
//! the live API and the replay filter alike.

use super::args::{
    AlarmHistoryArgs, AlarmsArgs, AsgActivitiesArgs, AsgArgs, Ec2Args, EcsClusterArgs,
    EcsServiceArgs, LambdaErrorsArgs, LambdaListArgs, ListAsgArgs, ListEc2Args, ListMetricsArgs,
    LogGroupsArgs, LogsArgs, MetricArgs, NoArgs, RdsArgs, RdsEventsArgs, S3MetricsArgs, StatusArgs,
    TargetGroupsArgs, TargetHealthArgs, TrailArgs,
};
use super::{AwsApi, Window, actions, cloudwatch, format, items, text};
use crate::typed;
use async_trait::async_trait;
use brain::backends::{ToolBackend, ToolError, ToolOutput, ToolSpec};
use brain::scenario::resolve_time;
use brain::vocabulary::Risk;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// The AWS tools over one [`AwsApi`].
#[derive(Clone)]
pub struct AwsTools {
    api: Arc<dyn AwsApi>,
}

impl AwsTools {
    pub fn new(api: Arc<dyn AwsApi>) -> AwsTools {
        AwsTools { api }
    }
}

pub(crate) fn output(text: String, data: Value) -> ToolOutput {
    ToolOutput {
        text,
        data,
        truncated: false,
    }
}

fn read<A: JsonSchema>(name: &str, description: &str) -> ToolSpec {
    typed::spec::<A>(name, description, Risk::Read, TIMEOUT)
}

fn read_specs() -> Vec<ToolSpec> {
    vec![
        read::<ListEc2Args>(
            "list_ec2_instances",
            "List EC2 instances, one line each: id, state, type, private IP, zone, launch time, tags. Filter by state, tag (env=prod) or ids.",
        ),
        read::<Ec2Args>(
            "describe_ec2_instance",
            "Describe one EC2 instance: state and reason, type, network, launch time, tags.",
        ),
        read::<StatusArgs>(
            "get_ec2_status_checks",
            "EC2 system and instance status checks (ok/impaired/initializing) and scheduled events. Use when an instance is unreachable or its host may be failing.",
        ),
        read::<ListAsgArgs>(
            "list_autoscaling_groups",
            "List Auto Scaling groups: desired/min/max capacity and how many instances are in service and healthy.",
        ),
        read::<AsgArgs>(
            "describe_autoscaling_group",
            "Describe one Auto Scaling group with its instances (lifecycle state, health, zone).",
        ),
        read::<AsgActivitiesArgs>(
            "list_autoscaling_activities",
            "Recent scaling activities of an Auto Scaling group, newest first, with their cause: launches, terminations, failures to launch.",
        ),
        read::<NoArgs>(
            "list_rds_instances",
            "List RDS DB instances: status, class, engine, storage, Multi-AZ, endpoint, pending changes, tags.",
        ),
        read::<RdsArgs>(
            "describe_rds_instance",
            "Describe one RDS DB instance, with its parameter groups and pending modifications.",
        ),
        read::<RdsEventsArgs>(
            "list_rds_events",
            "RDS events (reboots, failovers, backups, storage full, configuration changes) in a window, oldest first.",
        ),
        read::<AlarmsArgs>(
            "list_cloudwatch_alarms",
            "List CloudWatch metric alarms with state, since when, the metric and threshold, and the state reason. Filter by state (ALARM) or name prefix.",
        ),
        read::<AlarmHistoryArgs>(
            "describe_alarm_history",
            "CloudWatch alarm history: state changes and configuration updates, newest first.",
        ),
        read::<MetricArgs>(
            "get_cloudwatch_metric",
            "Fetch one CloudWatch metric statistic over a window, summarised (min, max, last, trend) with the datapoints. Dimensions must be all of the metric's dimensions.",
        ),
        read::<ListMetricsArgs>(
            "list_cloudwatch_metrics",
            "List the CloudWatch metrics that exist, with their dimensions; use before get_cloudwatch_metric to find names and dimensions.",
        ),
        read::<LogGroupsArgs>(
            "list_log_groups",
            "List CloudWatch Logs log groups, to find where a service writes before querying its logs.",
        ),
        read::<LogsArgs>(
            "query_cloudwatch_logs",
            "Search a CloudWatch Logs group with a filter pattern over a window; returns matching events, oldest first.",
        ),
        read::<NoArgs>(
            "list_load_balancers",
            "List ELBv2 load balancers (application/network): type, scheme, state, DNS name, ARN.",
        ),
        read::<TargetGroupsArgs>(
            "list_target_groups",
            "List ELBv2 target groups: protocol, port, target type, health check, ARN.",
        ),
        read::<TargetHealthArgs>(
            "get_target_health",
            "Health of each target in an ELBv2 target group (healthy, unhealthy, draining) with the reason.",
        ),
        read::<EcsClusterArgs>(
            "list_ecs_services",
            "List the ECS services of a cluster: running/desired/pending tasks, deployments, task definition.",
        ),
        read::<EcsServiceArgs>(
            "describe_ecs_service",
            "Describe one ECS service: running/desired tasks, its deployments (rollout state, failed tasks) and its latest events.",
        ),
        read::<LambdaListArgs>(
            "list_lambda_functions",
            "List Lambda functions: runtime, memory, timeout, state, last modified.",
        ),
        read::<LambdaErrorsArgs>(
            "get_lambda_errors",
            "A Lambda function's Invocations, Errors and Throttles (CloudWatch sums) over a window, with the error rate.",
        ),
        read::<NoArgs>(
            "list_s3_buckets",
            "List S3 buckets with their creation dates.",
        ),
        read::<S3MetricsArgs>(
            "get_s3_request_metrics",
            "An S3 bucket's request metrics (AllRequests, 4xxErrors, 5xxErrors sums) over a window; needs request metrics enabled on the bucket.",
        ),
        read::<TrailArgs>(
            "lookup_cloudtrail_events",
            "Recent CloudTrail management events (who changed what: API calls such as ModifyDBInstance, UpdateAutoScalingGroup), newest first, optionally for one resource.",
        ),
    ]
}

#[async_trait]
impl ToolBackend for AwsTools {
    fn name(&self) -> &str {
        "aws"
    }

    /// The resource a tool that acts would change, named as the spec names
    /// AWS components (`aws/ec2/i-…`, `aws/asg/web-asg`, `aws/rds/orders-db`).
    fn target(&self, tool: &str, args: &Value) -> Option<String> {
        let arg = |k: &str| args.get(k).and_then(Value::as_str);
        match tool {
            "reboot_ec2_instance" => Some(format!("aws/ec2/{}", arg("instance_id")?)),
            "set_asg_desired_capacity" => Some(format!("aws/asg/{}", arg("name")?)),
            "reboot_rds_instance" | "modify_rds_instance" => {
                Some(format!("aws/rds/{}", arg("db_instance_identifier")?))
            }
            _ => None,
        }
    }

    fn tools(&self) -> Vec<ToolSpec> {
        let mut specs = read_specs();
        specs.extend(actions::specs());
        specs
    }

    async fn call(&self, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        let api = self.api.as_ref();
        match tool {
            "list_ec2_instances" => list_ec2(api, typed::parse(args)?).await,
            "describe_ec2_instance" => describe_ec2(api, typed::parse(args)?).await,
            "get_ec2_status_checks" => status_checks(api, typed::parse(args)?).await,
            "list_autoscaling_groups" => list_asgs(api, typed::parse(args)?).await,
            "describe_autoscaling_group" => describe_asg(api, typed::parse(args)?).await,
            "list_autoscaling_activities" => asg_activities(api, typed::parse(args)?).await,
            "list_rds_instances" => {
                typed::parse::<NoArgs>(args)?;
                list_dbs(api, None).await
            }
            "describe_rds_instance" => {
                let a: RdsArgs = typed::parse(args)?;
                list_dbs(api, Some(&a.db_instance_identifier)).await
            }
            "list_rds_events" => rds_events(api, typed::parse(args)?).await,
            "list_cloudwatch_alarms" => cloudwatch::alarms(api, typed::parse(args)?).await,
            "describe_alarm_history" => cloudwatch::alarm_history(api, typed::parse(args)?).await,
            "get_cloudwatch_metric" => cloudwatch::metric(api, typed::parse(args)?).await,
            "list_cloudwatch_metrics" => cloudwatch::list_metrics(api, typed::parse(args)?).await,
            "list_log_groups" => log_groups(api, typed::parse(args)?).await,
            "query_cloudwatch_logs" => logs(api, typed::parse(args)?).await,
            "list_load_balancers" => {
                typed::parse::<NoArgs>(args)?;
                let lbs = api.describe_load_balancers().await?;
                Ok(lines(
                    "load balancers",
                    &lbs,
                    format::load_balancer,
                    json!({"load_balancers": lbs}),
                ))
            }
            "list_target_groups" => {
                let a: TargetGroupsArgs = typed::parse(args)?;
                let tgs = api
                    .describe_target_groups(a.load_balancer_arn.as_deref())
                    .await?;
                Ok(lines(
                    "target groups",
                    &tgs,
                    format::target_group,
                    json!({"target_groups": tgs}),
                ))
            }
            "get_target_health" => target_health(api, typed::parse(args)?).await,
            "list_ecs_services" => {
                let a: EcsClusterArgs = typed::parse(args)?;
                let services = api.describe_ecs_services(&a.cluster, &[]).await?;
                Ok(lines(
                    "ECS services",
                    &services,
                    format::ecs_service,
                    json!({"services": services}),
                ))
            }
            "describe_ecs_service" => ecs_service(api, typed::parse(args)?).await,
            "list_lambda_functions" => {
                let a: LambdaListArgs = typed::parse(args)?;
                let fs: Vec<Value> = api
                    .list_functions()
                    .await?
                    .into_iter()
                    .filter(|f| {
                        a.name_contains
                            .as_deref()
                            .is_none_or(|n| text(f, "/FunctionName").is_some_and(|x| x.contains(n)))
                    })
                    .collect();
                Ok(lines(
                    "Lambda functions",
                    &fs,
                    format::lambda,
                    json!({"functions": fs}),
                ))
            }
            "get_lambda_errors" => cloudwatch::lambda_errors(api, typed::parse(args)?).await,
            "list_s3_buckets" => {
                typed::parse::<NoArgs>(args)?;
                let now = api.now();
                let bs = api.list_buckets().await?;
                Ok(lines(
                    "S3 buckets",
                    &bs,
                    |b| format::bucket(b, now),
                    json!({"buckets": bs}),
                ))
            }
            "get_s3_request_metrics" => cloudwatch::s3_metrics(api, typed::parse(args)?).await,
            "lookup_cloudtrail_events" => trail(api, typed::parse(args)?).await,
            other if actions::handles(other) => actions::call(api, other, args).await,
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }
}

/// One line per item under a count, or a sentence saying there are none.
pub(crate) fn lines(
    what: &str,
    items: &[Value],
    line: impl Fn(&Value) -> String,
    data: Value,
) -> ToolOutput {
    let text = if items.is_empty() {
        format!("no {what}")
    } else {
        let mut t = format!("{} {what}:\n", items.len());
        for i in items {
            t.push_str(&line(i));
            t.push('\n');
        }
        t
    };
    output(text, data)
}

/// The window of `start`..`end` (offsets from the API's now), `start`
/// defaulting to `default_back` before now.
pub(crate) fn window(
    api: &dyn AwsApi,
    start: Option<&str>,
    end: Option<&str>,
    default_back: chrono::Duration,
) -> Result<Window, ToolError> {
    let now = api.now();
    let at = |field: &str, t: &str| -> Result<DateTime<Utc>, ToolError> {
        resolve_time(t, now).map_err(|e| ToolError::InvalidArguments(format!("`{field}`: {e}")))
    };
    let end = end.map(|t| at("end", t)).transpose()?.unwrap_or(now);
    let start = start
        .map(|t| at("start", t))
        .transpose()?
        .unwrap_or(end - default_back);
    if start >= end {
        return Err(ToolError::InvalidArguments(format!(
            "`start` ({start}) must be before `end` ({end})"
        )));
    }
    Ok(Window { start, end })
}

async fn list_ec2(api: &dyn AwsApi, a: ListEc2Args) -> Result<ToolOutput, ToolError> {
    let ids = a.instance_ids.unwrap_or_default();
    let now = api.now();
    let instances: Vec<Value> = api
        .describe_instances(&ids)
        .await?
        .into_iter()
        .filter(|i| {
            a.state
                .as_deref()
                .is_none_or(|s| text(i, "/State/Name") == Some(s))
        })
        .filter(|i| {
            a.tag
                .as_deref()
                .is_none_or(|t| format::has_tag(i.get("Tags"), t))
        })
        .collect();
    Ok(lines(
        "EC2 instances",
        &instances,
        |i| format::instance(i, now),
        json!({"instances": instances}),
    ))
}

async fn describe_ec2(api: &dyn AwsApi, a: Ec2Args) -> Result<ToolOutput, ToolError> {
    let ids = vec![a.instance_id.clone()];
    let instance = api
        .describe_instances(&ids)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ToolError::NotFound {
            what: format!("EC2 instance {}", a.instance_id),
        })?;
    let mut text = format::instance(&instance, api.now());
    for (label, pointer) in [
        ("state reason", "/StateReason/Message"),
        ("state transition", "/StateTransitionReason"),
        ("image", "/ImageId"),
        ("vpc", "/VpcId"),
        ("subnet", "/SubnetId"),
        ("public ip", "/PublicIpAddress"),
        ("key", "/KeyName"),
        ("iam profile", "/IamInstanceProfile/Arn"),
    ] {
        if let Some(v) = super::text(&instance, pointer).filter(|v| !v.is_empty()) {
            text.push_str(&format!("\n{label}: {v}"));
        }
    }
    Ok(output(text, json!({"instance": instance})))
}

async fn status_checks(api: &dyn AwsApi, a: StatusArgs) -> Result<ToolOutput, ToolError> {
    let ids = a.instance_ids.unwrap_or_default();
    let statuses: Vec<Value> = api
        .describe_instance_status(&ids)
        .await?
        .into_iter()
        .filter(|s| {
            !a.only_impaired
                || ["/SystemStatus/Status", "/InstanceStatus/Status"]
                    .iter()
                    .any(|p| text(s, p).is_some_and(|v| v != "ok"))
        })
        .collect();
    Ok(lines(
        "instance statuses",
        &statuses,
        format::status,
        json!({"statuses": statuses}),
    ))
}

async fn list_asgs(api: &dyn AwsApi, a: ListAsgArgs) -> Result<ToolOutput, ToolError> {
    let groups: Vec<Value> = api
        .describe_auto_scaling_groups(&[])
        .await?
        .into_iter()
        .filter(|g| {
            a.name_contains
                .as_deref()
                .is_none_or(|n| text(g, "/AutoScalingGroupName").is_some_and(|x| x.contains(n)))
        })
        .collect();
    Ok(lines(
        "Auto Scaling groups",
        &groups,
        format::asg,
        json!({"groups": groups}),
    ))
}

pub(crate) async fn one_asg(api: &dyn AwsApi, name: &str) -> Result<Value, ToolError> {
    api.describe_auto_scaling_groups(&[name.to_owned()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ToolError::NotFound {
            what: format!("Auto Scaling group {name}"),
        })
}

async fn describe_asg(api: &dyn AwsApi, a: AsgArgs) -> Result<ToolOutput, ToolError> {
    let g = one_asg(api, &a.name).await?;
    let mut text = format::asg(&g);
    for i in items(&g, "/Instances") {
        text.push('\n');
        text.push_str(&format::asg_instance(i));
    }
    Ok(output(text, json!({"group": g})))
}

async fn asg_activities(api: &dyn AwsApi, a: AsgActivitiesArgs) -> Result<ToolOutput, ToolError> {
    let mut acts = api.describe_scaling_activities(&a.name).await?;
    acts.truncate(a.limit.unwrap_or(10).clamp(1, 100));
    let now = api.now();
    Ok(lines(
        "scaling activities",
        &acts,
        |x| format::activity(x, now),
        json!({"activities": acts}),
    ))
}

async fn list_dbs(api: &dyn AwsApi, id: Option<&str>) -> Result<ToolOutput, ToolError> {
    let dbs = api.describe_db_instances(id).await?;
    match (id, dbs.first()) {
        (Some(_), Some(db)) => {
            let mut text = format::db(db);
            for g in items(db, "/DBParameterGroups") {
                text.push_str(&format!(
                    "\nparameter group {} {}",
                    super::text(g, "/DBParameterGroupName").unwrap_or("-"),
                    super::text(g, "/ParameterApplyStatus").unwrap_or("-")
                ));
            }
            for (label, pointer) in [
                ("zone", "/AvailabilityZone"),
                ("standby zone", "/SecondaryAvailabilityZone"),
                ("maintenance window", "/PreferredMaintenanceWindow"),
            ] {
                if let Some(v) = super::text(db, pointer) {
                    text.push_str(&format!("\n{label}: {v}"));
                }
            }
            Ok(output(text, json!({"instance": db})))
        }
        _ => Ok(lines(
            "DB instances",
            &dbs,
            format::db,
            json!({"instances": dbs}),
        )),
    }
}

async fn rds_events(api: &dyn AwsApi, a: RdsEventsArgs) -> Result<ToolOutput, ToolError> {
    let w = window(
        api,
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Duration::hours(24),
    )?;
    let id = a.db_instance_identifier.as_deref();
    if let Some(id) = id {
        // An unknown identifier is an error, not a quiet empty list.
        api.describe_db_instances(Some(id)).await?;
    }
    let events = api.describe_db_events(id, w).await?;
    let now = api.now();
    Ok(lines(
        "RDS events",
        &events,
        |e| format::db_event(e, now),
        json!({"events": events}),
    ))
}

async fn log_groups(api: &dyn AwsApi, a: LogGroupsArgs) -> Result<ToolOutput, ToolError> {
    let groups = api.describe_log_groups(a.prefix.as_deref()).await?;
    Ok(lines(
        "log groups",
        &groups,
        |g| {
            format!(
                "{} stored {} bytes",
                text(g, "/logGroupName").unwrap_or("-"),
                g.get("storedBytes")
                    .map_or("-".to_owned(), Value::to_string)
            )
        },
        json!({"log_groups": groups}),
    ))
}

async fn logs(api: &dyn AwsApi, a: LogsArgs) -> Result<ToolOutput, ToolError> {
    let w = window(
        api,
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Duration::hours(1),
    )?;
    let limit = a.limit.unwrap_or(50).clamp(1, 500);
    let pattern = a.pattern.as_deref().filter(|p| !p.trim().is_empty());
    let events = api
        .filter_log_events(&a.log_group, pattern, w, limit)
        .await?;
    Ok(lines(
        "log events",
        &events,
        format::log_event,
        json!({"events": events}),
    ))
}

async fn target_health(api: &dyn AwsApi, a: TargetHealthArgs) -> Result<ToolOutput, ToolError> {
    let arn = if a.target_group.starts_with("arn:") {
        a.target_group.clone()
    } else {
        api.describe_target_groups(None)
            .await?
            .iter()
            .find(|tg| text(tg, "/TargetGroupName") == Some(a.target_group.as_str()))
            .and_then(|tg| text(tg, "/TargetGroupArn"))
            .map(str::to_owned)
            .ok_or_else(|| ToolError::NotFound {
                what: format!("target group {}", a.target_group),
            })?
    };
    let targets = api.describe_target_health(&arn).await?;
    let healthy = targets
        .iter()
        .filter(|t| text(t, "/TargetHealth/State") == Some("healthy"))
        .count();
    let mut out = lines(
        "targets",
        &targets,
        format::target_health,
        json!({"target_group_arn": arn, "targets": targets, "healthy": healthy}),
    );
    out.text = format!("{healthy} of {} healthy; {}", targets.len(), out.text);
    Ok(out)
}

async fn ecs_service(api: &dyn AwsApi, a: EcsServiceArgs) -> Result<ToolOutput, ToolError> {
    let s = api
        .describe_ecs_services(&a.cluster, std::slice::from_ref(&a.service))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ToolError::NotFound {
            what: format!("ECS service {} in cluster {}", a.service, a.cluster),
        })?;
    let now = api.now();
    let mut text = format::ecs_service(&s);
    for d in items(&s, "/deployments") {
        text.push('\n');
        text.push_str(&format::ecs_deployment(d, now));
    }
    for e in items(&s, "/events").take(10) {
        text.push_str(&format!(
            "\n  {} {}",
            format::when(super::world::time_at(e, "/createdAt"), now),
            super::text(e, "/message").unwrap_or("-")
        ));
    }
    Ok(output(text, json!({"service": s})))
}

async fn trail(api: &dyn AwsApi, a: TrailArgs) -> Result<ToolOutput, ToolError> {
    let w = window(
        api,
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Duration::hours(24),
    )?;
    let mut events = api
        .lookup_cloudtrail_events(a.resource_name.as_deref(), w)
        .await?;
    events.truncate(a.limit.unwrap_or(50).clamp(1, 200));
    let now = api.now();
    Ok(lines(
        "CloudTrail events",
        &events,
        |e| format::trail_event(e, now),
        json!({"events": events}),
    ))
}
