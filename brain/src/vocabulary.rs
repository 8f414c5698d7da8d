//! The action vocabulary and component names of `shared/evals/SPEC.md`.
//!
//! Every remediation cerebro can propose or execute is an [`Action`]; every
//! target is a [`Component`]. Anything outside the vocabulary cannot be
//! represented, so it can never reach the executor.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The risk class of an action under the default policy.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Reads or hands over to a human; runs freely.
    Read,
    /// Mutates, is easily undone; runs without approval except on protected targets.
    Low,
    /// Mutates in a way that is hard to undo; always needs an approval.
    High,
    /// Never proposed nor executed by the service.
    Forbidden,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Low => "low",
            Self::High => "high",
            Self::Forbidden => "forbidden",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal, $risk:ident;)+) => {
        /// One action of the vocabulary.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action { $($variant),+ }

        impl Action {
            /// Every action of the vocabulary.
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            /// The spec's name, e.g. `kubernetes.rollout_restart`.
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name),+ }
            }

            /// The default risk class. `kubernetes.scale` is listed as `low`;
            /// [`crate::policy`] raises it to `high` when it scales down.
            pub fn default_risk(self) -> Risk {
                match self { $(Action::$variant => Risk::$risk),+ }
            }
        }

        impl FromStr for Action {
            type Err = UnknownAction;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Action::$variant),)+
                    other => Err(UnknownAction(other.to_owned())),
                }
            }
        }
    };
}

actions! {
    RolloutRestart => "kubernetes.rollout_restart", Low;
    DeletePod => "kubernetes.delete_pod", Low;
    Scale => "kubernetes.scale", Low;
    Rollback => "kubernetes.rollback", High;
    SetResources => "kubernetes.set_resources", High;
    SetImage => "kubernetes.set_image", High;
    CordonNode => "kubernetes.cordon_node", High;
    DrainNode => "kubernetes.drain_node", High;
    PatchHpa => "kubernetes.patch_hpa", High;
    Ec2Reboot => "aws.ec2_reboot", High;
    AsgSetDesired => "aws.asg_set_desired", High;
    RdsReboot => "aws.rds_reboot", High;
    RdsModify => "aws.rds_modify", High;
    Escalate => "escalate", Read;
    // Not in the scenario spec: a call to a tool of an external MCP server
    // (`tools.mcp_servers`), whose effects cerebro cannot know. Target
    // `external/SERVER`; held for approval like any high-risk action.
    McpToolCall => "mcp.call_tool", High;
    DeleteNamespace => "kubernetes.delete_namespace", Forbidden;
    DeleteDeployment => "kubernetes.delete_deployment", Forbidden;
    DeletePvc => "kubernetes.delete_pvc", Forbidden;
    Ec2Terminate => "aws.ec2_terminate", Forbidden;
    RdsDelete => "aws.rds_delete", Forbidden;
    S3DeleteBucket => "aws.s3_delete_bucket", Forbidden;
}

impl Action {
    /// Whether the action changes the world (everything but `escalate`).
    pub fn is_mutating(self) -> bool {
        self != Action::Escalate
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The text was not an action of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?}: not in the action vocabulary")]
pub struct UnknownAction(pub String);

/// A component name: what an action targets and what a diagnosis blames.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// `kind/namespace/name` (namespaced) or `kind/name` (cluster-scoped), kind lower-case.
    Kubernetes {
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// `aws/service/id`.
    Aws { service: String, id: String },
    /// `external/name`: something outside both.
    External { name: String },
}

impl Component {
    /// The Kubernetes namespace, if the component is a namespaced object.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Component::Kubernetes { namespace, .. } => namespace.as_deref(),
            _ => None,
        }
    }
}

/// The text is not a component name of the spec's forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid component name {name:?}: {reason}")]
pub struct InvalidComponent {
    pub name: String,
    pub reason: &'static str,
}

impl FromStr for Component {
    type Err = InvalidComponent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| InvalidComponent {
            name: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty segment"));
        }
        match parts.as_slice() {
            ["aws", service, id] => Ok(Component::Aws {
                service: (*service).to_owned(),
                id: (*id).to_owned(),
            }),
            ["aws", ..] => Err(bad("expected aws/service/id")),
            ["external", name] => Ok(Component::External {
                name: (*name).to_owned(),
            }),
            ["external", ..] => Err(bad("expected external/name")),
            [kind, ..] if kind.chars().any(|c| c.is_ascii_uppercase()) => {
                Err(bad("kind must be lower-case"))
            }
            [kind, name] => Ok(Component::Kubernetes {
                kind: (*kind).to_owned(),
                namespace: None,
                name: (*name).to_owned(),
            }),
            [kind, namespace, name] => Ok(Component::Kubernetes {
                kind: (*kind).to_owned(),
                namespace: Some((*namespace).to_owned()),
                name: (*name).to_owned(),
            }),
            _ => Err(bad(
                "expected kind/namespace/name, kind/name, aws/service/id or external/name",
            )),
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Kubernetes {
                kind,
                namespace: Some(ns),
                name,
            } => write!(f, "{kind}/{ns}/{name}"),
            Component::Kubernetes {
                kind,
                namespace: None,
                name,
            } => write!(f, "{kind}/{name}"),
            Component::Aws { service, id } => write!(f, "aws/{service}/{id}"),
            Component::External { name } => write!(f, "external/{name}"),
        }
    }
}

impl Serialize for Component {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_spec_name() {
        for &a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
        }
        assert_eq!(Action::ALL.len(), 21);
    }

    #[test]
    fn an_action_outside_the_vocabulary_cannot_be_parsed() {
        assert!("kubernetes.exec_shell".parse::<Action>().is_err());
        assert!(serde_json::from_str::<Action>("\"rm -rf\"").is_err());
    }

    #[test]
    fn component_names_of_every_spec_form_round_trip() {
        for name in [
            "deployment/prod/payments-api",
            "node/ip-10-0-3-17.ec2.internal",
            "aws/rds/orders-db",
            "aws/ec2/i-0a1b2c3d4e5f67890",
            "external/stripe-api",
        ] {
            let c: Component = name.parse().expect(name);
            assert_eq!(c.to_string(), name);
        }
        let c: Component = "deployment/prod/payments-api".parse().expect("parse");
        assert_eq!(c.namespace(), Some("prod"));
    }

    #[test]
    fn malformed_component_names_are_rejected_with_a_reason() {
        for name in [
            "",
            "aws/rds",
            "Deployment/prod/x",
            "a/b/c/d",
            "deployment//x",
            "external/a/b",
        ] {
            assert!(
                name.parse::<Component>().is_err(),
                "{name} should be rejected"
            );
        }
    }
}
