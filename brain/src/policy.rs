//! The risk policy: decides, in code and outside any model, whether a proposed
//! action runs, waits for a human, or is refused.
//!
//! Defaults follow `shared/evals/SPEC.md`: `read` runs; `low` runs unless the
//! target is protected; `high` always waits for approval; `forbidden` never
//! runs. A policy file may raise an action's risk or lower a non-forbidden one,
//! and may name more protected namespaces; nothing makes a forbidden action run.

use crate::vocabulary::{Action, Component, Risk};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Policy settings (the `[policy]` config section or a policy file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Namespaces whose objects are protected.
    pub protected_namespaces: Vec<String>,
    /// Label that marks a Kubernetes object or namespace as protected when "true".
    pub protected_label: String,
    /// AWS tag key/value pairs that mark a resource as protected.
    pub protected_tags: Vec<(String, String)>,
    /// Per-action risk overrides, keyed by the action's spec name.
    pub risk_overrides: BTreeMap<String, Risk>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            protected_namespaces: vec!["prod".into(), "production".into()],
            protected_label: "cerebro.io/protected".into(),
            protected_tags: vec![
                ("env".into(), "prod".into()),
                ("environment".into(), "production".into()),
            ],
            risk_overrides: BTreeMap::new(),
        }
    }
}

/// What the tool backends know about a target when the policy is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFacts {
    /// Labels of the Kubernetes object and of its namespace, merged.
    pub labels: BTreeMap<String, String>,
    /// Tags of the AWS resource.
    pub tags: BTreeMap<String, String>,
    /// For `kubernetes.scale`: the replicas now.
    pub current_replicas: Option<u64>,
}

/// The policy's answer for one proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// May run now.
    Execute { risk: Risk },
    /// Must wait for a recorded human approval.
    NeedsApproval { risk: Risk, reason: String },
    /// Must never run; must not even be proposed.
    Forbidden { reason: String },
}

impl Decision {
    pub fn needs_approval(&self) -> bool {
        matches!(self, Decision::NeedsApproval { .. })
    }
}

/// The compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    cfg: PolicyConfig,
    overrides: BTreeMap<Action, Risk>,
}

/// A policy setting names something that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy.risk_overrides: {0}")]
pub struct PolicyConfigError(String);

impl Policy {
    pub fn new(cfg: PolicyConfig) -> Result<Self, PolicyConfigError> {
        let mut overrides = BTreeMap::new();
        for (name, risk) in &cfg.risk_overrides {
            let action: Action = name
                .parse()
                .map_err(|e: crate::vocabulary::UnknownAction| PolicyConfigError(e.to_string()))?;
            overrides.insert(action, *risk);
        }
        Ok(Self { cfg, overrides })
    }

    /// The risk of this action with these parameters, before looking at the target.
    pub fn risk(&self, action: Action, params: &serde_json::Value, facts: &TargetFacts) -> Risk {
        let base = action.default_risk();
        if base == Risk::Forbidden {
            return Risk::Forbidden;
        }
        if let Some(&r) = self.overrides.get(&action) {
            return r;
        }
        if action == Action::Scale {
            let wanted = params.get("replicas").and_then(serde_json::Value::as_u64);
            return match (wanted, facts.current_replicas) {
                (Some(w), Some(now)) if w >= now => Risk::Low,
                // Scaling down, or not knowing which way: treat as high.
                _ => Risk::High,
            };
        }
        base
    }

    /// Whether the target is protected (production).
    pub fn is_protected(&self, target: &Component, facts: &TargetFacts) -> bool {
        if let Some(ns) = target.namespace()
            && self.cfg.protected_namespaces.iter().any(|p| p == ns)
        {
            return true;
        }
        if facts
            .labels
            .get(&self.cfg.protected_label)
            .map(String::as_str)
            == Some("true")
        {
            return true;
        }
        self.cfg
            .protected_tags
            .iter()
            .any(|(k, v)| facts.tags.get(k) == Some(v))
    }

    /// Decide one proposal.
    pub fn decide(
        &self,
        action: Action,
        target: &Component,
        params: &serde_json::Value,
        facts: &TargetFacts,
    ) -> Decision {
        let risk = self.risk(action, params, facts);
        match risk {
            Risk::Forbidden => Decision::Forbidden {
                reason: format!("{action} is forbidden by policy"),
            },
            Risk::Read => Decision::Execute { risk },
            Risk::High => Decision::NeedsApproval {
                risk,
                reason: format!("{action} is high risk"),
            },
            Risk::Low if self.is_protected(target, facts) => Decision::NeedsApproval {
                risk,
                reason: format!("{target} is a protected target"),
            },
            Risk::Low => Decision::Execute { risk },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target_for(action: Action, protected: bool) -> (Component, TargetFacts) {
        let ns = if protected { "prod" } else { "staging" };
        let name = action.as_str();
        let c: Component = if name.starts_with("aws.") {
            "aws/ec2/i-0abc".parse().expect("component")
        } else if matches!(action, Action::CordonNode | Action::DrainNode) {
            "node/ip-10-0-0-1".parse().expect("component")
        } else {
            format!("deployment/{ns}/api").parse().expect("component")
        };
        let mut facts = TargetFacts {
            current_replicas: Some(3),
            ..Default::default()
        };
        if protected {
            facts.tags.insert("env".into(), "prod".into());
            facts
                .labels
                .insert("cerebro.io/protected".into(), "true".into());
        }
        (c, facts)
    }

    #[test]
    fn every_action_on_protected_and_unprotected_targets_gets_the_spec_default() {
        let policy = Policy::default();
        for &action in Action::ALL {
            for protected in [false, true] {
                let (target, facts) = target_for(action, protected);
                let params = json!({"replicas": 5});
                let d = policy.decide(action, &target, &params, &facts);
                let expected = match (action.default_risk(), protected) {
                    (Risk::Forbidden, _) => "forbidden",
                    (Risk::Read, _) => "execute",
                    (Risk::High, _) => "approval",
                    (Risk::Low, true) => "approval",
                    (Risk::Low, false) => "execute",
                };
                let got = match d {
                    Decision::Execute { .. } => "execute",
                    Decision::NeedsApproval { .. } => "approval",
                    Decision::Forbidden { .. } => "forbidden",
                };
                assert_eq!(got, expected, "{action} protected={protected}");
            }
        }
    }

    #[test]
    fn scaling_down_or_by_an_unknown_amount_needs_approval_even_when_unprotected() {
        let policy = Policy::default();
        let target: Component = "deployment/staging/api".parse().expect("component");
        let facts = TargetFacts {
            current_replicas: Some(4),
            ..Default::default()
        };
        let down = policy.decide(Action::Scale, &target, &json!({"replicas": 2}), &facts);
        assert!(down.needs_approval());
        let unknown = policy.decide(Action::Scale, &target, &json!({}), &TargetFacts::default());
        assert!(unknown.needs_approval());
        let up = policy.decide(Action::Scale, &target, &json!({"replicas": 6}), &facts);
        assert_eq!(up, Decision::Execute { risk: Risk::Low });
    }

    #[test]
    fn an_override_cannot_make_a_forbidden_action_run() {
        let cfg = PolicyConfig {
            risk_overrides: [("kubernetes.delete_namespace".to_owned(), Risk::Low)].into(),
            ..Default::default()
        };
        let policy = Policy::new(cfg).expect("policy");
        let target: Component = "namespace/staging".parse().expect("component");
        let d = policy.decide(
            Action::DeleteNamespace,
            &target,
            &json!({}),
            &TargetFacts::default(),
        );
        assert!(matches!(d, Decision::Forbidden { .. }));
    }

    #[test]
    fn an_override_naming_an_unknown_action_is_rejected() {
        let cfg = PolicyConfig {
            risk_overrides: [("kubernetes.yolo".to_owned(), Risk::Low)].into(),
            ..Default::default()
        };
        let err = Policy::new(cfg).unwrap_err();
        assert!(err.to_string().contains("kubernetes.yolo"));
    }
}
