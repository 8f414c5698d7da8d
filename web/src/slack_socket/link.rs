//! Opening the WebSocket itself: TCP, then TLS for `wss://` (rustls with
//! the platform's verifier, as reqwest uses), then the WebSocket
//! handshake. tungstenite is built without its own TLS and connector so
//! that no crate shared with the rest of the service gains a feature.

use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Plain TCP (a stand-in on loopback) or TLS (Slack).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Link = WebSocketStream<Box<dyn Io>>;

/// Slack's messages are small; a larger one is refused rather than
/// buffered.
const MAX_MESSAGE: usize = 1 << 20;

/// Where a Socket Mode URL points.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
}

fn target(url: &str) -> Result<Target, String> {
    let request = url
        .into_client_request()
        .map_err(|e| format!("unusable WebSocket URL: {e}"))?;
    let uri = request.uri();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => return Err(format!("not a WebSocket URL (scheme {other:?})")),
    };
    let host = uri
        .host()
        .ok_or("the WebSocket URL has no host")?
        // rustls and TcpStream take an IPv6 address without brackets.
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Target { tls, host, port })
}

/// TLS settings, built once: the platform verifier reads the system's
/// roots.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::BuilderVerifierExt;
            // Named, not the process default: tests run without main's
            // install_default, and two providers are compiled in.
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|b| b.with_platform_verifier())
                .map(|b| Arc::new(b.with_no_client_auth()))
                .map_err(|e| format!("setting up TLS: {e}"))
        })
        .clone()
}

/// Connect to `url` (`ws://` or `wss://`), all of it within `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<Link, String> {
    tokio::time::timeout(timeout, connect_now(url))
        .await
        .map_err(|_| format!("connecting took more than {} s", timeout.as_secs()))?
}

async fn connect_now(url: &str) -> Result<Link, String> {
    let t = target(url)?;
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("connecting to {}:{}: {e}", t.host, t.port))?;
    // Acks are a few bytes each and must leave at once.
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if t.tls {
        let name = rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| format!("{} is not a TLS server name: {e}", t.host))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", t.host))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, io, Some(config))
        .await
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_urls_default_to_tls_on_443_and_stand_ins_to_their_port() {
        assert_eq!(
            target("wss://wss-primary.slack.com/link/?ticket=1234&app_id=A0CEREBRO"),
            Ok(Target {
                tls: true,
                host: "wss-primary.slack.com".into(),
                port: 443
            })
        );
        assert_eq!(
            target("ws://127.0.0.1:41234/link/?ticket=1"),
            Ok(Target {
                tls: false,
                host: "127.0.0.1".into(),
                port: 41234
            })
        );
        assert_eq!(
            target("ws://[::1]:9000/link").map(|t| t.host),
            Ok("::1".to_owned())
        );
    }

    #[test]
    fn a_url_that_is_not_a_websocket_is_refused() {
        assert!(target("https://slack.com/link").is_err());
        assert!(target("not a url").is_err());
    }

    #[test]
    fn tls_settings_build_with_the_platform_verifier() {
        assert!(tls_config().is_ok(), "{:?}", tls_config().err());
    }

    #[tokio::test]
    async fn connecting_where_nobody_listens_fails_with_the_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = connect(&format!("ws://{addr}/link"), Duration::from_secs(5))
            .await
            .err()
            .expect("nobody listens");
        assert!(err.contains(&addr.to_string()), "{err}");
    }
}
