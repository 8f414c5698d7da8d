//! The AWS SDK's output structs as the APIs' JSON (PascalCase members, as
//! in `world.aws`), for the members the tools show. Absent members are
//! left out rather than written as `null`.

use super::world::rfc3339;
use aws_smithy_types::DateTime as SdkTime;
use serde_json::{Value, json};

/// An SDK time as RFC 3339 (milliseconds, `Z`), as the replay writes it.
pub(crate) fn time(t: Option<&SdkTime>) -> Option<String> {
    let t = t?;
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()).map(rfc3339)
}

/// `v` without its `null` members, recursively.
pub(crate) fn prune(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, prune(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(prune).collect()),
        other => other,
    }
}

fn kv<'a>(pairs: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Value {
    Value::Array(pairs.map(|(k, v)| json!({"Key": k, "Value": v})).collect())
}

pub(crate) fn instance(i: &aws_sdk_ec2::types::Instance) -> Value {
    prune(json!({
        "InstanceId": i.instance_id(),
        "InstanceType": i.instance_type().map(|t| t.as_str()),
        "State": i.state().map(|s| json!({"Name": s.name().map(|n| n.as_str()), "Code": s.code()})),
        "StateReason": i.state_reason().map(|r| json!({"Code": r.code(), "Message": r.message()})),
        "StateTransitionReason": i.state_transition_reason(),
        "PrivateIpAddress": i.private_ip_address(),
        "PublicIpAddress": i.public_ip_address(),
        "ImageId": i.image_id(),
        "VpcId": i.vpc_id(),
        "SubnetId": i.subnet_id(),
        "KeyName": i.key_name(),
        "Placement": i.placement().map(|p| json!({"AvailabilityZone": p.availability_zone()})),
        "LaunchTime": time(i.launch_time()),
        "IamInstanceProfile": i.iam_instance_profile().map(|p| json!({"Arn": p.arn()})),
        "Tags": kv(i.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

fn status_summary(s: Option<&aws_sdk_ec2::types::InstanceStatusSummary>) -> Value {
    s.map_or(Value::Null, |s| {
        json!({
            "Status": s.status().map(|x| x.as_str()),
            "Details": s.details().iter().map(|d| json!({
                "Name": d.name().map(|x| x.as_str()),
                "Status": d.status().map(|x| x.as_str()),
            })).collect::<Vec<_>>(),
        })
    })
}

pub(crate) fn instance_status(s: &aws_sdk_ec2::types::InstanceStatus) -> Value {
    prune(json!({
        "InstanceId": s.instance_id(),
        "AvailabilityZone": s.availability_zone(),
        "InstanceState": s.instance_state().map(|st| json!({"Name": st.name().map(|n| n.as_str()), "Code": st.code()})),
        "SystemStatus": status_summary(s.system_status()),
        "InstanceStatus": status_summary(s.instance_status()),
        "Events": s.events().iter().map(|e| json!({
            "Code": e.code().map(|c| c.as_str()),
            "Description": e.description(),
            "NotBefore": time(e.not_before()),
        })).collect::<Vec<_>>(),
    }))
}

pub(crate) fn asg(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Value {
    prune(json!({
        "AutoScalingGroupName": g.auto_scaling_group_name(),
        "AutoScalingGroupARN": g.auto_scaling_group_arn(),
        "MinSize": g.min_size(),
        "MaxSize": g.max_size(),
        "DesiredCapacity": g.desired_capacity(),
        "AvailabilityZones": g.availability_zones(),
        "HealthCheckType": g.health_check_type(),
        "CreatedTime": time(g.created_time()),
        "Instances": g.instances().iter().map(|i| json!({
            "InstanceId": i.instance_id(),
            "InstanceType": i.instance_type(),
            "AvailabilityZone": i.availability_zone(),
            "LifecycleState": i.lifecycle_state().map(|s| s.as_str()),
            "HealthStatus": i.health_status(),
        })).collect::<Vec<_>>(),
        "Tags": kv(g.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

pub(crate) fn activity(a: &aws_sdk_autoscaling::types::Activity) -> Value {
    prune(json!({
        "ActivityId": a.activity_id(),
        "AutoScalingGroupName": a.auto_scaling_group_name(),
        "Description": a.description(),
        "Cause": a.cause(),
        "StartTime": time(a.start_time()),
        "EndTime": time(a.end_time()),
        "StatusCode": a.status_code().map(|s| s.as_str()),
        "StatusMessage": a.status_message(),
    }))
}

pub(crate) fn db(d: &aws_sdk_rds::types::DbInstance) -> Value {
    let pending = d.pending_modified_values().map(|p| {
        json!({
            "AllocatedStorage": p.allocated_storage(),
            "DBInstanceClass": p.db_instance_class(),
        })
    });
    prune(json!({
        "DBInstanceIdentifier": d.db_instance_identifier(),
        "DBInstanceArn": d.db_instance_arn(),
        "DBInstanceClass": d.db_instance_class(),
        "Engine": d.engine(),
        "EngineVersion": d.engine_version(),
        "DBInstanceStatus": d.db_instance_status(),
        "Endpoint": d.endpoint().map(|e| json!({"Address": e.address(), "Port": e.port()})),
        "AllocatedStorage": d.allocated_storage(),
        "StorageType": d.storage_type(),
        "MultiAZ": d.multi_az(),
        "AvailabilityZone": d.availability_zone(),
        "SecondaryAvailabilityZone": d.secondary_availability_zone(),
        "DBParameterGroups": d.db_parameter_groups().iter().map(|g| json!({
            "DBParameterGroupName": g.db_parameter_group_name(),
            "ParameterApplyStatus": g.parameter_apply_status(),
        })).collect::<Vec<_>>(),
        "PendingModifiedValues": pending,
        "PreferredMaintenanceWindow": d.preferred_maintenance_window(),
        "InstanceCreateTime": time(d.instance_create_time()),
        "TagList": kv(d.tag_list().iter().map(|t| (t.key(), t.value()))),
    }))
}

pub(crate) fn db_event(e: &aws_sdk_rds::types::Event) -> Value {
    prune(json!({
        "SourceIdentifier": e.source_identifier(),
        "SourceType": e.source_type().map(|s| s.as_str()),
        "SourceArn": e.source_arn(),
        "Date": time(e.date()),
        "Message": e.message(),
        "EventCategories": e.event_categories(),
    }))
}

fn dims(ds: &[aws_sdk_cloudwatch::types::Dimension]) -> Value {
    Value::Array(
        ds.iter()
            .map(|d| json!({"Name": d.name(), "Value": d.value()}))
            .collect(),
    )
}

pub(crate) fn alarm(a: &aws_sdk_cloudwatch::types::MetricAlarm) -> Value {
    prune(json!({
        "AlarmName": a.alarm_name(),
        "AlarmArn": a.alarm_arn(),
        "AlarmDescription": a.alarm_description(),
        "ActionsEnabled": a.actions_enabled(),
        "AlarmActions": a.alarm_actions(),
        "StateValue": a.state_value().map(|s| s.as_str()),
        "StateReason": a.state_reason(),
        "StateUpdatedTimestamp": time(a.state_updated_timestamp()),
        "MetricName": a.metric_name(),
        "Namespace": a.namespace(),
        "Statistic": a.statistic().map(|s| s.as_str()),
        "ExtendedStatistic": a.extended_statistic(),
        "Dimensions": dims(a.dimensions()),
        "Period": a.period(),
        "EvaluationPeriods": a.evaluation_periods(),
        "DatapointsToAlarm": a.datapoints_to_alarm(),
        "Threshold": a.threshold(),
        "ComparisonOperator": a.comparison_operator().map(|c| c.as_str()),
        "TreatMissingData": a.treat_missing_data(),
    }))
}

pub(crate) fn alarm_history(h: &aws_sdk_cloudwatch::types::AlarmHistoryItem) -> Value {
    prune(json!({
        "AlarmName": h.alarm_name(),
        "Timestamp": time(h.timestamp()),
        "HistoryItemType": h.history_item_type().map(|t| t.as_str()),
        "HistorySummary": h.history_summary(),
        "HistoryData": h.history_data(),
    }))
}

pub(crate) fn metric(m: &aws_sdk_cloudwatch::types::Metric) -> Value {
    prune(json!({
        "Namespace": m.namespace(),
        "MetricName": m.metric_name(),
        "Dimensions": dims(m.dimensions()),
    }))
}

pub(crate) fn log_group(g: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Value {
    prune(json!({
        "logGroupName": g.log_group_name(),
        "storedBytes": g.stored_bytes(),
        "retentionInDays": g.retention_in_days(),
        "creationTime": g.creation_time(),
    }))
}

pub(crate) fn log_event(e: &aws_sdk_cloudwatchlogs::types::FilteredLogEvent) -> Value {
    prune(json!({
        "timestamp": e.timestamp(),
        "message": e.message(),
        "logStreamName": e.log_stream_name(),
    }))
}

pub(crate) fn load_balancer(lb: &aws_sdk_elasticloadbalancingv2::types::LoadBalancer) -> Value {
    prune(json!({
        "LoadBalancerName": lb.load_balancer_name(),
        "LoadBalancerArn": lb.load_balancer_arn(),
        "DNSName": lb.dns_name(),
        "Scheme": lb.scheme().map(|s| s.as_str()),
        "Type": lb.r#type().map(|t| t.as_str()),
        "State": lb.state().map(|s| json!({"Code": s.code().map(|c| c.as_str()), "Reason": s.reason()})),
        "VpcId": lb.vpc_id(),
        "CreatedTime": time(lb.created_time()),
    }))
}

pub(crate) fn target_group(tg: &aws_sdk_elasticloadbalancingv2::types::TargetGroup) -> Value {
    prune(json!({
        "TargetGroupName": tg.target_group_name(),
        "TargetGroupArn": tg.target_group_arn(),
        "Protocol": tg.protocol().map(|p| p.as_str()),
        "Port": tg.port(),
        "VpcId": tg.vpc_id(),
        "TargetType": tg.target_type().map(|t| t.as_str()),
        "HealthCheckProtocol": tg.health_check_protocol().map(|p| p.as_str()),
        "HealthCheckPath": tg.health_check_path(),
        "LoadBalancerArns": tg.load_balancer_arns(),
    }))
}

pub(crate) fn target_health(
    t: &aws_sdk_elasticloadbalancingv2::types::TargetHealthDescription,
) -> Value {
    prune(json!({
        "Target": t.target().map(|x| json!({"Id": x.id(), "Port": x.port()})),
        "HealthCheckPort": t.health_check_port(),
        "TargetHealth": t.target_health().map(|h| json!({
            "State": h.state().map(|s| s.as_str()),
            "Reason": h.reason().map(|r| r.as_str()),
            "Description": h.description(),
        })),
    }))
}

pub(crate) fn ecs_service(s: &aws_sdk_ecs::types::Service) -> Value {
    prune(json!({
        "serviceName": s.service_name(),
        "serviceArn": s.service_arn(),
        "clusterArn": s.cluster_arn(),
        "status": s.status(),
        "desiredCount": s.desired_count(),
        "runningCount": s.running_count(),
        "pendingCount": s.pending_count(),
        "launchType": s.launch_type().map(|l| l.as_str()),
        "taskDefinition": s.task_definition(),
        "deployments": s.deployments().iter().map(|d| json!({
            "id": d.id(),
            "status": d.status(),
            "taskDefinition": d.task_definition(),
            "desiredCount": d.desired_count(),
            "runningCount": d.running_count(),
            "failedTasks": d.failed_tasks(),
            "rolloutState": d.rollout_state().map(|r| r.as_str()),
            "createdAt": time(d.created_at()),
        })).collect::<Vec<_>>(),
        "events": s.events().iter().take(20).map(|e| json!({
            "createdAt": time(e.created_at()),
            "message": e.message(),
        })).collect::<Vec<_>>(),
    }))
}

pub(crate) fn function(f: &aws_sdk_lambda::types::FunctionConfiguration) -> Value {
    prune(json!({
        "FunctionName": f.function_name(),
        "FunctionArn": f.function_arn(),
        "Runtime": f.runtime().map(|r| r.as_str()),
        "MemorySize": f.memory_size(),
        "Timeout": f.timeout(),
        "State": f.state().map(|s| s.as_str()),
        "LastModified": f.last_modified(),
    }))
}

pub(crate) fn bucket(b: &aws_sdk_s3::types::Bucket) -> Value {
    prune(json!({
        "Name": b.name(),
        "CreationDate": time(b.creation_date()),
    }))
}

pub(crate) fn trail_event(e: &aws_sdk_cloudtrail::types::Event) -> Value {
    prune(json!({
        "EventId": e.event_id(),
        "EventName": e.event_name(),
        "EventTime": time(e.event_time()),
        "EventSource": e.event_source(),
        "Username": e.username(),
        "Resources": e.resources().iter().map(|r| json!({
            "ResourceType": r.resource_type(),
            "ResourceName": r.resource_name(),
        })).collect::<Vec<_>>(),
    }))
}
