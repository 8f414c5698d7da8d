//! The AWS tools that act, each one action of the vocabulary (high risk:
//! the gate asks for approval before any of them runs). Every one takes
//! `dry_run`: EC2 checks natively (`DryRun`); the others check the target
//! exists and say what would change, without calling the mutation.

use super::tools::{TIMEOUT, one_asg, output};
use super::{AwsApi, RdsChange, format, text};
use crate::typed;
use brain::backends::{ToolError, ToolOutput, ToolSpec};
use brain::vocabulary::Action;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RebootEc2Args {
    /// The instance id, e.g. `i-0a1b2c3d4e5f67890`.
    instance_id: String,
    /// Only check that the reboot would be allowed (EC2's DryRun); nothing is rebooted.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetDesiredArgs {
    /// The Auto Scaling group's name.
    name: String,
    /// The new desired capacity, within the group's min and max size.
    desired: u32,
    /// Only say what would change; the group is not touched.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RebootRdsArgs {
    /// The DB instance identifier, e.g. `orders-db`.
    db_instance_identifier: String,
    /// Reboot through a Multi-AZ failover to the standby (Multi-AZ instances only).
    #[serde(default)]
    force_failover: bool,
    /// Only say what would happen; the instance is not rebooted.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ModifyRdsArgs {
    /// The DB instance identifier, e.g. `orders-db`.
    db_instance_identifier: String,
    /// New allocated storage in GiB (it can only grow).
    #[serde(default)]
    allocated_storage: Option<u32>,
    /// New instance class, e.g. `db.r6g.xlarge`.
    #[serde(default)]
    instance_class: Option<String>,
    /// New `max_connections`, set on the instance's DB parameter group; a static parameter, applied at the next reboot.
    #[serde(default)]
    max_connections: Option<u32>,
    /// Apply storage and class changes now rather than in the next maintenance window.
    #[serde(default)]
    apply_immediately: bool,
    /// Only say what would change; nothing is modified.
    #[serde(default)]
    dry_run: bool,
}

const NAMES: &[&str] = &[
    "reboot_ec2_instance",
    "set_asg_desired_capacity",
    "reboot_rds_instance",
    "modify_rds_instance",
];

pub(crate) fn handles(tool: &str) -> bool {
    NAMES.contains(&tool)
}

pub(crate) fn specs() -> Vec<ToolSpec> {
    vec![
        typed::action_spec::<RebootEc2Args>(
            "reboot_ec2_instance",
            "Reboot an EC2 instance (needs approval). Try dry_run first.",
            Action::Ec2Reboot,
            TIMEOUT,
        ),
        typed::action_spec::<SetDesiredArgs>(
            "set_asg_desired_capacity",
            "Set the desired capacity of an Auto Scaling group (needs approval). dry_run shows the change without making it.",
            Action::AsgSetDesired,
            TIMEOUT,
        ),
        typed::action_spec::<RebootRdsArgs>(
            "reboot_rds_instance",
            "Reboot an RDS DB instance, optionally failing over to the Multi-AZ standby (needs approval). \
             Needed for static parameter changes such as max_connections to take effect.",
            Action::RdsReboot,
            TIMEOUT,
        ),
        typed::action_spec::<ModifyRdsArgs>(
            "modify_rds_instance",
            "Modify an RDS DB instance: allocated storage, instance class, or max_connections on its parameter group \
             (needs approval). dry_run shows the change without making it.",
            Action::RdsModify,
            TIMEOUT,
        ),
    ]
}

pub(crate) async fn call(
    api: &dyn AwsApi,
    tool: &str,
    args: Value,
) -> Result<ToolOutput, ToolError> {
    match tool {
        "reboot_ec2_instance" => reboot_ec2(api, typed::parse(args)?).await,
        "set_asg_desired_capacity" => set_desired(api, typed::parse(args)?).await,
        "reboot_rds_instance" => reboot_rds(api, typed::parse(args)?).await,
        "modify_rds_instance" => modify_rds(api, typed::parse(args)?).await,
        other => Err(ToolError::UnknownTool(other.to_owned())),
    }
}

fn verb(dry_run: bool, would: &str, did: &str) -> String {
    if dry_run {
        format!("dry run: would {would}; nothing changed")
    } else {
        did.to_owned()
    }
}

async fn reboot_ec2(api: &dyn AwsApi, a: RebootEc2Args) -> Result<ToolOutput, ToolError> {
    let ids = vec![a.instance_id.clone()];
    // Describe first: an unknown id is NotFound naming it, in every backend.
    let before = api.describe_instances(&ids).await?;
    api.reboot_instances(&ids, a.dry_run).await?;
    let state = before
        .first()
        .and_then(|i| text(i, "/State/Name"))
        .unwrap_or("-");
    let id = &a.instance_id;
    let text = verb(
        a.dry_run,
        &format!("reboot {id} (now {state}); the request is allowed"),
        &format!("reboot of {id} requested (was {state})"),
    );
    Ok(output(
        text,
        json!({"action": "aws.ec2_reboot", "target": format!("aws/ec2/{id}"), "dry_run": a.dry_run, "state_before": state}),
    ))
}

async fn set_desired(api: &dyn AwsApi, a: SetDesiredArgs) -> Result<ToolOutput, ToolError> {
    let g = one_asg(api, &a.name).await?;
    let before = g.get("DesiredCapacity").and_then(Value::as_i64);
    let min = g.get("MinSize").and_then(Value::as_i64).unwrap_or(0);
    let max = g.get("MaxSize").and_then(Value::as_i64).unwrap_or(i64::MAX);
    let desired = i32::try_from(a.desired).map_err(|_| {
        ToolError::InvalidArguments(format!("`desired`: {} is too large", a.desired))
    })?;
    if i64::from(desired) < min || i64::from(desired) > max {
        return Err(ToolError::InvalidArguments(format!(
            "`desired`: {desired} is outside the size of {} ({min}..{max}); change min/max first",
            a.name
        )));
    }
    if !a.dry_run {
        api.set_desired_capacity(&a.name, desired).await?;
    }
    let from = before.map_or("?".to_owned(), |b| b.to_string());
    let text = verb(
        a.dry_run,
        &format!(
            "set the desired capacity of {} from {from} to {desired} (min {min} max {max})",
            a.name
        ),
        &format!(
            "desired capacity of {} set from {from} to {desired}",
            a.name
        ),
    );
    Ok(output(
        text,
        json!({"action": "aws.asg_set_desired", "target": format!("aws/asg/{}", a.name), "dry_run": a.dry_run,
               "desired_before": before, "desired": desired}),
    ))
}

async fn one_db(api: &dyn AwsApi, id: &str) -> Result<Value, ToolError> {
    api.describe_db_instances(Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ToolError::NotFound {
            what: format!("DB instance {id}"),
        })
}

async fn reboot_rds(api: &dyn AwsApi, a: RebootRdsArgs) -> Result<ToolOutput, ToolError> {
    let id = &a.db_instance_identifier;
    let db = one_db(api, id).await?;
    let multi_az = db.get("MultiAZ").and_then(Value::as_bool) == Some(true);
    if a.force_failover && !multi_az {
        return Err(ToolError::InvalidArguments(format!(
            "`force_failover`: {id} is not Multi-AZ, so there is no standby to fail over to"
        )));
    }
    let how = if a.force_failover {
        "with a failover to the standby"
    } else {
        "in place"
    };
    let after = if a.dry_run {
        db.clone()
    } else {
        api.reboot_db_instance(id, a.force_failover).await?
    };
    let text = verb(
        a.dry_run,
        &format!(
            "reboot {id} {how} (now {})",
            text(&db, "/DBInstanceStatus").unwrap_or("-")
        ),
        &format!("reboot of {id} {how} started: {}", format::db(&after)),
    );
    Ok(output(
        text,
        json!({"action": "aws.rds_reboot", "target": format!("aws/rds/{id}"), "dry_run": a.dry_run,
               "force_failover": a.force_failover, "instance": after}),
    ))
}

async fn modify_rds(api: &dyn AwsApi, a: ModifyRdsArgs) -> Result<ToolOutput, ToolError> {
    let id = &a.db_instance_identifier;
    if a.allocated_storage.is_none() && a.instance_class.is_none() && a.max_connections.is_none() {
        return Err(ToolError::InvalidArguments(
            "give at least one of `allocated_storage`, `instance_class`, `max_connections`"
                .to_owned(),
        ));
    }
    let db = one_db(api, id).await?;
    let storage = db.get("AllocatedStorage").and_then(Value::as_i64);
    let mut changes = Vec::new();
    if let Some(s) = a.allocated_storage {
        if storage.is_some_and(|have| i64::from(s) < have) {
            return Err(ToolError::InvalidArguments(format!(
                "`allocated_storage`: storage cannot shrink ({id} has {} GiB)",
                storage.unwrap_or_default()
            )));
        }
        changes.push(format!(
            "storage {} -> {s} GiB",
            storage.map_or("?".to_owned(), |v| v.to_string())
        ));
    }
    if let Some(c) = &a.instance_class {
        changes.push(format!(
            "class {} -> {c}",
            text(&db, "/DBInstanceClass").unwrap_or("?")
        ));
    }
    if let Some(n) = a.max_connections {
        let group = text(&db, "/DBParameterGroups/0/DBParameterGroupName").unwrap_or("?");
        changes.push(format!(
            "max_connections -> {n} on parameter group {group} (applies at the next reboot)"
        ));
    }
    let change = RdsChange {
        allocated_storage: a
            .allocated_storage
            .map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
        instance_class: a.instance_class.clone(),
        max_connections: a.max_connections,
        apply_immediately: a.apply_immediately,
    };
    let after = if a.dry_run {
        db.clone()
    } else {
        api.modify_db_instance(id, &change).await?
    };
    let when = if a.apply_immediately {
        "now"
    } else {
        "in the next maintenance window"
    };
    let text = verb(
        a.dry_run,
        &format!("modify {id}: {} ({when})", changes.join("; ")),
        &format!(
            "modified {id}: {} ({when}): {}",
            changes.join("; "),
            format::db(&after)
        ),
    );
    Ok(output(
        text,
        json!({"action": "aws.rds_modify", "target": format!("aws/rds/{id}"), "dry_run": a.dry_run,
               "change": change, "instance": after}),
    ))
}
