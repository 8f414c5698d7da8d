//! The AWS backend: one table of tool calls run against the live backend
//! (the AWS SDK for Rust against ministack, an AWS emulator started here on
//! loopback and seeded through the SDK) and against the replay built from
//! the same resources, which must agree; the replay on the RDS scenario;
//! the tools that act, dry run and for real; and how failures read.
// Helpers shared by the tests unwrap like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;
use common::call;

use brain::backends::{ToolError, ToolOutput};
use brain::scenario::{Scenario, World};
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::Registry;
use tools::aws::{AwsConfig, AwsTools, LiveAws, StaticCredentials, WorldAws};

fn registry(api: Arc<dyn tools::aws::AwsApi>) -> Registry {
    let mut r = Registry::new();
    r.add(Arc::new(AwsTools::new(api))).unwrap();
    r
}

fn scenario_world() -> World {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../evals/scenarios/examples/aws-rds-connections-orders.yaml");
    Scenario::load(&path).unwrap().world
}

fn replay(world: &World) -> Registry {
    registry(Arc::new(WorldAws::new(world).unwrap()))
}

// ---- the replay on the RDS scenario ------------------------------------

#[tokio::test]
async fn the_registry_holds_twenty_read_tools_and_four_that_act() {
    let r = replay(&scenario_world());
    let specs: Vec<_> = r.specs().collect();
    assert!(specs.len() >= 24, "{}", specs.len());
    let acting: Vec<(&str, &str)> = specs
        .iter()
        .filter_map(|s| Some((s.name.as_str(), s.action.as_deref()?)))
        .collect();
    assert_eq!(
        acting,
        vec![
            ("modify_rds_instance", "aws.rds_modify"),
            ("reboot_ec2_instance", "aws.ec2_reboot"),
            ("reboot_rds_instance", "aws.rds_reboot"),
            ("set_asg_desired_capacity", "aws.asg_set_desired"),
        ]
    );
    for s in &specs {
        let high = s.action.is_some();
        assert_eq!(s.risk == brain::vocabulary::Risk::Read, !high, "{}", s.name);
        // Every argument is described for the model.
        for (name, prop) in s.input_schema["properties"].as_object().unwrap() {
            assert!(
                prop.get("description").is_some() || prop.get("$ref").is_some(),
                "{}.{name} has no description",
                s.name
            );
        }
    }
}

#[tokio::test]
async fn the_scenario_database_its_connections_alarm_and_events_are_found() {
    let world = scenario_world();
    let r = replay(&world);

    let db = call(
        &r,
        "describe_rds_instance",
        json!({"db_instance_identifier": "orders-db"}),
    )
    .await;
    assert_eq!(db.data["instance"]["DBInstanceClass"], "db.r6g.large");
    assert!(
        db.text
            .starts_with("orders-db available db.r6g.large postgres 15.6"),
        "{}",
        db.text
    );
    assert!(
        db.text.contains("parameter group orders-pg15 in-sync"),
        "{}",
        db.text
    );

    let alarms = call(&r, "list_cloudwatch_alarms", json!({"state": "ALARM"})).await;
    let names: Vec<&str> = alarms.data["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AlarmName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["orders-db-DatabaseConnections-high"]);
    assert!(
        alarms
            .text
            .contains("ALARM since 2026-05-19 02:10:12Z (3m ago)"),
        "{}",
        alarms.text
    );

    let conns = call(
        &r,
        "get_cloudwatch_metric",
        json!({"namespace": "AWS/RDS", "metric_name": "DatabaseConnections",
               "dimensions": {"DBInstanceIdentifier": "orders-db"}, "stat": "Maximum", "start": "-65m"}),
    )
    .await;
    let s = &conns.data["summary"];
    assert_eq!(
        (s["max"].as_f64(), s["last"].as_f64(), s["min"].as_f64()),
        (Some(248.0), Some(247.0), Some(104.0))
    );
    assert_eq!(s["trend"], "rising");
    assert_eq!(s["points"], 13);

    let metrics = call(
        &r,
        "list_cloudwatch_metrics",
        json!({"dimension": "DBInstanceIdentifier=orders-db"}),
    )
    .await;
    assert_eq!(metrics.data["metrics"].as_array().unwrap().len(), 4);

    let events = call(
        &r,
        "list_rds_events",
        json!({"db_instance_identifier": "orders-db"}),
    )
    .await;
    let messages: Vec<&str> = events.data["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        vec!["Backing up DB instance", "Finished DB Instance backup"]
    );

    let history = call(
        &r,
        "describe_alarm_history",
        json!({"alarm_name": "orders-db-DatabaseConnections-high"}),
    )
    .await;
    assert!(
        history.text.contains("Alarm updated to ALARM"),
        "{}",
        history.text
    );

    // Nothing of the kind in this world: empty answers, not errors.
    for tool in [
        "list_ec2_instances",
        "list_autoscaling_groups",
        "list_load_balancers",
        "list_s3_buckets",
        "list_lambda_functions",
    ] {
        let out = call(&r, tool, json!({})).await;
        assert!(out.text.starts_with("no "), "{tool}: {}", out.text);
    }
}

#[tokio::test]
async fn unknown_resources_are_not_found_by_name_in_the_replay() {
    let r = replay(&scenario_world());
    for (tool, args, name) in [
        (
            "describe_ec2_instance",
            json!({"instance_id": "i-0123456789abcdef0"}),
            "i-0123456789abcdef0",
        ),
        (
            "describe_rds_instance",
            json!({"db_instance_identifier": "billing-db"}),
            "billing-db",
        ),
        (
            "list_rds_events",
            json!({"db_instance_identifier": "billing-db"}),
            "billing-db",
        ),
        (
            "describe_autoscaling_group",
            json!({"name": "web-asg"}),
            "web-asg",
        ),
        (
            "query_cloudwatch_logs",
            json!({"log_group": "/app/none"}),
            "/app/none",
        ),
        (
            "modify_rds_instance",
            json!({"db_instance_identifier": "billing-db", "max_connections": 500}),
            "billing-db",
        ),
    ] {
        match r.call(tool, args).await {
            Err(ToolError::NotFound { what }) => assert!(what.contains(name), "{tool}: {what}"),
            other => panic!("{tool}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn modifying_the_scenario_database_is_dry_run_first_then_seen_by_a_later_describe() {
    let r = replay(&scenario_world());
    let args =
        json!({"db_instance_identifier": "orders-db", "max_connections": 400, "dry_run": true});
    let dry = call(&r, "modify_rds_instance", args).await;
    assert!(
        dry.text.starts_with(
            "dry run: would modify orders-db: max_connections -> 400 on parameter group orders-pg15"
        ),
        "{}",
        dry.text
    );
    let db = call(
        &r,
        "describe_rds_instance",
        json!({"db_instance_identifier": "orders-db"}),
    )
    .await;
    assert_eq!(
        db.data["instance"]["DBParameterGroups"][0]["ParameterApplyStatus"],
        "in-sync"
    );

    call(
        &r,
        "modify_rds_instance",
        json!({"db_instance_identifier": "orders-db", "max_connections": 400}),
    )
    .await;
    let db = call(
        &r,
        "describe_rds_instance",
        json!({"db_instance_identifier": "orders-db"}),
    )
    .await;
    assert_eq!(
        db.data["instance"]["DBParameterGroups"][0]["ParameterApplyStatus"],
        "pending-reboot"
    );

    let e = r
        .call(
            "modify_rds_instance",
            json!({"db_instance_identifier": "orders-db", "allocated_storage": 100}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, ToolError::InvalidArguments(ref m) if m.contains("cannot shrink")),
        "{e}"
    );

    call(
        &r,
        "reboot_rds_instance",
        json!({"db_instance_identifier": "orders-db", "force_failover": true}),
    )
    .await;
    let db = call(
        &r,
        "describe_rds_instance",
        json!({"db_instance_identifier": "orders-db"}),
    )
    .await;
    assert_eq!(db.data["instance"]["DBInstanceStatus"], "rebooting");
    let events = call(
        &r,
        "list_rds_events",
        json!({"db_instance_identifier": "orders-db", "start": "-1m"}),
    )
    .await;
    assert!(events.text.contains("failover started"), "{}", events.text);
}

#[tokio::test]
async fn bad_arguments_are_refused_with_the_field_named() {
    let r = replay(&scenario_world());
    for (tool, args, field) in [
        (
            "list_cloudwatch_alarms",
            json!({"state": "FIRING"}),
            "state",
        ),
        (
            "get_cloudwatch_metric",
            json!({"namespace": "AWS/RDS", "metric_name": "X", "start": "yesterday"}),
            "start",
        ),
        (
            "get_cloudwatch_metric",
            json!({"namespace": "AWS/RDS", "metric_name": "X", "period_seconds": 90}),
            "period_seconds",
        ),
        (
            "query_cloudwatch_logs",
            json!({"log_group": "g", "pattern": "{ $.level = 1 }"}),
            "pattern",
        ),
        (
            "modify_rds_instance",
            json!({"db_instance_identifier": "orders-db"}),
            "max_connections",
        ),
        ("list_ec2_instances", json!({"colour": "red"}), "colour"),
    ] {
        match r.call(tool, args).await {
            Err(ToolError::InvalidArguments(m)) => assert!(m.contains(field), "{tool}: {m}"),
            other => panic!("{tool}: {other:?}"),
        }
    }
}

// ---- ministack, the AWS emulator ---------------------------------------

/// A ministack process on a free loopback port, killed on drop.
struct Ministack {
    child: std::process::Child,
    url: String,
}

impl Drop for Ministack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_ministack() -> Ministack {
    let python = common::peers::python("ministack", "CEREBRO_MINISTACK_PYTHON");
    let port = free_port();
    let child = std::process::Command::new(&python)
        .args(["-m", "ministack"])
        .env("BIND_HOST", "127.0.0.1")
        .env("GATEWAY_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting ministack with {python}: {e}"));
    let m = Ministack {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let health = format!("{}/_ministack/health", m.url);
    let http = reqwest::Client::new();
    for _ in 0..150 {
        if let Ok(r) = http
            .get(&health)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            && r.status().is_success()
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ministack did not answer {health} within 15 s");
}

fn config(url: &str) -> AwsConfig {
    AwsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(url.to_owned()),
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        }),
        ..AwsConfig::default()
    }
}

async fn sdk(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// What was seeded, for building the replay of the same resources.
struct Seeded {
    now: DateTime<Utc>,
    prod: Vec<String>,
    dev: String,
    connections: Vec<(DateTime<Utc>, f64)>,
    log_lines: Vec<(DateTime<Utc>, String)>,
}

const CONNECTIONS: [f64; 8] = [40.0, 42.0, 41.0, 60.0, 120.0, 180.0, 240.0, 247.0];

/// Seed ministack through the SDK itself.
async fn seed(url: &str) -> Seeded {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
    let conf = sdk(url).await;
    let now = Utc::now().trunc_subsecs(0);

    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let run = |env: &'static str, count: i32| {
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key("env").value(env).build())
            .tags(
                Tag::builder()
                    .key("Name")
                    .value(format!("web-{env}"))
                    .build(),
            )
            .build();
        ec2.run_instances()
            .image_id("ami-0abcdef1234567890")
            .instance_type(InstanceType::T3Micro)
            .min_count(count)
            .max_count(count)
            .tag_specifications(tags)
            .send()
    };
    let ids = |out: aws_sdk_ec2::operation::run_instances::RunInstancesOutput| -> Vec<String> {
        out.instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect()
    };
    let prod = ids(run("prod", 2).await.unwrap());
    let dev = ids(run("dev", 1).await.unwrap()).remove(0);

    let asg = aws_sdk_autoscaling::Client::new(&conf);
    asg.create_launch_configuration()
        .launch_configuration_name("web-lc")
        .image_id("ami-0abcdef1234567890")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("web-asg")
        .launch_configuration_name("web-lc")
        .min_size(1)
        .max_size(6)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();

    let rds = aws_sdk_rds::Client::new(&conf);
    rds.create_db_instance()
        .db_instance_identifier("orders-db")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("orders_admin")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap();

    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    use aws_sdk_cloudwatch::types::{
        ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic,
    };
    let dim = Dimension::builder()
        .name("DBInstanceIdentifier")
        .value("orders-db")
        .build();
    let mut connections = Vec::new();
    let base = now - ChronoDuration::minutes(5 * CONNECTIONS.len() as i64);
    let base = base.trunc_subsecs(0) - ChronoDuration::seconds(base.timestamp() % 60);
    for (i, v) in CONNECTIONS.iter().enumerate() {
        let at = base + ChronoDuration::minutes(5 * i as i64);
        connections.push((at, *v));
        cw.put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("DatabaseConnections")
                    .dimensions(dim.clone())
                    .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                    .value(*v)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    for (name, threshold, state) in [
        ("orders-db-connections-high", 225.0, StateValue::Alarm),
        ("orders-db-connections-low", 1.0, StateValue::Ok),
    ] {
        cw.put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/RDS")
            .metric_name("DatabaseConnections")
            .dimensions(dim.clone())
            .statistic(Statistic::Maximum)
            .period(300)
            .evaluation_periods(1)
            .threshold(threshold)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .unwrap();
        // The emulator's own evaluation is not what is tested here.
        cw.set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason("set by the test")
            .send()
            .await
            .unwrap();
    }

    let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
    logs.create_log_group()
        .log_group_name("/app/orders")
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name("/app/orders")
        .log_stream_name("api-1")
        .send()
        .await
        .unwrap();
    let log_lines: Vec<(DateTime<Utc>, String)> = [
        "INFO request ok path=/v1/orders",
        "ERROR acquire conn: too many clients already",
        "WARN pool stats idle=0",
        "ERROR request failed status=500",
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| {
        (
            now - ChronoDuration::minutes(10 - i as i64),
            (*m).to_owned(),
        )
    })
    .collect();
    let mut put = logs
        .put_log_events()
        .log_group_name("/app/orders")
        .log_stream_name("api-1");
    for (at, m) in &log_lines {
        put = put.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(at.timestamp_millis())
                .message(m)
                .build()
                .unwrap(),
        );
    }
    put.send().await.unwrap();

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("segments-bucket")
        .send()
        .await
        .unwrap();

    Seeded {
        now,
        prod,
        dev,
        connections,
        log_lines,
    }
}

/// The replay of what `seed` created, written by hand in the SPEC's shapes.
fn world_of(s: &Seeded) -> World {
    let instance = |id: &str, env: &str| {
        json!({"InstanceId": id, "InstanceType": "t3.micro", "State": {"Name": "running", "Code": 16},
               "Tags": [{"Key": "env", "Value": env}, {"Key": "Name", "Value": format!("web-{env}")}]})
    };
    let mut instances: Vec<Value> = s.prod.iter().map(|id| instance(id, "prod")).collect();
    instances.push(instance(&s.dev, "dev"));
    let rfc = |t: DateTime<Utc>| t.to_rfc3339();
    let dims = json!([{"Name": "DBInstanceIdentifier", "Value": "orders-db"}]);
    let alarm = |name: &str, threshold: f64, state: &str| {
        json!({"AlarmName": name, "Namespace": "AWS/RDS", "MetricName": "DatabaseConnections", "Dimensions": dims,
               "Statistic": "Maximum", "Period": 300, "EvaluationPeriods": 1, "Threshold": threshold,
               "ComparisonOperator": "GreaterThanThreshold", "StateValue": state, "StateReason": "set by the test",
               "StateUpdatedTimestamp": rfc(s.now)})
    };
    let first = s.connections.first().unwrap().0;
    let aws = json!({
        "region": "us-east-1",
        "ec2": {"instances": instances},
        "autoscaling": {"groups": [{"AutoScalingGroupName": "web-asg", "MinSize": 1, "MaxSize": 6, "DesiredCapacity": 2,
            "Instances": [{"InstanceId": "i-a", "LifecycleState": "InService", "HealthStatus": "Healthy"},
                          {"InstanceId": "i-b", "LifecycleState": "InService", "HealthStatus": "Healthy"}]}]},
        "rds": {"instances": [{"DBInstanceIdentifier": "orders-db", "DBInstanceClass": "db.t3.micro", "Engine": "postgres",
            "DBInstanceStatus": "available", "AllocatedStorage": 20, "MultiAZ": false}]},
        "cloudwatch": {
            "alarms": [alarm("orders-db-connections-high", 225.0, "ALARM"), alarm("orders-db-connections-low", 1.0, "OK")],
            "metrics": [{"namespace": "AWS/RDS", "name": "DatabaseConnections", "dimensions": {"DBInstanceIdentifier": "orders-db"},
                         "start": rfc(first), "step": "5m", "values": CONNECTIONS}],
        },
        "logs": {"/app/orders": s.log_lines.iter().map(|(at, m)| json!({"at": rfc(*at), "message": m, "stream": "api-1"})).collect::<Vec<_>>()},
        "s3": {"buckets": [{"Name": "segments-bucket", "CreationDate": rfc(s.now)}]},
    });
    let mut w = World::from_yaml(&format!("now: {}", rfc(Utc::now()))).unwrap();
    w.aws = aws;
    w
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

fn pick(list: &Value, fields: &[&str]) -> Value {
    Value::Array(sorted(
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| {
                Value::Object(
                    fields
                        .iter()
                        .map(|f| {
                            (
                                (*f).to_owned(),
                                item.pointer(f).cloned().unwrap_or(Value::Null),
                            )
                        })
                        .collect(),
                )
            })
            .collect(),
    ))
}

type Extract = fn(&ToolOutput) -> Value;

/// The shared table: a call and what of its `data` both backends must
/// agree on (ministack fills some members shallowly, so not all of them).
fn table(s: &Seeded) -> Vec<(&'static str, Value, Extract)> {
    vec![
        ("list_ec2_instances", json!({}), |o| {
            pick(
                &o.data["instances"],
                &["/InstanceId", "/State/Name", "/InstanceType"],
            )
        }),
        ("list_ec2_instances", json!({"tag": "env=prod"}), |o| {
            pick(&o.data["instances"], &["/InstanceId"])
        }),
        ("list_ec2_instances", json!({"state": "stopped"}), |o| {
            o.data["instances"].clone()
        }),
        (
            "list_ec2_instances",
            json!({"instance_ids": [s.dev]}),
            |o| pick(&o.data["instances"], &["/InstanceId", "/Tags"]),
        ),
        (
            "describe_ec2_instance",
            json!({"instance_id": s.prod[0]}),
            |o| {
                pick(
                    &json!([o.data["instance"]]),
                    &["/InstanceId", "/State/Name"],
                )
            },
        ),
        ("list_autoscaling_groups", json!({}), |o| {
            pick(
                &o.data["groups"],
                &[
                    "/AutoScalingGroupName",
                    "/MinSize",
                    "/MaxSize",
                    "/DesiredCapacity",
                ],
            )
        }),
        (
            "describe_autoscaling_group",
            json!({"name": "web-asg"}),
            |o| json!(o.data["group"]["Instances"].as_array().map(Vec::len)),
        ),
        ("list_rds_instances", json!({}), |o| {
            pick(
                &o.data["instances"],
                &[
                    "/DBInstanceIdentifier",
                    "/DBInstanceClass",
                    "/Engine",
                    "/AllocatedStorage",
                ],
            )
        }),
        (
            "describe_rds_instance",
            json!({"db_instance_identifier": "orders-db"}),
            |o| o.data["instance"]["DBInstanceStatus"].clone(),
        ),
        ("list_cloudwatch_alarms", json!({}), |o| {
            pick(
                &o.data["alarms"],
                &[
                    "/AlarmName",
                    "/StateValue",
                    "/Threshold",
                    "/MetricName",
                    "/Dimensions",
                ],
            )
        }),
        ("list_cloudwatch_alarms", json!({"state": "ALARM"}), |o| {
            pick(&o.data["alarms"], &["/AlarmName"])
        }),
        (
            "list_cloudwatch_alarms",
            json!({"name_prefix": "orders-db-connections-l"}),
            |o| pick(&o.data["alarms"], &["/AlarmName"]),
        ),
        (
            "list_cloudwatch_metrics",
            json!({"namespace": "AWS/RDS"}),
            |o| pick(&o.data["metrics"], &["/MetricName", "/Dimensions"]),
        ),
        (
            "get_cloudwatch_metric",
            json!({"namespace": "AWS/RDS", "metric_name": "DatabaseConnections", "dimensions": {"DBInstanceIdentifier": "orders-db"},
                   "stat": "Maximum", "start": "-2h"}),
            |o| {
                let s = &o.data["summary"];
                json!([
                    s["min"],
                    s["max"],
                    s["last"],
                    s["first"],
                    s["trend"],
                    s["points"]
                ])
            },
        ),
        ("list_log_groups", json!({}), |o| {
            pick(&o.data["log_groups"], &["/logGroupName"])
        }),
        (
            "query_cloudwatch_logs",
            json!({"log_group": "/app/orders", "pattern": "ERROR"}),
            |o| pick(&o.data["events"], &["/message", "/timestamp"]),
        ),
        (
            "query_cloudwatch_logs",
            json!({"log_group": "/app/orders", "start": "-15m"}),
            |o| json!(o.data["events"].as_array().map(Vec::len)),
        ),
        ("list_s3_buckets", json!({}), |o| {
            pick(&o.data["buckets"], &["/Name"])
        }),
    ]
}

#[tokio::test]
async fn live_sdk_on_ministack_and_the_replay_of_the_same_resources_agree() {
    let m = start_ministack().await;
    let seeded = seed(&m.url).await;
    let live = registry(Arc::new(LiveAws::connect(&config(&m.url)).await));
    let world = replay(&world_of(&seeded));
    let mut disagreements = Vec::new();
    for (tool, args, extract) in table(&seeded) {
        let l = call(&live, tool, args.clone()).await;
        let w = call(&world, tool, args.clone()).await;
        // Shown with --nocapture: what a model reads from each backend.
        println!(
            "{tool} {args}\n  live:  {}\n  world: {}",
            l.text.trim_end(),
            w.text.trim_end()
        );
        let (lv, wv) = (extract(&l), extract(&w));
        if lv != wv {
            disagreements.push(format!(
                "{tool} {args}:\n  live  {lv}\n  world {wv}\n  live text: {}",
                l.text
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // The table is not vacuous.
    let all = call(&live, "list_ec2_instances", json!({})).await;
    assert_eq!(
        all.data["instances"].as_array().unwrap().len(),
        3,
        "{}",
        all.text
    );
    assert!(all.text.contains("running t3.micro"), "{}", all.text);
}

#[tokio::test]
async fn setting_desired_capacity_changes_it_live_and_in_the_replay_and_a_dry_run_changes_nothing()
{
    let m = start_ministack().await;
    let seeded = seed(&m.url).await;
    let live = registry(Arc::new(LiveAws::connect(&config(&m.url)).await));
    let world = replay(&world_of(&seeded));
    for (name, r) in [("live", &live), ("world", &world)] {
        let desired = |o: &ToolOutput| o.data["group"]["DesiredCapacity"].clone();
        let dry = call(
            r,
            "set_asg_desired_capacity",
            json!({"name": "web-asg", "desired": 4, "dry_run": true}),
        )
        .await;
        assert!(
            dry.text
                .starts_with("dry run: would set the desired capacity of web-asg from 2 to 4"),
            "{name}: {}",
            dry.text
        );
        assert_eq!(
            desired(&call(r, "describe_autoscaling_group", json!({"name": "web-asg"})).await),
            2,
            "{name}"
        );

        let done = call(
            r,
            "set_asg_desired_capacity",
            json!({"name": "web-asg", "desired": 4}),
        )
        .await;
        assert_eq!(done.data["desired_before"], 2, "{name}");
        assert_eq!(
            desired(&call(r, "describe_autoscaling_group", json!({"name": "web-asg"})).await),
            4,
            "{name}"
        );

        let e = r
            .call(
                "set_asg_desired_capacity",
                json!({"name": "web-asg", "desired": 9}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, ToolError::InvalidArguments(ref m) if m.contains("1..6")),
            "{name}: {e}"
        );
        let e = r
            .call(
                "set_asg_desired_capacity",
                json!({"name": "api-asg", "desired": 1}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, ToolError::NotFound { ref what } if what.contains("api-asg")),
            "{name}: {e}"
        );

        // Dry runs of the other actions leave the instance as it was.
        let before = call(
            r,
            "describe_rds_instance",
            json!({"db_instance_identifier": "orders-db"}),
        )
        .await;
        let dry = call(
            r,
            "modify_rds_instance",
            json!({"db_instance_identifier": "orders-db", "allocated_storage": 40, "instance_class": "db.t3.small", "dry_run": true}),
        )
        .await;
        assert!(
            dry.text
                .contains("storage 20 -> 40 GiB; class db.t3.micro -> db.t3.small"),
            "{name}: {}",
            dry.text
        );
        let dry = call(
            r,
            "reboot_rds_instance",
            json!({"db_instance_identifier": "orders-db", "dry_run": true}),
        )
        .await;
        assert!(
            dry.text
                .starts_with("dry run: would reboot orders-db in place"),
            "{name}: {}",
            dry.text
        );
        let after = call(
            r,
            "describe_rds_instance",
            json!({"db_instance_identifier": "orders-db"}),
        )
        .await;
        assert_eq!(before.data, after.data, "{name}");
        let e = r
            .call(
                "reboot_rds_instance",
                json!({"db_instance_identifier": "orders-db", "force_failover": true}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, ToolError::InvalidArguments(ref m) if m.contains("not Multi-AZ")),
            "{name}: {e}"
        );

        let reboot = call(
            r,
            "reboot_ec2_instance",
            json!({"instance_id": seeded.prod[0], "dry_run": true}),
        )
        .await;
        assert!(
            reboot.text.starts_with("dry run: would reboot"),
            "{name}: {}",
            reboot.text
        );
    }

    // A real modification reaches the emulator.
    let out = call(&live, "modify_rds_instance", json!({"db_instance_identifier": "orders-db", "allocated_storage": 40, "apply_immediately": true})).await;
    let db = &out.data["instance"];
    let storage = [
        db.pointer("/AllocatedStorage"),
        db.pointer("/PendingModifiedValues/AllocatedStorage"),
    ];
    assert!(storage.contains(&Some(&json!(40))), "{}", out.text);
}

#[tokio::test]
async fn an_unknown_instance_is_not_found_by_name_live_and_in_the_replay() {
    let m = start_ministack().await;
    let seeded = seed(&m.url).await;
    let live = registry(Arc::new(LiveAws::connect(&config(&m.url)).await));
    let world = replay(&world_of(&seeded));
    for (name, r) in [("live", &live), ("world", &world)] {
        for (tool, args, id) in [
            (
                "describe_ec2_instance",
                json!({"instance_id": "i-0123456789abcdef0"}),
                "i-0123456789abcdef0",
            ),
            (
                "reboot_ec2_instance",
                json!({"instance_id": "i-0fedcba987654321f", "dry_run": true}),
                "i-0fedcba987654321f",
            ),
            (
                "describe_rds_instance",
                json!({"db_instance_identifier": "billing-db"}),
                "billing-db",
            ),
            (
                "describe_autoscaling_group",
                json!({"name": "api-asg"}),
                "api-asg",
            ),
        ] {
            match r.call(tool, args).await {
                Err(ToolError::NotFound { what }) => {
                    assert!(what.contains(id), "{name} {tool}: {what}")
                }
                other => panic!("{name} {tool}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_closed_port_is_a_readable_backend_error() {
    let port = free_port();
    let cfg = AwsConfig {
        max_attempts: 1,
        operation_timeout: Duration::from_secs(5),
        ..config(&format!("http://127.0.0.1:{port}"))
    };
    let live = registry(Arc::new(LiveAws::connect(&cfg).await));
    let started = Instant::now();
    let e = live
        .call("list_ec2_instances", json!({}))
        .await
        .unwrap_err();
    match &e {
        ToolError::Backend(m) => {
            assert!(
                m.starts_with("DescribeInstances: cannot reach AWS us-east-1 at http://127.0.0.1:"),
                "{m}"
            );
            assert!(m.to_lowercase().contains("connect"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn live_list_ec2_instances_latency_through_the_registry() {
    let m = start_ministack().await;
    seed(&m.url).await;
    let live = registry(Arc::new(LiveAws::connect(&config(&m.url)).await));
    call(&live, "list_ec2_instances", json!({})).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let out = call(&live, "list_ec2_instances", json!({})).await;
        times.push(t.elapsed());
        assert_eq!(out.data["instances"].as_array().unwrap().len(), 3);
    }
    times.sort();
    let median = (times[9] + times[10]) / 2;
    println!(
        "list_ec2_instances against ministack through the registry: median {:.1} ms, min {:.1} ms, max {:.1} ms (20 calls)",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[19].as_secs_f64() * 1e3
    );
    assert!(median < Duration::from_secs(2), "{median:?}");
}

/// Seed ELBv2, ECS and Lambda metrics through the SDK; the ARNs made.
async fn seed_services(url: &str) -> (String, String) {
    use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetDescription};
    let conf = sdk(url).await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&conf);
    let lb = elb
        .create_load_balancer()
        .name("web-alb")
        .subnets("subnet-00000001")
        .subnets("subnet-00000002")
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_owned();
    let tg = elb
        .create_target_group()
        .name("web-tg")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-00000001")
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0].target_group_arn().unwrap().to_owned();
    elb.register_targets()
        .target_group_arn(&tg_arn)
        .targets(
            TargetDescription::builder()
                .id("i-0aaaaaaaaaaaaaaaa")
                .port(80)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let ecs = aws_sdk_ecs::Client::new(&conf);
    ecs.create_cluster()
        .cluster_name("shop")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("web")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("web")
                .image("nginx:1.27")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster("shop")
        .service_name("web")
        .task_definition("web")
        .desired_count(2)
        .send()
        .await
        .unwrap();

    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let at = aws_smithy_types::DateTime::from_secs(
        (Utc::now() - ChronoDuration::minutes(10)).timestamp() / 300 * 300,
    );
    for (name, v) in [("Invocations", 200.0), ("Errors", 10.0), ("Throttles", 0.0)] {
        cw.put_metric_data()
            .namespace("AWS/Lambda")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name(name)
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("FunctionName")
                            .value("checkout")
                            .build(),
                    )
                    .timestamp(at)
                    .value(v)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    (lb_arn, tg_arn)
}

#[tokio::test]
async fn load_balancers_ecs_services_and_lambda_errors_agree_live_and_in_the_replay() {
    let m = start_ministack().await;
    let (lb_arn, tg_arn) = seed_services(&m.url).await;
    let live = registry(Arc::new(LiveAws::connect(&config(&m.url)).await));
    let ten_min_ago = (Utc::now() - ChronoDuration::minutes(10)).timestamp() / 300 * 300;
    let at = DateTime::from_timestamp(ten_min_ago, 0)
        .unwrap()
        .to_rfc3339();
    let mut w = World::from_yaml(&format!("now: {}", Utc::now().to_rfc3339())).unwrap();
    w.aws = json!({
        "elbv2": {
            "load_balancers": [{"LoadBalancerName": "web-alb", "LoadBalancerArn": lb_arn, "Type": "application"}],
            "target_groups": [{"TargetGroupName": "web-tg", "TargetGroupArn": tg_arn, "Protocol": "HTTP", "Port": 80}],
            "target_health": {tg_arn.clone(): [{"Target": {"Id": "i-0aaaaaaaaaaaaaaaa", "Port": 80}, "TargetHealth": {"State": "healthy"}}]},
        },
        "ecs": {"services": [{"serviceName": "web", "clusterArn": "arn:aws:ecs:us-east-1:000000000000:cluster/shop",
                              "desiredCount": 2, "runningCount": 2, "taskDefinition": "web"}]},
        "cloudwatch": {"metrics": [
            {"namespace": "AWS/Lambda", "name": "Invocations", "dimensions": {"FunctionName": "checkout"}, "start": at, "step": "5m", "values": [200.0]},
            {"namespace": "AWS/Lambda", "name": "Errors", "dimensions": {"FunctionName": "checkout"}, "start": at, "step": "5m", "values": [10.0]},
            {"namespace": "AWS/Lambda", "name": "Throttles", "dimensions": {"FunctionName": "checkout"}, "start": at, "step": "5m", "values": [0.0]},
        ]},
    });
    let world = replay(&w);
    let table: Vec<(&str, Value, Extract)> = vec![
        ("list_load_balancers", json!({}), |o| {
            pick(
                &o.data["load_balancers"],
                &["/LoadBalancerName", "/LoadBalancerArn"],
            )
        }),
        ("list_target_groups", json!({}), |o| {
            pick(
                &o.data["target_groups"],
                &["/TargetGroupName", "/TargetGroupArn", "/Port"],
            )
        }),
        (
            "get_target_health",
            json!({"target_group": "web-tg"}),
            |o| json!(o.data["targets"].as_array().map(Vec::len)),
        ),
        ("list_ecs_services", json!({"cluster": "shop"}), |o| {
            pick(&o.data["services"], &["/serviceName", "/desiredCount"])
        }),
        (
            "describe_ecs_service",
            json!({"cluster": "shop", "service": "web"}),
            |o| o.data["service"]["desiredCount"].clone(),
        ),
        (
            "get_lambda_errors",
            json!({"function_name": "checkout"}),
            |o| {
                json!([
                    o.data["error_rate"],
                    o.data["Errors"]["total"],
                    o.data["Throttles"]["total"]
                ])
            },
        ),
    ];
    let mut disagreements = Vec::new();
    for (tool, args, extract) in table {
        let l = call(&live, tool, args.clone()).await;
        let wo = call(&world, tool, args.clone()).await;
        println!(
            "{tool} {args}\n  live:  {}\n  world: {}",
            l.text.trim_end(),
            wo.text.trim_end()
        );
        let (lv, wv) = (extract(&l), extract(&wo));
        if lv != wv {
            disagreements.push(format!("{tool} {args}:\n  live  {lv}\n  world {wv}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // The remaining read tools answer live without an error.
    for (tool, args) in [
        ("lookup_cloudtrail_events", json!({})),
        ("list_lambda_functions", json!({})),
        ("get_ec2_status_checks", json!({})),
        ("describe_alarm_history", json!({})),
        ("list_autoscaling_activities", json!({"name": "none-asg"})),
        (
            "get_s3_request_metrics",
            json!({"bucket": "segments-bucket"}),
        ),
    ] {
        call(&live, tool, args).await;
    }
}

#[tokio::test]
async fn every_scenario_replays_and_answers_the_tools_that_need_no_arguments() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../evals/scenarios");
    let mut files = Vec::new();
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    for path in files {
        let world = Scenario::load(&path).unwrap().world;
        let r = registry(Arc::new(
            WorldAws::new(&world).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        ));
        let free: Vec<String> = r
            .specs()
            .filter(|s| s.action.is_none() && s.input_schema.get("required").is_none())
            .map(|s| s.name.clone())
            .collect();
        assert!(free.len() >= 14, "{free:?}");
        for tool in free {
            if let Err(e) = r.call(&tool, json!({})).await {
                panic!("{} {tool}: {e}", path.display());
            }
        }
    }
}
