//! The agents' hands and eyes: a registry of tools over Prometheus,
//! Kubernetes, AWS, the change feed and log clustering, served (and
//! consumed) over MCP.
//!
//! Every backend implements `brain::backends::ToolBackend`; the
//! [`registry::Registry`] puts them under one name space and applies the
//! checks no backend may skip (schema, timeout, output budget). Each
//! backend comes twice: live, against the real API, and world-replay,
//! answering from a scenario's recorded `world` in the same shapes.

pub mod aws;
pub mod changes;
pub mod gate;
pub mod kubernetes;
pub mod logs;
pub mod mcp;
pub mod prometheus;
pub mod registry;
pub mod schema;
pub mod typed;

pub use registry::{Registry, RegistryError};

/// Every backend answering from a scenario's recorded `world`, as the live
/// ones would: the registry `cerebro eval` gives the agents.
pub fn world_registry(world: &brain::scenario::World) -> Result<Registry, String> {
    use std::sync::Arc;
    let mut r = Registry::new();
    let add = |r: &mut Registry, b: Arc<dyn brain::backends::ToolBackend>| {
        r.add(b).map_err(|e| e.to_string())
    };
    add(&mut r, Arc::new(logs::LogsBackend::default()))?;
    add(
        &mut r,
        Arc::new(changes::ChangeTools::new(Arc::new(
            changes::WorldFeed::new(world),
        ))),
    )?;
    let prom = prometheus::WorldPrometheus::from_world(world);
    add(
        &mut r,
        Arc::new(prometheus::PrometheusTools::new(Arc::new(prom))),
    )?;
    let kube = kubernetes::WorldKubernetes::new(world);
    add(
        &mut r,
        Arc::new(kubernetes::KubernetesTools::new(Arc::new(kube))),
    )?;
    let aws = aws::WorldAws::new(world).map_err(|e| format!("world.aws: {e}"))?;
    add(&mut r, Arc::new(aws::AwsTools::new(Arc::new(aws))))?;
    Ok(r)
}
