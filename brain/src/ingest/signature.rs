//! Webhook signature checks: HMAC-SHA256 over the raw body, compared in
//! constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac_matches(secret: &[u8], message: &[&[u8]], hex_sig: &str) -> bool {
    let Ok(expected) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    for part in message {
        mac.update(part);
    }
    mac.verify_slice(&expected).is_ok()
}

/// `X-PagerDuty-Signature`: a comma-separated list of `v1=<hex>`; during a
/// secret rotation several are sent. Valid when any signature matches any of
/// our secrets.
pub fn pagerduty_valid(header: &str, body: &[u8], secrets: &[&[u8]]) -> bool {
    header
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .any(|sig| secrets.iter().any(|k| hmac_matches(k, &[body], sig)))
}

/// `X-Hub-Signature-256: sha256=<hex>` (GitHub).
pub fn github_valid(header: &str, body: &[u8], secrets: &[&[u8]]) -> bool {
    header
        .trim()
        .strip_prefix("sha256=")
        .is_some_and(|sig| secrets.iter().any(|k| hmac_matches(k, &[body], sig)))
}

/// `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`.
pub fn slack_valid(header: &str, timestamp: &str, body: &[u8], secret: &[u8]) -> bool {
    header
        .trim()
        .strip_prefix("v0=")
        .is_some_and(|sig| hmac_matches(secret, &[b"v0:", timestamp.as_bytes(), b":", body], sig))
}

/// Sign a body as PagerDuty does (for tests and stand-in senders).
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot be reached.
        HmacSha256::new_from_slice(b"").expect("invariant: empty HMAC key is valid")
    });
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    const RFC4231_SIG: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn the_rfc_4231_vector_verifies_and_a_flipped_bit_does_not() {
        let body = b"what do ya want for nothing?";
        assert_eq!(sign_hex(b"Jefe", body), RFC4231_SIG);
        assert!(pagerduty_valid(
            &format!("v1={RFC4231_SIG}"),
            body,
            &[b"Jefe"]
        ));
        let mut bad = RFC4231_SIG.to_owned();
        bad.replace_range(0..1, "6");
        assert!(!pagerduty_valid(&format!("v1={bad}"), body, &[b"Jefe"]));
        assert!(!pagerduty_valid(
            &format!("v1={RFC4231_SIG}"),
            b"what do ya want for nothing!",
            &[b"Jefe"]
        ));
    }

    #[test]
    fn pagerduty_accepts_any_listed_signature_during_rotation() {
        let body = br#"{"event":{}}"#;
        let new = sign_hex(b"new-secret", body);
        let header = format!("v1={}, v1={new}", "00".repeat(32));
        assert!(pagerduty_valid(&header, body, &[b"new-secret"]));
        assert!(!pagerduty_valid(&header, body, &[b"old-secret"]));
        assert!(!pagerduty_valid("", body, &[b"new-secret"]));
        assert!(!pagerduty_valid(
            &format!("v0={new}"),
            body,
            &[b"new-secret"]
        ));
    }

    #[test]
    fn github_signatures_need_the_sha256_prefix_and_the_right_secret() {
        // The example from GitHub's "Validating webhook deliveries" page.
        let sig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_valid(
            &format!("sha256={sig}"),
            b"Hello, World!",
            &[b"It's a Secret to Everybody"]
        ));
        assert!(!github_valid(
            sig,
            b"Hello, World!",
            &[b"It's a Secret to Everybody"]
        ));
        assert!(!github_valid(
            &format!("sha256={sig}"),
            b"Hello, World!",
            &[b"another secret"]
        ));
    }

    #[test]
    fn slack_signature_matches_the_documented_example() {
        // The worked example of Slack's "Verifying requests from Slack" page.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(slack_valid(sig, "1531420618", body, secret));
        assert!(!slack_valid(sig, "1531420619", body, secret));
    }
}
