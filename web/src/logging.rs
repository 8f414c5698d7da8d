//! Log output: human-readable text by default, one JSON object per line with
//! `--log-format json`. Logs go to stderr; stdout is for what the user asked.

use brain::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `RUST_LOG` wins over the configured filter.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests start several servers in one process) is harmless.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
