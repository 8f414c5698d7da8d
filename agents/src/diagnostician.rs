//! The diagnostician: analyzers read the evidence and vote for root-cause
//! hypotheses (a category of the taxonomy on a component), each vote with
//! the observation it rests on. Votes add up per hypothesis; the ranking,
//! the confidence and the explanation come from them, not from prose.
//!
//! The analyzers know Kubernetes, Prometheus and AWS, not scenarios: an
//! OOMKilled container, a waiting reason, a node condition, a log line's
//! wording, a rollout shortly before the alert, an autoscaler at its
//! ceiling, an RDS event.

use crate::investigator::{
    Evidence, Observation, SUSPECT_WINDOW, Workload, array_in, hpa_utilisation, mentioned,
};
use brain::taxonomy::RootCause;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One piece of support for a hypothesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vote {
    /// Index of the observation in the evidence.
    pub observation: usize,
    pub weight: f64,
    pub note: String,
}

/// A candidate root cause.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hypothesis {
    pub category: RootCause,
    /// A component name (SPEC.md's naming).
    pub component: String,
    pub score: f64,
    pub support: Vec<Vote>,
}

/// The diagnosis: hypotheses best first, and the winner's confidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Findings {
    pub ranked: Vec<Hypothesis>,
    pub confidence: f64,
}

impl Findings {
    pub fn best(&self) -> Option<&Hypothesis> {
        self.ranked.first()
    }

    /// A short explanation written from the evidence.
    pub fn explanation(&self, ev: &Evidence) -> String {
        let Some(h) = self.best() else {
            return "No analyzer found a cause in the evidence collected.".into();
        };
        let mut out = format!(
            "{} on {} (confidence {:.2}).",
            h.category.as_str(),
            h.component,
            self.confidence
        );
        let mut notes: Vec<&Vote> = h.support.iter().collect();
        notes.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        for v in notes.iter().take(5) {
            let tool = ev
                .observations
                .get(v.observation)
                .map_or("?", |o| o.tool.as_str());
            out.push_str(&format!("\n- {} [{tool}]", v.note));
        }
        if let Some(second) = self.ranked.get(1) {
            out.push_str(&format!(
                "\nAlso considered: {} on {} (score {:.1} against {:.1}).",
                second.category.as_str(),
                second.component,
                second.score,
                h.score
            ));
        }
        out
    }
}

#[derive(Default)]
struct Ballot {
    votes: BTreeMap<(RootCause, String), Vec<Vote>>,
}

impl Ballot {
    fn vote(&mut self, category: RootCause, component: &str, at: usize, weight: f64, note: String) {
        let votes = self
            .votes
            .entry((category, component.to_owned()))
            .or_default();
        // The same note from many pods counts, but with diminishing weight.
        let repeats = votes.iter().filter(|v| v.note == note).count();
        let weight = weight / (1.0 + repeats as f64);
        votes.push(Vote {
            observation: at,
            weight,
            note,
        });
    }
}

/// Run every analyzer over the evidence.
pub fn diagnose(ev: &Evidence) -> Findings {
    let mut b = Ballot::default();
    let ctx = Context::new(ev);
    containers(&ctx, &mut b);
    events(&ctx, &mut b);
    nodes(&ctx, &mut b);
    logs(&ctx, &mut b);
    rollouts(&ctx, &mut b);
    autoscalers(&ctx, &mut b);
    metrics(&ctx, &mut b);
    certificates(&ctx, &mut b);
    aws(&ctx, &mut b);
    merge_into_single(&mut b, RootCause::DiskPressure, "persistentvolumeclaim/");
    let mut ranked: Vec<Hypothesis> = b
        .votes
        .into_iter()
        .map(|((category, component), support)| {
            let mut score: f64 = support.iter().map(|v| v.weight).sum();
            // What the alert is about is more likely the answer.
            if ctx.focused(&component) {
                score += 0.5;
            }
            // Another workload's own trouble that nothing ties to the
            // alert (not named by it, not in its workloads' logs) is
            // background noise, when the alert names workloads at all.
            if OWN_FAILURES.contains(&category) && !ctx.related(&component) {
                score *= UNRELATED;
            }
            Hypothesis {
                category,
                component,
                score,
                support,
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.component.cmp(&b.component))
    });
    let confidence = confidence(&ranked);
    Findings { ranked, confidence }
}

/// Categories that describe a workload's own failure (as opposed to a
/// dependency, a node or a database it uses).
const OWN_FAILURES: &[RootCause] = &[
    RootCause::ImagePull,
    RootCause::CrashloopConfig,
    RootCause::OomKilled,
    RootCause::ProbeMisconfig,
    RootCause::CpuThrottling,
    RootCause::BadDeploy,
];

/// The share of its score an unrelated workload's own failure keeps.
const UNRELATED: f64 = 0.4;

/// How sure the ranking is of its leader: its margin over the runner-up,
/// scaled down while the evidence for it is thin.
pub fn confidence(ranked: &[Hypothesis]) -> f64 {
    match ranked {
        [] => 0.0,
        [one] => (one.score / 6.0).min(1.0) * 0.95,
        [one, two, ..] => {
            let margin = one.score / (one.score + two.score);
            (margin * (one.score / 6.0).min(1.0)).clamp(0.05, 0.99)
        }
    }
}

/// Lookups shared by the analyzers.
struct Context<'a> {
    ev: &'a Evidence,
    workloads: Vec<Workload>,
}

impl<'a> Context<'a> {
    fn new(ev: &'a Evidence) -> Self {
        Context {
            ev,
            workloads: ev.workloads(),
        }
    }

    fn all(&self, tool: &'a str) -> impl Iterator<Item = (usize, &'a Observation)> + 'a {
        self.ev
            .observations
            .iter()
            .enumerate()
            .filter(move |(_, o)| o.tool == tool && o.ok())
    }

    fn focused(&self, component: &str) -> bool {
        self.ev.focus.iter().any(|w| w.component() == component)
    }

    /// Whether a workload `component` has anything to do with the alert:
    /// true when the alert names no workload, when it is one of them,
    /// when the alert mentions it, or when the logs of the alert's
    /// workloads do. Other components (nodes, databases, outside
    /// services) always count as related.
    fn related(&self, component: &str) -> bool {
        let Some(name) = component
            .strip_prefix("deployment/")
            .or_else(|| component.strip_prefix("statefulset/"))
            .or_else(|| component.strip_prefix("daemonset/"))
            .and_then(|rest| rest.split('/').nth(1))
        else {
            return true;
        };
        if self.ev.focus.is_empty() || self.focused(component) || self.ev.subject.mentions(name) {
            return true;
        }
        let name = name.to_lowercase();
        self.ev.of("get_pod_logs").any(|o| {
            let pod = o.arg("pod").unwrap_or_default();
            self.ev
                .focus
                .iter()
                .any(|w| pod.starts_with(&format!("{}-", w.name)))
                && mentioned(&o.text.to_lowercase(), &name)
        })
    }

    /// The component a pod's fault is named on: its workload, or the pod.
    fn owner(&self, namespace: &str, pod: &str) -> String {
        self.ev
            .owner_of(namespace, pod)
            .map(|w| w.component())
            .unwrap_or_else(|| format!("pod/{namespace}/{pod}"))
    }

    /// The component a host name in a log line stands for: an RDS
    /// instance, an in-cluster workload behind a service of that name, or
    /// something external.
    fn host_component(&self, host: &str, namespace: &str, line: &str) -> String {
        let host = host.trim_end_matches('.').to_lowercase();
        let first = host.split('.').next().unwrap_or(&host).to_owned();
        for (_, o) in self.all("list_rds_instances") {
            for db in array_in(&o.data) {
                let id = db["DBInstanceIdentifier"].as_str().unwrap_or_default();
                let endpoint = db["Endpoint"]["Address"].as_str().unwrap_or_default();
                if !id.is_empty() && (id.eq_ignore_ascii_case(&first) || endpoint == host) {
                    return format!("aws/rds/{id}");
                }
            }
        }
        // `svc`, `svc.ns`, `svc.ns.svc.cluster.local`
        let parts: Vec<&str> = host.split('.').collect();
        let known_ns = |n: &str| self.workloads.iter().any(|w| w.namespace == n);
        let in_cluster = parts.len() == 1
            || host.ends_with(".svc.cluster.local")
            || host.ends_with(".svc")
            || parts.len() == 2 && known_ns(parts[1]);
        if in_cluster {
            let ns = parts.get(1).copied().unwrap_or(namespace);
            let candidates: Vec<&Workload> = self
                .workloads
                .iter()
                .filter(|w| {
                    w.name == first
                        || first.starts_with(&format!("{}-", w.name))
                        || w.name.starts_with(&format!("{first}-"))
                })
                .collect();
            if let Some(w) = candidates
                .iter()
                .find(|w| w.namespace == ns && w.name == first)
                .or_else(|| candidates.iter().find(|w| w.namespace == ns))
                .or_else(|| candidates.first())
            {
                return w.component();
            }
            if parts.len() <= 2 || host.ends_with(".svc.cluster.local") {
                return format!("service/{ns}/{first}");
            }
        }
        // An outside API: named by its registered name (`api.stripe.com` →
        // `stripe`), or the alert's own word for it when it has one.
        let label = if parts.len() >= 2 {
            parts[parts.len() - 2]
        } else {
            &first
        };
        // The service's own name for it (`upstream=adyen-api`), from the
        // line, else the alert.
        let spoken = [line, self.ev.subject.text.as_str()]
            .into_iter()
            .find_map(|t| {
                t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .find(|w| w.starts_with(&format!("{label}-")) && w.len() <= label.len() + 10)
            });
        format!("external/{}", spoken.unwrap_or(label))
    }
}

impl Context<'_> {
    /// A peer named by a log field: the workload of that name (in
    /// `namespace` first), else an outside service of that name.
    fn peer_component(&self, peer: &str, namespace: &str) -> String {
        if peer.contains('.') {
            return self.host_component(peer, namespace, "");
        }
        self.workloads
            .iter()
            .find(|w| w.namespace == namespace && w.name == peer)
            .or_else(|| self.workloads.iter().find(|w| w.name == peer))
            .map_or_else(|| format!("external/{peer}"), Workload::component)
    }

    /// The database a service in `namespace` most likely uses when its
    /// logs do not name one: a database StatefulSet there, else the only
    /// RDS instance.
    fn database_for(&self, namespace: &str) -> Option<String> {
        const DB: &[&str] = &[
            "postgres",
            "postgresql",
            "pg",
            "mysql",
            "mariadb",
            "db",
            "database",
            "mongo",
            "mongodb",
            "cockroach",
        ];
        let is_db = |name: &str| name.split(['-', '_']).any(|p| DB.contains(&p));
        if let Some(w) = self
            .workloads
            .iter()
            .find(|w| w.namespace == namespace && w.kind == "statefulset" && is_db(&w.name))
        {
            return Some(w.component());
        }
        let rds: Vec<String> = self
            .all("list_rds_instances")
            .flat_map(|(_, o)| array_in(&o.data))
            .filter_map(|d| {
                d["DBInstanceIdentifier"]
                    .as_str()
                    .map(|i| format!("aws/rds/{i}"))
            })
            .collect();
        match rds.as_slice() {
            [one] => Some(one.clone()),
            _ => self
                .workloads
                .iter()
                .find(|w| w.kind == "statefulset" && is_db(&w.name))
                .map(Workload::component),
        }
    }

    /// The Kubernetes node running on EC2 instance `id` (by private DNS
    /// name or IP), when there is one.
    fn node_of_instance(&self, id: &str) -> Option<String> {
        let inst = self
            .all("list_ec2_instances")
            .flat_map(|(_, o)| array_in(&o.data))
            .find(|i| i["InstanceId"] == id)?;
        let dns = inst["PrivateDnsName"].as_str().unwrap_or_default();
        let ip = inst["PrivateIpAddress"]
            .as_str()
            .unwrap_or("-")
            .replace('.', "-");
        self.all("list_nodes")
            .flat_map(|(_, o)| o.data["nodes"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n["name"].as_str().map(str::to_owned))
            .find(|n| (!dns.is_empty() && n == dns) || n.starts_with(&format!("ip-{ip}")))
            .map(|n| format!("node/{n}"))
    }

    /// Who breaks name resolution for pods of `namespace`: a network
    /// policy changed there shortly before the alert, else an unhealthy
    /// cluster DNS, else the cluster DNS deployment itself.
    fn dns_culprit(&self, namespace: &str) -> String {
        for (_, o) in self.all("list_recent_changes") {
            for c in o.data["changes"].as_array().into_iter().flatten() {
                let target = c["target"].as_str().unwrap_or_default();
                let recent = self.ev.subject.is_suspect_time(&c["at"]);
                if recent
                    && target.starts_with("networkpolicy/")
                    && (namespace.is_empty() || target.contains(&format!("/{namespace}/")))
                {
                    return target.to_owned();
                }
            }
        }
        let dns = self.workloads.iter().find(|w| {
            w.namespace == "kube-system" && (w.name == "coredns" || w.name == "kube-dns")
        });
        match dns {
            Some(w) => w.component(),
            None => "deployment/kube-system/coredns".into(),
        }
    }
}

/// Words of a database's own error messages.
const DB_ERROR_WORDS: &[&str] = &[
    "error 1114",
    "error 28",
    "storage engine",
    "is full",
    "sqlstate",
    "mysql",
    "postgres",
    "could not extend file",
    "could not write to file",
    "pq:",
    "ora-",
    "mongo",
];

const CONFIG_WORDS: &[&str] = &[
    "missing required",
    "is required",
    "must be set",
    "not set",
    "environment variable",
    "env var",
    "no such file or directory",
    "invalid configuration",
    "invalid config",
    "configuration error",
    "config error",
    "failed to load config",
    "failed to parse config",
    "could not load config",
    "unknown flag",
    "unknown option",
    "secret",
    "undefined variable",
    "keyerror",
    "permission denied",
];

fn pod_of(o: &Observation) -> (&str, &str) {
    (
        o.arg("namespace").unwrap_or_default(),
        o.arg("pod").or(o.arg("name")).unwrap_or_default(),
    )
}

/// Container states: OOMKilled, image pulls, config errors, crash loops.
fn containers(ctx: &Context, b: &mut Ballot) {
    for (i, o) in ctx.all("describe_pod") {
        let (ns, pod) = pod_of(o);
        let owner = ctx.owner(ns, pod);
        for c in o.data["containers"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default();
            for st in [&c["state"], &c["last_state"]] {
                let reason = st["reason"].as_str().unwrap_or_default();
                let code = st["exit_code"].as_i64();
                match reason {
                    "OOMKilled" => b.vote(
                        RootCause::OomKilled,
                        &owner,
                        i,
                        3.0,
                        format!(
                            "container {name} of {pod} was OOMKilled (exit {})",
                            code.unwrap_or(137)
                        ),
                    ),
                    "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName"
                    | "ErrImageNeverPull" => b.vote(
                        RootCause::ImagePull,
                        &owner,
                        i,
                        3.0,
                        format!(
                            "container {name} of {pod} cannot pull {} ({reason})",
                            c["image"].as_str().unwrap_or("its image")
                        ),
                    ),
                    "CreateContainerConfigError" | "CreateContainerError" => b.vote(
                        RootCause::CrashloopConfig,
                        &owner,
                        i,
                        3.0,
                        format!(
                            "container {name} of {pod} cannot start: {reason} {}",
                            st["message"].as_str().unwrap_or_default()
                        ),
                    ),
                    _ => {}
                }
            }
            let last = &c["last_state"];
            let code = last["exit_code"].as_i64();
            let crashing = c["state"]["reason"] == "CrashLoopBackOff"
                || c["restarts"].as_i64().unwrap_or(0) >= 3;
            if crashing && last["state"] == "terminated" && last["reason"] != "OOMKilled" {
                let started = last["started"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok());
                let finished = last["finished"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok());
                let lived = match (started, finished) {
                    (Some(s), Some(f)) => Some((f - s).num_seconds()),
                    _ => None,
                };
                // Dies within seconds of starting with an error exit: it
                // never got going (configuration), rather than being
                // killed later.
                if matches!(code, Some(1..=127)) && lived.is_none_or(|s| s < 30) {
                    b.vote(
                        RootCause::CrashloopConfig,
                        &owner,
                        i,
                        1.0,
                        format!(
                            "container {name} of {pod} exits with code {} right after start",
                            code.unwrap_or(1)
                        ),
                    );
                }
                // Killed by the kubelet (137/143 without OOM) after running
                // for a while, with probes configured: probe restarts.
                if matches!(code, Some(137 | 143)) && c["liveness_probe"].is_string() {
                    b.vote(
                        RootCause::ProbeMisconfig,
                        &owner,
                        i,
                        1.0,
                        format!(
                            "container {name} of {pod} was killed (exit {}) but not for memory",
                            code.unwrap_or(137)
                        ),
                    );
                }
            }
        }
    }
}

/// Warning events: probes, nodes, pulls, scheduling, volumes.
fn events(ctx: &Context, b: &mut Ballot) {
    let mut seen = std::collections::BTreeSet::new();
    let tools = ["list_events", "describe_pod"];
    for tool in tools {
        for (i, o) in ctx.all(tool) {
            for e in o.data["events"].as_array().into_iter().flatten() {
                let key = format!("{}{}{}", e["object"], e["reason"], e["message"]);
                if !seen.insert(key) {
                    continue;
                }
                let ns = e["namespace"]
                    .as_str()
                    .or(o.arg("namespace"))
                    .unwrap_or_default();
                let object = e["object"].as_str().unwrap_or_default();
                let (kind, name) = object.split_once('/').unwrap_or(("", object));
                let reason = e["reason"].as_str().unwrap_or_default();
                let message = e["message"].as_str().unwrap_or_default();
                let m = message.to_lowercase();
                let count = e["count"].as_f64().unwrap_or(1.0);
                let weight = (1.0 + count.ln_1p() / 3.0).min(2.0);
                let subject = if kind == "Pod" {
                    ctx.owner(ns, name)
                } else {
                    format!(
                        "{}/{}{}",
                        kind.to_lowercase(),
                        if ns.is_empty() || kind == "Node" {
                            String::new()
                        } else {
                            format!("{ns}/")
                        },
                        name
                    )
                };
                if m.contains("liveness probe failed") || m.contains("failed liveness probe") {
                    b.vote(
                        RootCause::ProbeMisconfig,
                        &subject,
                        i,
                        weight,
                        format!("{object}: {message}"),
                    );
                } else if m.contains("readiness probe failed") {
                    b.vote(
                        RootCause::ProbeMisconfig,
                        &subject,
                        i,
                        weight * 0.5,
                        format!("{object}: {message}"),
                    );
                }
                if kind == "Node"
                    && (reason == "NodeNotReady"
                        || m.contains("notready")
                        || m.contains("not ready"))
                {
                    b.vote(
                        RootCause::NodeFailure,
                        &format!("node/{name}"),
                        i,
                        2.0,
                        format!("{object}: {reason} {message}"),
                    );
                }
                if reason == "Evicted" && m.contains("ephemeral-storage") {
                    b.vote(
                        RootCause::DiskPressure,
                        &subject,
                        i,
                        1.0,
                        format!("{object}: {message}"),
                    );
                }
                if m.contains("no space left on device") {
                    b.vote(
                        RootCause::DiskPressure,
                        &subject,
                        i,
                        2.0,
                        format!("{object}: {message}"),
                    );
                }
                if (reason == "Failed" || reason == "BackOff")
                    && (m.contains("pull")
                        || m.contains("manifest unknown")
                        || m.contains("not found"))
                    && m.contains("image")
                {
                    b.vote(
                        RootCause::ImagePull,
                        &subject,
                        i,
                        1.5,
                        format!("{object}: {message}"),
                    );
                }
                if m.contains("x509")
                    || m.contains("certificate has expired")
                    || m.contains("certificate expired")
                {
                    b.vote(
                        RootCause::CertificateExpired,
                        &subject,
                        i,
                        1.0,
                        format!("{object}: {message}"),
                    );
                }
                if kind != "Pod"
                    && kind != "Node"
                    && (m.contains("expired") && (m.contains("certificate") || m.contains("tls")))
                {
                    b.vote(
                        RootCause::CertificateExpired,
                        &subject,
                        i,
                        2.0,
                        format!("{object}: {message}"),
                    );
                }
            }
        }
    }
}

/// Nodes that are not ready or under disk pressure.
fn nodes(ctx: &Context, b: &mut Ballot) {
    for (i, o) in ctx.all("list_nodes") {
        for n in o.data["nodes"].as_array().into_iter().flatten() {
            let name = n["name"].as_str().unwrap_or_default();
            if n["ready"] == false {
                b.vote(
                    RootCause::NodeFailure,
                    &format!("node/{name}"),
                    i,
                    4.0,
                    format!(
                        "node {name} is {} (Ready={})",
                        "not ready",
                        n["ready_status"].as_str().unwrap_or("Unknown")
                    ),
                );
            }
            if n["pressure"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == "DiskPressure"))
            {
                b.vote(
                    RootCause::DiskPressure,
                    &format!("node/{name}"),
                    i,
                    2.5,
                    format!("node {name} reports DiskPressure"),
                );
            }
        }
    }
}

/// What log lines say, and who they are about.
struct LogRule {
    category: RootCause,
    words: &'static [&'static str],
    weight: f64,
    /// Whose fault: the pod's own workload, or the host the line names.
    blame_host: bool,
}

const LOG_RULES: &[LogRule] = &[
    LogRule {
        category: RootCause::OomKilled,
        words: &[
            "outofmemoryerror",
            "out of memory",
            "cannot allocate memory",
            "oom-kill",
            "heap limit",
        ],
        weight: 1.0,
        blame_host: false,
    },
    LogRule {
        category: RootCause::DiskPressure,
        words: &[
            "no space left on device",
            "disk full",
            "enospc",
            "disk quota exceeded",
            "not enough space",
            "error 1114",
            "got error 28",
            "storage-full",
            "storage full",
        ],
        weight: 2.5,
        blame_host: false,
    },
    LogRule {
        category: RootCause::CertificateExpired,
        words: &[
            "certificate has expired",
            "certificate expired",
            "x509: certificate",
            "certificate is not valid",
            "tls: failed to verify",
            "ssl certificate problem",
            "certificate verify failed",
        ],
        weight: 2.5,
        blame_host: true,
    },
    LogRule {
        category: RootCause::NetworkDns,
        words: &[
            "no such host",
            "server misbehaving",
            "temporary failure in name resolution",
            "name or service not known",
            "could not resolve host",
            "getaddrinfo",
            "nxdomain",
            "dns lookup",
            "dns resolution",
            "unknownhostexception",
            "couldn't resolve",
            "could not resolve",
            ":53: i/o timeout",
            ":53: read udp",
            "on 10.96.0.10:53",
        ],
        weight: 2.5,
        blame_host: false,
    },
    LogRule {
        category: RootCause::DbConnectionExhaustion,
        words: &[
            "too many clients",
            "too many connections",
            "remaining connection slots",
            "connection pool exhausted",
            "pool exhausted",
            "timeout acquiring connection",
            "could not obtain connection",
            "max_connections",
            "connection limit exceeded",
            "too many open connections",
        ],
        weight: 3.0,
        blame_host: true,
    },
    LogRule {
        category: RootCause::DbFailover,
        words: &[
            "terminating connection due to administrator command",
            "in recovery mode",
            "read-only transaction",
            "failover",
            "the database system is shutting down",
            "the database system is starting up",
            "read only replica",
            "--read-only option",
        ],
        weight: 2.0,
        blame_host: true,
    },
    LogRule {
        category: RootCause::RateLimited,
        words: &[
            "slowdown",
            "reduce your request rate",
            "too many requests",
            "rate exceeded",
            "rate limit",
            "ratelimit",
            "throttlingexception",
            "requestlimitexceeded",
            " 429",
        ],
        weight: 2.5,
        blame_host: true,
    },
    LogRule {
        category: RootCause::DependencyFailure,
        words: &[
            "connection refused",
            "econnrefused",
            "no healthy upstream",
            "upstream connect error",
            "503 service unavailable",
            "status 503",
            "status=503",
            "502 bad gateway",
            "circuit breaker open",
            "circuit open",
            "connection reset",
            "upstream request timeout",
            "i/o timeout",
            "context deadline exceeded",
            "unavailable",
        ],
        weight: 1.0,
        blame_host: true,
    },
];

/// Last labels of host names worth taking as machines (not Java packages
/// or file names).
const TLDS: &[&str] = &[
    "com", "net", "org", "io", "local", "internal", "svc", "dev", "app", "cloud", "co", "ai", "us",
    "eu", "de", "uk", "fr", "nl", "info", "biz", "me", "tech", "xyz", "corp", "lan", "intra",
];

/// The peer a structured log line names in a field (`"upstream":"x"`,
/// `upstream=x`, `peer.service=x`), lower-cased as the line is.
fn upstream_field(line: &str) -> Option<String> {
    const KEYS: &[&str] = &[
        "upstream",
        "dependency",
        "peer.service",
        "peer_service",
        "remote_service",
        "downstream",
    ];
    for key in KEYS {
        for pattern in [format!("\"{key}\":"), format!("{key}=")] {
            let Some(i) = line.find(&pattern) else {
                continue;
            };
            let value: String = line[i + pattern.len()..]
                .trim_start_matches([' ', '"'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            if value.len() >= 3 && !value.chars().all(|c| c.is_ascii_digit()) {
                return Some(value);
            }
        }
    }
    None
}

/// Host names in a log line: `a.b.c`, `name:port`, URLs.
fn hosts(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in line.split(|c: char| c.is_whitespace() || "\"'()[]{},;<>=@".contains(c)) {
        let t = raw
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_start_matches("tcp://");
        let t = t
            .trim_start_matches("redis://")
            .trim_start_matches("postgres://")
            .trim_start_matches("postgresql://")
            .trim_start_matches("mysql://");
        let host = t
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches([':', '.']);
        let (host, port) = match host.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => (h, true),
            _ => (host, false),
        };
        let host = host.trim_end_matches(['.', ':']);
        if host.len() < 3
            || host.chars().all(|c| c.is_ascii_digit() || c == '.')
            || host.eq_ignore_ascii_case("localhost")
            || host.to_ascii_lowercase().ends_with(".localhost")
        {
            continue;
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            continue;
        }
        if !host.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        let dotted = host.contains('.')
            && host
                .rsplit('.')
                .next()
                .is_some_and(|tld| TLDS.contains(&tld.to_ascii_lowercase().as_str()))
            && host.split('.').all(|l| l.len() >= 2);
        if port || dotted {
            out.push(host.to_lowercase());
        }
    }
    out
}

/// Whether a host names code or a file rather than a machine.
fn looks_like_code(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or_default();
    [
        "java",
        "py",
        "go",
        "rs",
        "js",
        "ts",
        "rb",
        "scala",
        "kt",
        "conf",
        "yaml",
        "yml",
        "json",
        "log",
        "txt",
        "sql",
        "sh",
        "toml",
        "ini",
        "properties",
        "so",
        "jar",
    ]
    .contains(&last)
        || host.starts_with("java.")
        || host.starts_with("org.")
        || host.starts_with("com.") && host.split('.').count() > 3
}

fn logs(ctx: &Context, b: &mut Ballot) {
    let mut logs: Vec<(usize, String, String, bool)> = Vec::new();
    for (i, o) in ctx.all("get_pod_logs") {
        let (ns, pod) = pod_of(o);
        let previous = o.args["previous"] == true;
        logs.push((i, ns.to_owned(), format!("pod {pod}"), previous));
    }
    for (i, o) in ctx.all("query_cloudwatch_logs") {
        logs.push((
            i,
            String::new(),
            format!("log group {}", o.arg("log_group").unwrap_or("?")),
            false,
        ));
    }
    for (i, ns, whose, previous) in logs {
        let o = &ctx.ev.observations[i];
        let pod = o.arg("pod").unwrap_or_default();
        let owner = if pod.is_empty() {
            None
        } else {
            Some(ctx.owner(&ns, pod))
        };
        let text = o.text.to_lowercase();
        let mut counted: BTreeMap<(RootCause, String), usize> = BTreeMap::new();
        for line in text.lines() {
            let mut specific = false;
            for rule in LOG_RULES {
                let Some(word) = rule.words.iter().find(|w| line.contains(*w)) else {
                    continue;
                };
                if rule.category == RootCause::DependencyFailure && specific {
                    continue;
                }
                specific = true;
                let mut targets: Vec<String> = Vec::new();
                if rule.blame_host {
                    for h in hosts(line) {
                        if !looks_like_code(&h) {
                            targets.push(ctx.host_component(&h, &ns, line));
                        }
                    }
                    // A bucket named in the line.
                    if rule.category == RootCause::RateLimited {
                        for (_, lo) in ctx.all("list_s3_buckets") {
                            for bk in array_in(&lo.data) {
                                if let Some(name) = bk["Name"].as_str()
                                    && mentioned(line, &name.to_lowercase())
                                {
                                    targets.insert(0, format!("aws/s3/{name}"));
                                }
                            }
                        }
                    }
                    // Structured logs name the peer in a field instead
                    // of a host: `"upstream":"geocoding-api"`.
                    if targets.is_empty()
                        && let Some(peer) = upstream_field(line)
                    {
                        targets.push(ctx.peer_component(&peer, &ns));
                    }
                    // The line's own workload is not the culprit of a
                    // dependency it cannot reach.
                    targets.retain(|t| Some(t) != owner.as_ref());
                    targets.truncate(1);
                }
                // A database that reports its storage full is the one at
                // fault, not the service that got the error.
                if rule.category == RootCause::DiskPressure
                    && DB_ERROR_WORDS.iter().any(|w| line.contains(w))
                    && let Some(db) = ctx.database_for(&ns)
                {
                    targets = vec![db];
                }
                // Names do not resolve: the resolver path is at fault, not
                // the names looked up.
                if rule.category == RootCause::NetworkDns {
                    targets = vec![ctx.dns_culprit(&ns)];
                }
                if targets.is_empty()
                    && matches!(
                        rule.category,
                        RootCause::DbConnectionExhaustion | RootCause::DbFailover
                    )
                    && let Some(db) = ctx.database_for(&ns)
                {
                    targets.push(db);
                }
                if targets.is_empty() {
                    match (&owner, rule.blame_host) {
                        (Some(w), false) => targets.push(w.clone()),
                        (Some(w), true)
                            if matches!(
                                rule.category,
                                RootCause::CertificateExpired
                                    | RootCause::NetworkDns
                                    | RootCause::RateLimited
                            ) =>
                        {
                            targets.push(w.clone())
                        }
                        _ => {}
                    }
                }
                for t in targets {
                    let n = counted.entry((rule.category, t.clone())).or_default();
                    *n += 1;
                    if *n > 3 {
                        continue;
                    }
                    let weight = rule.weight / *n as f64
                        * if previous && !rule.blame_host {
                            1.2
                        } else {
                            1.0
                        };
                    let shown: String = line.chars().take(160).collect();
                    b.vote(
                        rule.category,
                        &t,
                        i,
                        weight,
                        format!("{whose} logs \"{word}\": {}", shown.trim()),
                    );
                }
            }
            // A crashed container's last words about its configuration.
            if previous
                && let Some(w) = &owner
                && let Some(word) = CONFIG_WORDS.iter().find(|x| line.contains(*x))
                && (line.contains("error")
                    || line.contains("fatal")
                    || line.contains("panic")
                    || line.contains("exception")
                    || line.contains("failed"))
            {
                let n = counted
                    .entry((RootCause::CrashloopConfig, w.clone()))
                    .or_default();
                *n += 1;
                if *n <= 2 {
                    let shown: String = line.chars().take(160).collect();
                    b.vote(
                        RootCause::CrashloopConfig,
                        w,
                        i,
                        2.0 / *n as f64,
                        format!("{whose} crashed saying \"{word}\": {}", shown.trim()),
                    );
                }
            }
        }
    }
}

/// A deploy or config change to a workload shortly before the alert,
/// followed by errors: the rollout is the cause.
fn rollouts(ctx: &Context, b: &mut Ballot) {
    let subject = &ctx.ev.subject;
    for (i, o) in ctx.all("list_recent_changes") {
        for c in o.data["changes"].as_array().into_iter().flatten() {
            let Some(minutes) = subject.minutes_before(&c["at"]) else {
                continue;
            };
            if !SUSPECT_WINDOW.contains(&minutes) {
                continue;
            }
            let target = c["target"].as_str().unwrap_or_default();
            let kind = c["kind"].as_str().unwrap_or_default();
            let description = c["description"].as_str().unwrap_or_default();
            let Some(w) = ctx.workloads.iter().find(|w| {
                w.component() == target
                    || target.ends_with(&format!("/{}", w.name)) && target.contains(&w.namespace)
            }) else {
                continue;
            };
            let component = w.component();
            // Closer to the alert weighs more.
            let near = if minutes <= 60 { 1.0 } else { 0.5 };
            let focus = ctx.focused(&component);
            if kind == "deploy" {
                b.vote(
                    RootCause::BadDeploy,
                    &component,
                    i,
                    (if focus { 2.0 } else { 0.7 }) * near,
                    format!("{kind} of {target} {minutes} min before the alert: {description}"),
                );
            }
            // A change just before a crash loop of the same workload.
            for cat in [
                RootCause::CrashloopConfig,
                RootCause::ImagePull,
                RootCause::OomKilled,
                RootCause::ProbeMisconfig,
            ] {
                if b.votes.contains_key(&(cat, component.clone())) {
                    b.vote(
                        cat,
                        &component,
                        i,
                        1.0 * near,
                        format!("{kind} of {target} {minutes} min before: {description}"),
                    );
                }
            }
        }
    }
    // New pods of a focus workload throwing errors after its rollout.
    for (i, o) in ctx.all("get_rollout_history") {
        let ns = o.arg("namespace").unwrap_or_default();
        let name = o.arg("name").unwrap_or_default();
        let revs = o.data["revisions"].as_array().cloned().unwrap_or_default();
        let Some(last) = revs.last() else { continue };
        let Some(minutes) = subject.minutes_before(&last["at"]) else {
            continue;
        };
        if !(-5..=120).contains(&minutes) || revs.len() < 2 {
            continue;
        }
        let prev = &revs[revs.len() - 2];
        if prev["images"] == last["images"] {
            continue;
        }
        let component = ctx
            .workloads
            .iter()
            .find(|w| w.namespace == ns && w.name == name)
            .map(Workload::component)
            .unwrap_or_else(|| format!("deployment/{ns}/{name}"));
        let errors = ctx.all("get_pod_logs").any(|(_, l)| {
            l.arg("namespace") == Some(ns)
                && l.arg("pod")
                    .is_some_and(|p| p.starts_with(&format!("{name}-")))
                && l.text.to_lowercase().lines().any(|line| {
                    [
                        "exception",
                        "panic",
                        "traceback",
                        " error ",
                        "error:",
                        "level=error",
                        "\"error\"",
                        "fatal",
                        "nullpointer",
                        "5xx",
                        " 500 ",
                    ]
                    .iter()
                    .any(|w| line.contains(w))
                })
        });
        let weight = if errors { 2.0 } else { 0.8 };
        b.vote(
            RootCause::BadDeploy,
            &component,
            i,
            weight,
            format!(
                "revision {} ({}) rolled out {minutes} min before the alert{}",
                last["revision"],
                last["images"]
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                if errors { "; its pods log errors" } else { "" }
            ),
        );
    }
}

/// How far past its target an autoscaler's first metric is: 1.0 at or
/// below 1.5 times the target, up to 1.3 beyond twice it.
fn hpa_pressure(h: &Value) -> f64 {
    match hpa_utilisation(h) {
        Some((now, goal)) if goal > 0.0 => (1.0 + (now / goal - 1.5).max(0.0) * 0.6).min(1.3),
        _ => 1.0,
    }
}

/// Autoscalers pinned at their ceiling.
fn autoscalers(ctx: &Context, b: &mut Ballot) {
    for (i, o) in ctx.all("list_hpas") {
        for h in o.data["hpas"].as_array().into_iter().flatten() {
            if h["at_max"] != true {
                continue;
            }
            let ns = h["namespace"].as_str().unwrap_or_default();
            let target = h["target"].as_str().unwrap_or_default();
            let (kind, name) = target.split_once('/').unwrap_or(("Deployment", target));
            let component = format!("{}/{ns}/{name}", kind.to_lowercase());
            b.vote(
                RootCause::CapacitySaturation,
                &component,
                i,
                2.5 * hpa_pressure(h),
                format!(
                    "autoscaler {ns}/{} is at its maximum of {} replicas ({} against target {})",
                    h["name"].as_str().unwrap_or_default(),
                    h["max"],
                    h["metrics"],
                    h["targets"]
                ),
            );
        }
    }
}

/// One summarised series.
struct SeriesSummary<'a> {
    at: usize,
    labels: &'a serde_json::Map<String, Value>,
    summary: &'a Value,
}

impl SeriesSummary<'_> {
    fn name(&self) -> &str {
        self.labels
            .get("__name__")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn label(&self, k: &str) -> Option<&str> {
        self.labels.get(k).and_then(Value::as_str)
    }
    fn num(&self, k: &str) -> f64 {
        self.summary[k].as_f64().unwrap_or(f64::NAN)
    }
}

fn series<'a>(ctx: &'a Context) -> Vec<SeriesSummary<'a>> {
    let mut out = Vec::new();
    for (i, o) in ctx.all("summarize_metric") {
        for row in o.data.as_array().into_iter().flatten() {
            if let Some(labels) = row["metric"].as_object() {
                out.push(SeriesSummary {
                    at: i,
                    labels,
                    summary: &row["summary"],
                });
            }
        }
    }
    out
}

/// The component a series is about, from its labels.
fn series_component(ctx: &Context, s: &SeriesSummary) -> Option<String> {
    // A series without a namespace (a Kafka exporter's lag by consumer
    // group, say) is about the workload one of its labels names.
    let Some(ns) = s.label("namespace") else {
        return s.labels.values().filter_map(Value::as_str).find_map(|v| {
            let mut named = ctx.workloads.iter().filter(|w| w.name == v);
            match (named.next(), named.next()) {
                (Some(w), None) => Some(w.component()),
                _ => None,
            }
        });
    };
    // A full volume is the claim's fault, whoever writes to it.
    if let Some(pvc) = s.label("persistentvolumeclaim") {
        return Some(format!("persistentvolumeclaim/{ns}/{pvc}"));
    }
    if let Some(pod) = s.label("pod") {
        return Some(ctx.owner(ns, pod));
    }
    for k in [
        "deployment",
        "statefulset",
        "service",
        "app",
        "job",
        "consumergroup",
        "group",
        "consumer_group",
    ] {
        if let Some(name) = s.label(k)
            && let Some(w) = ctx
                .workloads
                .iter()
                .find(|w| w.namespace == ns && w.name == name)
        {
            return Some(w.component());
        }
    }
    // A namespace-wide recording rule: the one workload the alert names
    // there, if there is just one.
    let mut focus = ctx.ev.focus.iter().filter(|w| w.namespace == ns);
    match (focus.next(), focus.next()) {
        (Some(w), None) => Some(w.component()),
        _ => None,
    }
}

/// How much a share of throttled CPU periods says: a quarter (the usual
/// alert threshold) is a hint, a half or more is the cause.
fn throttling_weight(ratio: f64) -> f64 {
    3.0 * ((ratio - 0.2) / 0.4).clamp(0.25, 1.0)
}

fn metrics(ctx: &Context, b: &mut Ballot) {
    let all = series(ctx);
    // CPU throttling: a ratio series, or throttled/total period counters.
    // Keyed by (component, pod, container): a sidecar's counters must not
    // mix with the main container's.
    let mut periods: BTreeMap<(String, String, String), (f64, f64)> = BTreeMap::new();
    let key = |c: &str, s: &SeriesSummary| {
        (
            c.to_owned(),
            s.label("pod").unwrap_or_default().to_owned(),
            s.label("container").unwrap_or_default().to_owned(),
        )
    };
    for s in &all {
        let name = s.name();
        if name.contains("throttl") {
            let Some(c) = series_component(ctx, s) else {
                continue;
            };
            if name.ends_with("_total") {
                let delta = s.num("last") - s.num("first");
                periods.entry(key(&c, s)).or_insert((f64::NAN, f64::NAN)).0 = delta;
            } else if s.num("max") >= 0.25 && s.num("max") <= 1.0
                || s.num("max") >= 25.0 && s.num("max") <= 100.0 && name.contains("percent")
            {
                let ratio = if s.num("max") > 1.0 {
                    s.num("max") / 100.0
                } else {
                    s.num("max")
                };
                b.vote(
                    RootCause::CpuThrottling,
                    &c,
                    s.at,
                    throttling_weight(ratio),
                    format!(
                        "{name} reached {:.2} (mean {:.2})",
                        s.num("max"),
                        s.num("mean")
                    ),
                );
            }
        } else if name.contains("cfs_periods")
            && name.ends_with("_total")
            && let Some(c) = series_component(ctx, s)
        {
            periods.entry(key(&c, s)).or_insert((f64::NAN, f64::NAN)).1 =
                s.num("last") - s.num("first");
        }
    }
    let first = all.first().map_or(0, |s| s.at);
    for ((c, pod, container), (throttled, total)) in periods {
        if total > 0.0 && throttled / total >= 0.25 {
            b.vote(
                RootCause::CpuThrottling,
                &c,
                first,
                throttling_weight(throttled / total),
                format!(
                    "{:.0}% of CPU periods of {pod}/{container} throttled over the last hour",
                    100.0 * throttled / total
                ),
            );
        }
    }
    for s in &all {
        let name = s.name();
        let Some(c) = series_component(ctx, s) else {
            continue;
        };
        // Volumes close to full.
        if name.contains("volume_stats_available_bytes") || name.contains("filesystem_avail") {
            let cap = all.iter().find(|o| {
                (o.name().contains("volume_stats_capacity_bytes")
                    || o.name().contains("filesystem_size"))
                    && o.label("persistentvolumeclaim") == s.label("persistentvolumeclaim")
                    && o.label("namespace") == s.label("namespace")
            });
            let free = cap.map(|cap| s.num("last") / cap.num("last"));
            if free.is_some_and(|f| f < 0.08)
                || cap.is_none()
                    && s.num("last") < 512.0 * 1024.0 * 1024.0
                    && s.summary["trend"] == "falling"
            {
                b.vote(
                    RootCause::DiskPressure,
                    &c,
                    s.at,
                    3.0,
                    format!(
                        "{name} down to {:.0} MiB{}",
                        s.num("last") / 1048576.0,
                        free.map(|f| format!(" ({:.1}% free)", f * 100.0))
                            .unwrap_or_default()
                    ),
                );
            }
        }
        // Consumer lag growing: work arrives faster than it is done.
        if (name.contains("lag") || name.contains("record_age") || name.contains("backlog"))
            && s.summary["trend"] == "rising"
            && s.num("last") > 2.0 * s.num("first").max(1.0)
        {
            b.vote(
                RootCause::CapacitySaturation,
                &c,
                s.at,
                1.0,
                format!(
                    "{name} rising from {:.0} to {:.0}",
                    s.num("first"),
                    s.num("last")
                ),
            );
        }
        // Database connections at the server's maximum.
        if (name.contains("connections")
            || name.contains("numbackends")
            || name.contains("stat_activity_count")
            || name.contains("threads_connected"))
            && !name.contains("max")
            && let Some(max) = all
                .iter()
                .find(|m| {
                    m.name().contains("max_connections")
                        && m.label("namespace") == s.label("namespace")
                })
                .map(|m| m.num("last"))
            && max > 0.0
            && s.num("max") >= 0.9 * max
        {
            b.vote(
                RootCause::DbConnectionExhaustion,
                &c,
                s.at,
                3.0,
                format!(
                    "{name} reached {:.0} of max_connections {max:.0}",
                    s.num("max")
                ),
            );
        }
    }
}

/// cert-manager Certificates that are not ready or expired.
fn certificates(ctx: &Context, b: &mut Ballot) {
    for (i, o) in ctx.all("list_resources") {
        if !o.arg("kind").is_some_and(|k| k.starts_with("certificate")) {
            continue;
        }
        for c in o.data["items"].as_array().into_iter().flatten() {
            let conds = c["conditions"].as_array().cloned().unwrap_or_default();
            let bad = conds
                .iter()
                .filter_map(Value::as_str)
                .find(|t| t.starts_with("Ready=False") || t.to_lowercase().contains("expired"));
            if let Some(why) = bad {
                let ns = c["namespace"].as_str().unwrap_or_default();
                let name = c["name"].as_str().unwrap_or_default();
                b.vote(
                    RootCause::CertificateExpired,
                    &format!("certificate/{ns}/{name}"),
                    i,
                    3.0,
                    format!("certificate {ns}/{name}: {why}"),
                );
            }
        }
    }
    // A certificate named by a TLS error gets the votes of the error too.
    merge_into_single(b, RootCause::CertificateExpired, "certificate/");
}

/// When exactly one component with `prefix` holds `category` votes, the
/// same category's votes on other components (the services that log the
/// symptom) are moved to it: the volume that is full, the certificate that
/// expired.
fn merge_into_single(b: &mut Ballot, category: RootCause, prefix: &str) {
    let owners: Vec<String> = b
        .votes
        .keys()
        .filter(|(c, comp)| *c == category && comp.starts_with(prefix))
        .map(|(_, comp)| comp.clone())
        .collect();
    let [owner] = owners.as_slice() else { return };
    let others: Vec<String> = b
        .votes
        .keys()
        .filter(|(c, comp)| *c == category && !comp.starts_with(prefix))
        .map(|(_, comp)| comp.clone())
        .collect();
    for comp in others {
        if let Some(votes) = b.votes.remove(&(category, comp)) {
            b.votes
                .entry((category, owner.clone()))
                .or_default()
                .extend(votes);
        }
    }
}

/// AWS: impaired instances, RDS events, alarms in ALARM.
fn aws(ctx: &Context, b: &mut Ballot) {
    for (i, o) in ctx.all("get_ec2_status_checks") {
        for s in array_in(&o.data) {
            let id = s["InstanceId"].as_str().unwrap_or_default();
            let sys = s["SystemStatus"]["Status"].as_str().unwrap_or("ok");
            let inst = s["InstanceStatus"]["Status"].as_str().unwrap_or("ok");
            if sys == "impaired" || inst == "impaired" {
                // An instance that is a Kubernetes node is named as the node.
                let component = ctx
                    .node_of_instance(id)
                    .unwrap_or_else(|| format!("aws/ec2/{id}"));
                b.vote(
                    RootCause::NodeFailure,
                    &component,
                    i,
                    4.0,
                    format!("EC2 {id} status checks: system {sys}, instance {inst}"),
                );
            }
        }
    }
    for (i, o) in ctx.all("describe_rds_instance") {
        let db = &o.data["instance"];
        let id = db["DBInstanceIdentifier"].as_str().unwrap_or_default();
        if db["DBInstanceStatus"] == "storage-full" {
            b.vote(
                RootCause::DiskPressure,
                &format!("aws/rds/{id}"),
                i,
                3.0,
                format!("RDS {id} is in status storage-full"),
            );
        }
    }
    for (i, o) in ctx.all("list_rds_events") {
        for e in array_in(&o.data) {
            let id = e["SourceIdentifier"].as_str().unwrap_or_default();
            let m = e["Message"].as_str().unwrap_or_default();
            let l = m.to_lowercase();
            if l.contains("failover")
                || l.contains("reboot")
                || l.contains("restarted")
                || l.contains("replica lag")
            {
                b.vote(
                    RootCause::DbFailover,
                    &format!("aws/rds/{id}"),
                    i,
                    2.0,
                    format!("RDS {id}: {m}"),
                );
            }
            if l.contains("storage-full") || l.contains("storage full") || l.contains("low storage")
            {
                b.vote(
                    RootCause::DiskPressure,
                    &format!("aws/rds/{id}"),
                    i,
                    3.0,
                    format!("RDS {id}: {m}"),
                );
            }
        }
    }
    for (i, o) in ctx.all("list_cloudwatch_alarms") {
        for a in array_in(&o.data) {
            if a["StateValue"] != "ALARM" {
                continue;
            }
            let metric = a["MetricName"].as_str().unwrap_or_default();
            let dims: BTreeMap<&str, &str> = a["Dimensions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| Some((d["Name"].as_str()?, d["Value"].as_str()?)))
                .collect();
            let note = format!(
                "alarm {} is ALARM on {metric}",
                a["AlarmName"].as_str().unwrap_or_default()
            );
            if let Some(db) = dims.get("DBInstanceIdentifier") {
                let c = format!("aws/rds/{db}");
                match metric {
                    "DatabaseConnections" => {
                        b.vote(RootCause::DbConnectionExhaustion, &c, i, 3.0, note)
                    }
                    "FreeStorageSpace" => b.vote(RootCause::DiskPressure, &c, i, 3.0, note),
                    "ReplicaLag" => b.vote(RootCause::DbFailover, &c, i, 1.5, note),
                    _ => {}
                }
            } else if let Some(id) = dims.get("InstanceId") {
                if metric.starts_with("StatusCheckFailed") {
                    b.vote(
                        RootCause::NodeFailure,
                        &format!("aws/ec2/{id}"),
                        i,
                        3.0,
                        note,
                    );
                }
            } else if let Some(bucket) = dims.get("BucketName")
                && (metric.contains("5xx") || metric.contains("5XX"))
            {
                b.vote(
                    RootCause::RateLimited,
                    &format!("aws/s3/{bucket}"),
                    i,
                    1.0,
                    note,
                );
            }
        }
    }
    // Connections near the instance's limit on the metrics read.
    for (i, o) in ctx.all("get_cloudwatch_metric") {
        let Some(db) = o.args["dimensions"]["DBInstanceIdentifier"].as_str() else {
            continue;
        };
        if o.arg("metric_name") == Some("DatabaseConnections") {
            b.vote(
                RootCause::DbConnectionExhaustion,
                &format!("aws/rds/{db}"),
                i,
                0.5,
                format!("DatabaseConnections of {db} read"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_logs_name_their_peer_in_a_field() {
        assert_eq!(
            upstream_field(
                r#"{"msg":"upstream throttled","upstream":"geocoding-api","status":429}"#
            )
            .as_deref(),
            Some("geocoding-api")
        );
        assert_eq!(
            upstream_field("level=warn peer.service=payments.internal status=503").as_deref(),
            Some("payments.internal")
        );
        assert_eq!(upstream_field(r#"{"upstream": 12}"#), None);
        assert_eq!(upstream_field("too many requests"), None);
    }

    #[test]
    fn hosts_are_found_in_log_lines_but_not_code_paths() {
        let h = hosts(
            "ERROR dial tcp redis-cart.shop.svc.cluster.local:6379: connect: connection refused",
        );
        assert_eq!(h, vec!["redis-cart.shop.svc.cluster.local"]);
        let h = hosts("POST https://api.stripe.com/v1/charges returned 503");
        assert_eq!(h, vec!["api.stripe.com"]);
        assert!(
            hosts("at com.acme.Checkout.apply(Checkout.java:88)")
                .iter()
                .all(|h| looks_like_code(h))
        );
        assert!(hosts("took 12.5 ms").is_empty());
    }
}
