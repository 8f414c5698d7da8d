//! The AWS replay: answers from a scenario's `world.aws` as the APIs would,
//! with mutations applied to an in-memory copy so a later describe sees
//! them.
//!
//! Besides SPEC.md's keys (`ec2.instances`, `ec2.instance_status`,
//! `autoscaling.groups`, `rds.instances`, `rds.events`, `s3.buckets`,
//! `cloudwatch.alarms`, `cloudwatch.metrics`, `logs`) a world may carry, in
//! the APIs' shapes: `autoscaling.activities`, `cloudwatch.alarm_history`,
//! `elbv2.load_balancers`, `elbv2.target_groups`, `elbv2.target_health`
//! (target group ARN → descriptions), `ecs.services`, `lambda.functions`,
//! `cloudtrail.events`. A missing key is an empty list.

use super::pattern::FilterPattern;
use super::{AwsApi, Datapoint, MetricQuery, RdsChange, Window, text};
use async_trait::async_trait;
use brain::backends::ToolError;
use brain::scenario::{World, parse_duration, resolve_time};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Members holding times; offsets such as `-90m` in them are resolved
/// against `world.now` when the replay is built.
const TIME_KEYS: &[&str] = &[
    "LaunchTime",
    "Date",
    "at",
    "start",
    "StateUpdatedTimestamp",
    "StateTransitionedTimestamp",
    "AlarmConfigurationUpdatedTimestamp",
    "InstanceCreateTime",
    "CreationDate",
    "CreatedTime",
    "StartTime",
    "EndTime",
    "Timestamp",
    "EventTime",
    "createdAt",
    "updatedAt",
    "LastModified",
];

/// `world.aws` of one scenario.
#[derive(Debug)]
pub struct WorldAws {
    now: DateTime<Utc>,
    region: String,
    state: Mutex<Value>,
}

impl WorldAws {
    /// The replay of `world`; fails naming the member whose time is not RFC
    /// 3339 nor an offset.
    pub fn new(world: &World) -> Result<WorldAws, String> {
        let mut aws = if world.aws.is_null() {
            json!({})
        } else {
            world.aws.clone()
        };
        resolve_times(&mut aws, world.now, "aws")?;
        let region = text(&aws, "/region").unwrap_or("us-east-1").to_owned();
        Ok(WorldAws {
            now: world.now,
            region,
            state: Mutex::new(aws),
        })
    }

    fn state(&self) -> MutexGuard<'_, Value> {
        // A panic while holding the lock cannot leave the JSON half-written
        // in a way later readers would misread, so a poisoned lock is used.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the list at `pointer`, or none.
    fn list(&self, pointer: &str) -> Vec<Value> {
        self.state()
            .pointer(pointer)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

fn resolve_times(v: &mut Value, now: DateTime<Utc>, path: &str) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let here = format!("{path}.{k}");
                if TIME_KEYS.contains(&k.as_str())
                    && let Value::String(s) = child
                {
                    let t = resolve_time(s, now).map_err(|e| format!("`{here}`: {e}"))?;
                    *child = Value::String(rfc3339(t));
                } else {
                    resolve_times(child, now, &here)?;
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                resolve_times(child, now, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The time at `pointer` of `v`, if it is one.
pub(crate) fn time_at(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(v, pointer)?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn in_window(v: &Value, pointer: &str, w: Window) -> bool {
    time_at(v, pointer).is_some_and(|t| t >= w.start && t <= w.end)
}

fn not_found(what: String) -> ToolError {
    ToolError::NotFound { what }
}

#[async_trait]
impl AwsApi for WorldAws {
    fn describe(&self) -> String {
        format!("AWS {} (scenario replay)", self.region)
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Value>, ToolError> {
        let all = self.list("/ec2/instances");
        if ids.is_empty() {
            return Ok(all);
        }
        let missing: Vec<&str> = ids
            .iter()
            .filter(|id| {
                !all.iter()
                    .any(|i| text(i, "/InstanceId") == Some(id.as_str()))
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(not_found(format!("EC2 instance {}", missing.join(", "))));
        }
        Ok(all
            .into_iter()
            .filter(|i| {
                ids.iter()
                    .any(|id| text(i, "/InstanceId") == Some(id.as_str()))
            })
            .collect())
    }

    async fn describe_instance_status(&self, ids: &[String]) -> Result<Vec<Value>, ToolError> {
        let instances = self.describe_instances(ids).await?;
        let statuses = self.list("/ec2/instance_status");
        Ok(instances
            .iter()
            .map(|i| {
                let id = text(i, "/InstanceId");
                statuses
                    .iter()
                    .find(|s| text(s, "/InstanceId") == id)
                    .cloned()
                    .unwrap_or_else(|| {
                        // IncludeAllInstances: an instance without checks
                        // still appears, with its state only.
                        json!({
                            "InstanceId": id,
                            "AvailabilityZone": text(i, "/Placement/AvailabilityZone"),
                            "InstanceState": i.get("State"),
                        })
                    })
            })
            .collect())
    }

    async fn reboot_instances(&self, ids: &[String], _dry_run: bool) -> Result<(), ToolError> {
        // A reboot leaves nothing a describe shows; checking the ids is
        // what both a real and a dry-run call do first.
        self.describe_instances(ids).await.map(|_| ())
    }

    async fn describe_auto_scaling_groups(
        &self,
        names: &[String],
    ) -> Result<Vec<Value>, ToolError> {
        Ok(self
            .list("/autoscaling/groups")
            .into_iter()
            .filter(|g| {
                names.is_empty()
                    || names
                        .iter()
                        .any(|n| text(g, "/AutoScalingGroupName") == Some(n.as_str()))
            })
            .collect())
    }

    async fn describe_scaling_activities(&self, group: &str) -> Result<Vec<Value>, ToolError> {
        let mut out: Vec<Value> = self
            .list("/autoscaling/activities")
            .into_iter()
            .filter(|a| text(a, "/AutoScalingGroupName") == Some(group))
            .collect();
        out.sort_by_key(|a| std::cmp::Reverse(time_at(a, "/StartTime")));
        Ok(out)
    }

    async fn set_desired_capacity(&self, group: &str, desired: i32) -> Result<(), ToolError> {
        let now = rfc3339(self.now);
        let mut state = self.state();
        let g = state
            .pointer_mut("/autoscaling/groups")
            .and_then(Value::as_array_mut)
            .and_then(|gs| {
                gs.iter_mut()
                    .find(|g| text(g, "/AutoScalingGroupName") == Some(group))
            })
            .ok_or_else(|| not_found(format!("Auto Scaling group {group}")))?;
        let min = g.get("MinSize").and_then(Value::as_i64).unwrap_or(0);
        let max = g.get("MaxSize").and_then(Value::as_i64).unwrap_or(i64::MAX);
        let d = i64::from(desired);
        if d < min || d > max {
            return Err(ToolError::InvalidArguments(format!(
                "desired capacity {desired} is outside the group's size {min}..{max}"
            )));
        }
        let before = g.get("DesiredCapacity").and_then(Value::as_i64);
        if let Some(map) = g.as_object_mut() {
            map.insert("DesiredCapacity".into(), json!(desired));
        }
        let activity = json!({
            "ActivityId": format!("world-{group}-{desired}"),
            "AutoScalingGroupName": group,
            "Description": format!("Setting desired capacity of {group} to {desired}"),
            "Cause": format!("At {now} a user request explicitly set group desired capacity changing the desired capacity from {} to {desired}.", before.map_or("?".to_owned(), |b| b.to_string())),
            "StartTime": now,
            "StatusCode": "Successful",
        });
        push(&mut state, &["autoscaling", "activities"], activity);
        Ok(())
    }

    async fn describe_db_instances(&self, id: Option<&str>) -> Result<Vec<Value>, ToolError> {
        let all = self.list("/rds/instances");
        match id {
            None => Ok(all),
            Some(id) => {
                let found: Vec<Value> = all
                    .into_iter()
                    .filter(|d| text(d, "/DBInstanceIdentifier") == Some(id))
                    .collect();
                if found.is_empty() {
                    Err(not_found(format!("DB instance {id}")))
                } else {
                    Ok(found)
                }
            }
        }
    }

    async fn describe_db_events(
        &self,
        source: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError> {
        let mut out: Vec<Value> = self
            .list("/rds/events")
            .into_iter()
            .filter(|e| source.is_none_or(|s| text(e, "/SourceIdentifier") == Some(s)))
            .filter(|e| in_window(e, "/Date", window))
            .collect();
        out.sort_by_key(|e| time_at(e, "/Date"));
        Ok(out)
    }

    async fn reboot_db_instance(&self, id: &str, force_failover: bool) -> Result<Value, ToolError> {
        let now = rfc3339(self.now);
        let mut state = self.state();
        let db = find_db(&mut state, id)?;
        if force_failover && db.get("MultiAZ").and_then(Value::as_bool) != Some(true) {
            return Err(ToolError::InvalidArguments(format!(
                "force_failover needs a Multi-AZ instance; {id} is single-AZ"
            )));
        }
        if let Some(map) = db.as_object_mut() {
            map.insert("DBInstanceStatus".into(), json!("rebooting"));
        }
        let after = db.clone();
        let message = if force_failover {
            "Multi-AZ instance failover started."
        } else {
            "DB instance restarted"
        };
        push(
            &mut state,
            &["rds", "events"],
            json!({"SourceIdentifier": id, "SourceType": "db-instance", "Date": now,
                   "Message": message, "EventCategories": ["availability"]}),
        );
        Ok(after)
    }

    async fn modify_db_instance(&self, id: &str, change: &RdsChange) -> Result<Value, ToolError> {
        let mut state = self.state();
        let db = find_db(&mut state, id)?;
        let current = db.get("AllocatedStorage").and_then(Value::as_i64);
        if let (Some(want), Some(have)) = (change.allocated_storage, current)
            && i64::from(want) < have
        {
            return Err(ToolError::InvalidArguments(format!(
                "allocated storage cannot shrink: {id} has {have} GiB, asked {want}"
            )));
        }
        let map = db
            .as_object_mut()
            .ok_or_else(|| ToolError::Backend(format!("DB instance {id} is not an object")))?;
        let pending = map
            .entry("PendingModifiedValues")
            .or_insert_with(|| json!({}));
        if let Some(p) = pending.as_object_mut() {
            if let Some(s) = change.allocated_storage {
                p.insert("AllocatedStorage".into(), json!(s));
            }
            if let Some(c) = &change.instance_class {
                p.insert("DBInstanceClass".into(), json!(c));
            }
        }
        if change.apply_immediately
            && (change.allocated_storage.is_some() || change.instance_class.is_some())
        {
            map.insert("DBInstanceStatus".into(), json!("modifying"));
        }
        if let Some(n) = change.max_connections
            && let Some(groups) = map
                .get_mut("DBParameterGroups")
                .and_then(Value::as_array_mut)
            && let Some(g) = groups.first_mut().and_then(Value::as_object_mut)
        {
            // max_connections is static: it waits for a reboot.
            g.insert("ParameterApplyStatus".into(), json!("pending-reboot"));
            g.insert(
                "Parameters".into(),
                json!([{"ParameterName": "max_connections", "ParameterValue": n.to_string(),
                        "ApplyMethod": "pending-reboot"}]),
            );
        }
        Ok(Value::Object(map.clone()))
    }

    async fn describe_alarms(
        &self,
        state: Option<&str>,
        name_prefix: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        Ok(self
            .list("/cloudwatch/alarms")
            .into_iter()
            .filter(|a| state.is_none_or(|s| text(a, "/StateValue") == Some(s)))
            .filter(|a| {
                name_prefix.is_none_or(|p| text(a, "/AlarmName").is_some_and(|n| n.starts_with(p)))
            })
            .collect())
    }

    async fn describe_alarm_history(
        &self,
        alarm_name: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError> {
        let recorded = self.list("/cloudwatch/alarm_history");
        let items = if recorded.is_empty() {
            // Without a recorded history, each alarm's last transition is
            // the history the API would hold.
            self.list("/cloudwatch/alarms")
                .iter()
                .map(|a| {
                    json!({
                        "AlarmName": text(a, "/AlarmName"),
                        "Timestamp": text(a, "/StateUpdatedTimestamp"),
                        "HistoryItemType": "StateUpdate",
                        "HistorySummary": format!("Alarm updated to {}", text(a, "/StateValue").unwrap_or("?")),
                        "HistoryData": text(a, "/StateReason"),
                    })
                })
                .collect()
        } else {
            recorded
        };
        let mut out: Vec<Value> = items
            .into_iter()
            .filter(|h| alarm_name.is_none_or(|n| text(h, "/AlarmName") == Some(n)))
            .filter(|h| in_window(h, "/Timestamp", window))
            .collect();
        out.sort_by_key(|h| std::cmp::Reverse(time_at(h, "/Timestamp")));
        Ok(out)
    }

    async fn list_metrics(
        &self,
        namespace: Option<&str>,
        metric_name: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        Ok(self
            .list("/cloudwatch/metrics")
            .iter()
            .filter(|m| namespace.is_none_or(|n| text(m, "/namespace") == Some(n)))
            .filter(|m| metric_name.is_none_or(|n| text(m, "/name") == Some(n)))
            .map(|m| {
                let dims: Vec<Value> = dimensions(m)
                    .into_iter()
                    .map(|(k, v)| json!({"Name": k, "Value": v}))
                    .collect();
                json!({"Namespace": text(m, "/namespace"), "MetricName": text(m, "/name"), "Dimensions": dims})
            })
            .collect())
    }

    async fn get_metric_data(&self, q: &MetricQuery) -> Result<Vec<Datapoint>, ToolError> {
        let series = self.list("/cloudwatch/metrics");
        let mut samples = Vec::new();
        for m in series.iter().filter(|m| {
            text(m, "/namespace") == Some(q.namespace.as_str())
                && text(m, "/name") == Some(q.metric_name.as_str())
                && dimensions(m) == q.dimensions
        }) {
            samples.extend(series_samples(m)?);
        }
        Ok(aggregate(&samples, &q.stat, q.period, q.window))
    }

    async fn describe_log_groups(&self, prefix: Option<&str>) -> Result<Vec<Value>, ToolError> {
        let state = self.state();
        let groups = state.get("logs").and_then(Value::as_object);
        Ok(groups
            .into_iter()
            .flat_map(Map::iter)
            .filter(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)))
            .map(|(name, events)| {
                let stored: usize = events
                    .as_array()
                    .map(|es| {
                        es.iter()
                            .filter_map(|e| text(e, "/message"))
                            .map(str::len)
                            .sum()
                    })
                    .unwrap_or(0);
                json!({"logGroupName": name, "storedBytes": stored})
            })
            .collect())
    }

    async fn filter_log_events(
        &self,
        group: &str,
        pattern: Option<&str>,
        window: Window,
        limit: usize,
    ) -> Result<Vec<Value>, ToolError> {
        let filter = FilterPattern::parse(pattern.unwrap_or(""))?;
        let events = self
            .state()
            .pointer(&format!(
                "/logs/{}",
                group.replace('~', "~0").replace('/', "~1")
            ))
            .cloned()
            .ok_or_else(|| not_found(format!("log group {group}")))?;
        let mut out: Vec<Value> = events
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| in_window(e, "/at", window))
            .filter(|e| text(e, "/message").is_some_and(|m| filter.matches(m)))
            .filter_map(|e| {
                let at = time_at(e, "/at")?;
                Some(
                    json!({"timestamp": at.timestamp_millis(), "message": text(e, "/message"),
                            "logStreamName": text(e, "/stream").unwrap_or("world")}),
                )
            })
            .collect();
        out.sort_by_key(|e| e.get("timestamp").and_then(Value::as_i64));
        out.truncate(limit);
        Ok(out)
    }

    async fn describe_load_balancers(&self) -> Result<Vec<Value>, ToolError> {
        Ok(self.list("/elbv2/load_balancers"))
    }

    async fn describe_target_groups(
        &self,
        load_balancer_arn: Option<&str>,
    ) -> Result<Vec<Value>, ToolError> {
        Ok(self
            .list("/elbv2/target_groups")
            .into_iter()
            .filter(|tg| {
                load_balancer_arn.is_none_or(|lb| {
                    tg.get("LoadBalancerArns")
                        .and_then(Value::as_array)
                        .is_some_and(|arns| arns.iter().any(|a| a.as_str() == Some(lb)))
                })
            })
            .collect())
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<Value>, ToolError> {
        let known = self
            .list("/elbv2/target_groups")
            .iter()
            .any(|tg| text(tg, "/TargetGroupArn") == Some(target_group_arn));
        let health = self
            .state()
            .pointer("/elbv2/target_health")
            .and_then(|h| h.get(target_group_arn))
            .and_then(Value::as_array)
            .cloned();
        match health {
            Some(h) => Ok(h),
            None if known => Ok(Vec::new()),
            None => Err(not_found(format!("target group {target_group_arn}"))),
        }
    }

    async fn describe_ecs_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Value>, ToolError> {
        Ok(self
            .list("/ecs/services")
            .into_iter()
            .filter(|s| {
                text(s, "/clusterArn")
                    .is_some_and(|c| c == cluster || c.ends_with(&format!("/{cluster}")))
            })
            .filter(|s| {
                names.is_empty()
                    || names.iter().any(|n| {
                        text(s, "/serviceName") == Some(n.as_str())
                            || text(s, "/serviceArn") == Some(n.as_str())
                    })
            })
            .collect())
    }

    async fn list_functions(&self) -> Result<Vec<Value>, ToolError> {
        Ok(self.list("/lambda/functions"))
    }

    async fn list_buckets(&self) -> Result<Vec<Value>, ToolError> {
        Ok(self.list("/s3/buckets"))
    }

    async fn lookup_cloudtrail_events(
        &self,
        resource_name: Option<&str>,
        window: Window,
    ) -> Result<Vec<Value>, ToolError> {
        let mut out: Vec<Value> = self
            .list("/cloudtrail/events")
            .into_iter()
            .filter(|e| in_window(e, "/EventTime", window))
            .filter(|e| {
                resource_name.is_none_or(|r| {
                    e.get("Resources")
                        .and_then(Value::as_array)
                        .is_some_and(|rs| rs.iter().any(|x| text(x, "/ResourceName") == Some(r)))
                })
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(time_at(e, "/EventTime")));
        Ok(out)
    }
}

fn find_db<'a>(state: &'a mut Value, id: &str) -> Result<&'a mut Value, ToolError> {
    state
        .pointer_mut("/rds/instances")
        .and_then(Value::as_array_mut)
        .and_then(|ds| {
            ds.iter_mut()
                .find(|d| text(d, "/DBInstanceIdentifier") == Some(id))
        })
        .ok_or_else(|| not_found(format!("DB instance {id}")))
}

/// Append `item` to the list at `path`, creating what is missing.
fn push(state: &mut Value, path: &[&str], item: Value) {
    let mut here = state;
    for key in path {
        if !here.is_object() {
            *here = json!({});
        }
        let Some(map) = here.as_object_mut() else {
            return;
        };
        here = map.entry(key.to_string()).or_insert(Value::Null);
    }
    match here {
        Value::Array(items) => items.push(item),
        other => *other = json!([item]),
    }
}

/// A world metric's `dimensions` map.
fn dimensions(m: &Value) -> BTreeMap<String, String> {
    m.get("dimensions")
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The samples of a world metric `{start, step, values}`; `null` values
/// are gaps.
fn series_samples(m: &Value) -> Result<Vec<(DateTime<Utc>, f64)>, ToolError> {
    let name = text(m, "/name").unwrap_or("?");
    let bad = |what: &str| ToolError::Backend(format!("world metric {name}: {what}"));
    let start = time_at(m, "/start").ok_or_else(|| bad("`start` is missing"))?;
    let step = parse_duration(text(m, "/step").unwrap_or("1m")).map_err(|e| bad(&e))?;
    let values = m.get("values").and_then(Value::as_array);
    let mut out = Vec::new();
    for (i, v) in values.into_iter().flatten().enumerate() {
        let Some(v) = v.as_f64() else { continue };
        let Ok(i) = i32::try_from(i) else { break };
        if let Some(t) = step
            .checked_mul(i)
            .and_then(|off| start.checked_add_signed(off))
        {
            out.push((t, v));
        }
    }
    Ok(out)
}

/// The samples in `window` grouped into `period`-second buckets aligned on
/// multiples of the period (as CloudWatch stamps them), each reduced by
/// `stat`.
fn aggregate(
    samples: &[(DateTime<Utc>, f64)],
    stat: &str,
    period: u32,
    w: Window,
) -> Vec<Datapoint> {
    let period = i64::from(period.max(1));
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in samples.iter().filter(|(t, _)| *t >= w.start && *t <= w.end) {
        buckets
            .entry(t.timestamp().div_euclid(period))
            .or_default()
            .push(*v);
    }
    buckets
        .into_iter()
        .filter_map(|(k, vs)| {
            let at = DateTime::from_timestamp(k.checked_mul(period)?, 0)?;
            let value = match stat {
                "Maximum" => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "Minimum" => vs.iter().copied().fold(f64::INFINITY, f64::min),
                "Sum" => vs.iter().sum(),
                "SampleCount" => vs.len() as f64,
                _ => vs.iter().sum::<f64>() / vs.len() as f64,
            };
            value.is_finite().then_some(Datapoint { at, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(aws: Value) -> WorldAws {
        let mut w = World::from_yaml("now: 2026-05-19T02:14:00Z").unwrap();
        w.aws = aws;
        WorldAws::new(&w).unwrap()
    }

    #[test]
    fn offsets_in_time_members_are_resolved_against_now() {
        let w = world(json!({"ec2": {"instances": [{"InstanceId": "i-1", "LaunchTime": "-90m"}]}}));
        let i = w.list("/ec2/instances");
        assert_eq!(text(&i[0], "/LaunchTime"), Some("2026-05-19T00:44:00.000Z"));
    }

    #[test]
    fn a_bad_time_names_its_member() {
        let mut w = World::from_yaml("now: 2026-05-19T02:14:00Z").unwrap();
        w.aws = json!({"rds": {"events": [{"Date": "yesterday"}]}});
        let e = WorldAws::new(&w).unwrap_err();
        assert!(e.contains("aws.rds.events[0].Date"), "{e}");
    }

    #[test]
    fn buckets_reduce_by_the_statistic() {
        let t0 = DateTime::parse_from_rfc3339("2026-05-19T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s: Vec<_> = (0..4)
            .map(|i| (t0 + chrono::Duration::minutes(i), i as f64))
            .collect();
        let w = Window {
            start: t0,
            end: t0 + chrono::Duration::minutes(10),
        };
        let max = aggregate(&s, "Maximum", 120, w);
        assert_eq!(
            max.iter().map(|d| d.value).collect::<Vec<_>>(),
            vec![1.0, 3.0]
        );
        let avg = aggregate(&s, "Average", 600, w);
        assert_eq!(avg[0].value, 1.5);
    }

    #[test]
    fn tags_are_read_from_key_value_lists() {
        use super::super::tag;
        let i = json!({"Tags": [{"Key": "env", "Value": "prod"}]});
        assert_eq!(tag(i.get("Tags"), "env"), Some("prod"));
        assert_eq!(tag(i.get("Tags"), "team"), None);
    }
}
