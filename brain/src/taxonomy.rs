//! The root-cause taxonomy of `shared/evals/SPEC.md`: every diagnosis names one
//! of these categories.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A root-cause category.
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
pub enum RootCause {
    OomKilled,
    CrashloopConfig,
    ImagePull,
    BadDeploy,
    CpuThrottling,
    DiskPressure,
    NodeFailure,
    DependencyFailure,
    DbConnectionExhaustion,
    DbFailover,
    CertificateExpired,
    CapacitySaturation,
    RateLimited,
    NetworkDns,
    ProbeMisconfig,
}

impl RootCause {
    /// Every category, in the spec's order.
    pub const ALL: [RootCause; 15] = [
        Self::OomKilled,
        Self::CrashloopConfig,
        Self::ImagePull,
        Self::BadDeploy,
        Self::CpuThrottling,
        Self::DiskPressure,
        Self::NodeFailure,
        Self::DependencyFailure,
        Self::DbConnectionExhaustion,
        Self::DbFailover,
        Self::CertificateExpired,
        Self::CapacitySaturation,
        Self::RateLimited,
        Self::NetworkDns,
        Self::ProbeMisconfig,
    ];

    /// The spec's name, e.g. `oom_killed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OomKilled => "oom_killed",
            Self::CrashloopConfig => "crashloop_config",
            Self::ImagePull => "image_pull",
            Self::BadDeploy => "bad_deploy",
            Self::CpuThrottling => "cpu_throttling",
            Self::DiskPressure => "disk_pressure",
            Self::NodeFailure => "node_failure",
            Self::DependencyFailure => "dependency_failure",
            Self::DbConnectionExhaustion => "db_connection_exhaustion",
            Self::DbFailover => "db_failover",
            Self::CertificateExpired => "certificate_expired",
            Self::CapacitySaturation => "capacity_saturation",
            Self::RateLimited => "rate_limited",
            Self::NetworkDns => "network_dns",
            Self::ProbeMisconfig => "probe_misconfig",
        }
    }
}

impl fmt::Display for RootCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a category of the taxonomy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown root-cause category {0:?}")]
pub struct UnknownCategory(pub String);

impl FromStr for RootCause {
    type Err = UnknownCategory;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCategory(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_round_trips_through_its_spec_name_and_serde() {
        for c in RootCause::ALL {
            assert_eq!(c.as_str().parse::<RootCause>(), Ok(c));
            let json = serde_json::to_string(&c).expect("serialize");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn an_unknown_category_is_an_error_naming_it() {
        let err = "out_of_coffee".parse::<RootCause>().unwrap_err();
        assert!(err.to_string().contains("out_of_coffee"));
    }
}
