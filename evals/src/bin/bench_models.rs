//! Model benchmark: candle (ours) against the reference engines, on the same
//! inputs, files and thread count, in one run.
//!
//! - generation: prefill and decode tokens/s of the local chat model against
//!   llama.cpp (llama-cpp-python) on the same GGUF;
//! - embeddings: sentences/s of the local embedder against
//!   sentence-transformers for the same model and batch size;
//! - peak memory (VmHWM) of each, every side in a process of its own.
//!
//! `bench-models --weights models/weights [--threads 1]`; the Python peers
//! come from `deploy/scripts/python-peers.sh` (cached by version).

use anyhow::Context;
use brain::backends::{Message, Role};
use clap::Parser;
use evals::services::peak_rss_kib;
use models::local::{BertEmbedder, LocalChat, LocalChatOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The fetched weights (`cerebro fetch-models`).
    #[arg(long, default_value = "models/weights")]
    weights: PathBuf,
    /// Threads for every engine (candle reads RAYON_NUM_THREADS, set here
    /// for its child process). One decode thread beat two on a busy 2-core box.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Tokens generated per run.
    #[arg(long, default_value_t = 64)]
    tokens: u32,
    /// Sentences embedded per run.
    #[arg(long, default_value_t = 1000)]
    sentences: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Chat models to measure (directories under --weights).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct,gemma3-270m"
    )]
    chat: Vec<String>,
    /// Embedding model to measure (a directory under --weights), or `none`.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    embedder: String,
    /// Internal: run one side and print its JSON line.
    #[arg(long, hide = true)]
    side: Option<String>,
    #[arg(long, hide = true)]
    model: Option<PathBuf>,
    #[arg(long, hide = true)]
    input: Option<PathBuf>,
}

/// A triage prompt of the size the agents send (an alert with its labels,
/// recent events and a question; ~300 tokens): a one-line prompt measures
/// per-call overheads more than prefill.
const PROMPT: &str = "You are triaging an alert. Answer with the most likely cause in one sentence.

Alert: KubePodCrashLooping (severity critical), firing since 03:12:07 UTC.
Labels: namespace=payments, pod=payments-api-7d9f8c6b5-x2k4q, container=api,
deployment=payments-api, cluster=prod-eu-west-1, team=payments.
Annotations: Pod payments/payments-api-7d9f8c6b5-x2k4q (api) is restarting
2.4 times / 10 minutes. Runbook: https://runbooks.example.com/KubePodCrashLooping

Recent events:
- 03:02:41 Deployment payments-api rolled out image payments-api:2.14.1 (was 2.13.7).
- 03:05:10 Container api: Last State Terminated, Reason OOMKilled, Exit Code 137.
- 03:05:12 Back-off restarting failed container api.
- 03:07:55 Container api memory working set 511Mi of limit 512Mi before kill.
- 03:09:30 HPA payments-api scaled from 4 to 6 replicas (cpu 84% of target).
- 03:11:02 Upstream checkout-web reports p99 latency 2.4s on POST /checkout.

Metrics (last 30 min): memory per pod grows linearly from 220Mi to 512Mi in
about 6 minutes after each start; request rate is flat at 340 req/s; error
rate on /checkout rose from 0.1% to 7.8% at 03:05.

Likely cause:";

/// Deterministic log-like sentences of varied length (4 to ~60 tokens).
fn sentences(n: usize) -> Vec<String> {
    let parts = [
        "payments-api pod OOMKilled",
        "exit code 137 after 3 restarts",
        "p99 latency 2.4s on /checkout",
        "connection refused to redis-cache:6379",
        "disk /var/lib/postgresql 97% full",
        "deployment checkout-v2.14.1 rolled out",
        "TLS handshake timeout from ingress-nginx",
        "HPA scaled orders from 4 to 12 replicas",
        "5xx ratio 8% on service gateway",
        "node ip-10-0-3-17 NotReady (kubelet stopped posting status)",
    ];
    let mut seed: u64 = 42;
    (0..n)
        .map(|i| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = 1 + (seed >> 33) as usize % 6;
            (0..k)
                .map(|j| parts[(i + j * 3) % parts.len()])
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
}

/// The allocator cerebro runs with (see `web/src/main.rs`), so the
/// figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(side) = &args.side {
        return child(&args, side);
    }
    let llama = python("llama-cpp")?;
    let me = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let t = args.threads;
    println!(
        "model benchmark: {t} thread(s), greedy, {} generated tokens; {} sentences, batch {}; each side in its own process",
        args.tokens, args.sentences, args.batch
    );
    println!(
        "{:<34} {:>14} {:>14} {:>10}   vs reference",
        "generation", "prefill tok/s", "decode tok/s", "peak RSS"
    );
    for name in &args.chat {
        let gguf = args.weights.join(name).join("model.gguf");
        anyhow::ensure!(
            gguf.is_file(),
            "{} is missing: run `cerebro fetch-models {name}`",
            gguf.display()
        );
        let prompt_file = dir.path().join(format!("{name}.prompt"));
        let (candle, candle_rss) = run(Command::new(&me)
            .args([
                "--side",
                "candle-gen",
                "--tokens",
                &args.tokens.to_string(),
                "--model",
            ])
            .arg(&gguf)
            .arg("--input")
            .arg(&prompt_file)
            .env("RAYON_NUM_THREADS", t.to_string()))?;
        let (reference, ref_rss) = run(Command::new(&llama)
            .arg(script("bench_llama_cpp.py"))
            .arg(&gguf)
            .args([t.to_string(), args.tokens.to_string()])
            .arg(&prompt_file))?;
        let rates = |v: &serde_json::Value| {
            let p = v["prompt_tokens"].as_f64().unwrap_or(0.0)
                / v["prefill_s"].as_f64().unwrap_or(f64::NAN);
            let d = (v["output_tokens"].as_f64().unwrap_or(1.0) - 1.0)
                / v["decode_s"].as_f64().unwrap_or(f64::NAN);
            (p, d)
        };
        let (cp, cd) = rates(&candle);
        let (lp, ld) = rates(&reference);
        println!(
            "{:<34} {:>14.1} {:>14.1} {:>6} MiB   prefill {:.2}x, decode {:.2}x",
            format!("candle {name}"),
            cp,
            cd,
            candle_rss / 1024,
            cp / lp,
            cd / ld
        );
        println!(
            "{:<34} {:>14.1} {:>14.1} {:>6} MiB",
            "llama.cpp (same GGUF)",
            lp,
            ld,
            ref_rss / 1024
        );
    }

    if args.embedder == "none" {
        return Ok(());
    }
    let st = python("st")?;
    let input = dir.path().join("sentences.json");
    std::fs::write(&input, serde_json::to_string(&sentences(args.sentences))?)?;
    let model = args.weights.join(&args.embedder);
    let (candle, candle_rss) = run(Command::new(&me)
        .args([
            "--side",
            "candle-embed",
            "--batch",
            &args.batch.to_string(),
            "--model",
        ])
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .env("RAYON_NUM_THREADS", t.to_string()))?;
    let (reference, ref_rss) = run(Command::new(&st)
        .arg(script("bench_sentence_transformers.py"))
        .arg(&model)
        .args([t.to_string(), args.batch.to_string()])
        .arg(&input))?;
    let rate = |v: &serde_json::Value| {
        v["sentences"].as_f64().unwrap_or(0.0) / v["seconds"].as_f64().unwrap_or(f64::NAN)
    };
    println!(
        "\n{:<34} {:>14} {:>10}   vs reference",
        "embeddings", "sentences/s", "peak RSS"
    );
    println!(
        "{:<34} {:>14.1} {:>6} MiB   {:.2}x",
        format!("candle {}", args.embedder),
        rate(&candle),
        candle_rss / 1024,
        rate(&candle) / rate(&reference)
    );
    println!(
        "{:<34} {:>14.1} {:>6} MiB",
        "sentence-transformers",
        rate(&reference),
        ref_rss / 1024
    );
    Ok(())
}

/// The Python of a peer venv, installing it if needed.
fn python(which: &str) -> anyhow::Result<PathBuf> {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/scripts/python-peers.sh"))
        .arg(which)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("installing the {which} peer"))?;
    anyhow::ensure!(out.status.success(), "installing the {which} peer failed");
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// Run a side, polling its peak RSS; its last stdout line is JSON.
fn run(cmd: &mut Command) -> anyhow::Result<(serde_json::Value, u64)> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let pid = child.id();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let status = loop {
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        if let Some(s) = child.try_wait()? {
            break s;
        }
        anyhow::ensure!(Instant::now() < deadline, "{shown} took over 30 min");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    anyhow::ensure!(status.success(), "{shown} failed: {status}");
    let line = out.lines().last().unwrap_or_default();
    let v = serde_json::from_str(line).with_context(|| format!("{shown} printed {out:?}"))?;
    Ok((v, peak))
}

/// One side of the comparison, in this (child) process.
fn child(args: &Args, side: &str) -> anyhow::Result<()> {
    let model = args.model.as_deref().context("--model")?;
    let input = args.input.as_deref().context("--input")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match side {
        "candle-gen" => {
            let chat = LocalChat::load(model, LocalChatOptions::default())?;
            let messages = [Message::new(Role::User, PROMPT)];
            // The parent hands llama.cpp exactly the text candle tokenizes.
            std::fs::write(input, chat.render(&messages)?)?;
            let mut best: Option<models::local::Generated> = None;
            for _ in 0..3 {
                let g = rt.block_on(chat.timed(&messages, args.tokens))?;
                if best
                    .as_ref()
                    .is_none_or(|b| g.prefill + g.decode < b.prefill + b.decode)
                {
                    best = Some(g);
                }
            }
            let g = best.context("no run")?;
            println!(
                "{}",
                serde_json::json!({"prompt_tokens": g.prompt_tokens, "output_tokens": g.output_tokens,
                    "prefill_s": g.prefill.as_secs_f64(), "decode_s": g.decode.as_secs_f64()})
            );
        }
        "candle-embed" => {
            let texts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(input)?)?;
            let mut e = BertEmbedder::load(model)?;
            e.batch_size = args.batch;
            e.embed(&texts[..args.batch.min(texts.len())])?; // warm-up
            let started = Instant::now();
            e.embed(&texts)?;
            println!(
                "{}",
                serde_json::json!({"sentences": texts.len(), "seconds": started.elapsed().as_secs_f64()})
            );
        }
        other => anyhow::bail!("unknown side {other}"),
    }
    Ok(())
}
