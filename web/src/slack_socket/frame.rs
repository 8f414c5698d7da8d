//! Socket Mode's messages: what Slack sends over the WebSocket (`hello`,
//! `disconnect`, and envelopes carrying an interaction, a slash command or
//! an Events API event), read leniently so a field Slack adds never breaks
//! the link, and the acknowledgements cerebro sends back.

use serde::Deserialize;
use serde_json::{Value, json};

/// A message from Slack.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// The connection is ready.
    Hello { num_connections: Option<u64> },
    /// Slack is about to close this connection and wants a new one
    /// (`refresh_requested`, `warning`, `link_disabled`).
    Disconnect { reason: String },
    /// Something to acknowledge and perhaps act on.
    Envelope(Envelope),
}

/// One delivery from Slack; it is retried unless acknowledged in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub kind: Kind,
    pub payload: Value,
    /// Whether the acknowledgement may carry an answer (slash commands).
    pub accepts_response_payload: bool,
    /// 0 on the first delivery; Slack counts its retries.
    pub retry_attempt: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A click on a message's button: the interaction JSON Slack would
    /// otherwise post as the form field `payload`.
    Interactive,
    /// `/cerebro ...`: the fields Slack would otherwise post as a form.
    SlashCommand,
    /// Events API: cerebro subscribes to none, so only acknowledged.
    EventsApi,
    /// A type this version does not know; acknowledged so it is not
    /// retried.
    Other(String),
}

impl Kind {
    pub fn as_str(&self) -> &str {
        match self {
            Kind::Interactive => "interactive",
            Kind::SlashCommand => "slash_commands",
            Kind::EventsApi => "events_api",
            Kind::Other(t) => t,
        }
    }
}

/// The fields any message may carry; the rest are ignored.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    kind: Option<String>,
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    accepts_response_payload: bool,
    retry_attempt: Option<u64>,
    reason: Option<String>,
    num_connections: Option<u64>,
}

/// Read one text frame from Slack.
pub fn parse(text: &str) -> Result<Received, String> {
    let wire: Wire =
        serde_json::from_str(text).map_err(|e| format!("not a Socket Mode message: {e}"))?;
    let kind = wire.kind.unwrap_or_default();
    match (kind.as_str(), wire.envelope_id) {
        ("hello", _) => Ok(Received::Hello {
            num_connections: wire.num_connections,
        }),
        ("disconnect", _) => Ok(Received::Disconnect {
            reason: wire.reason.unwrap_or_else(|| "unspecified".into()),
        }),
        (_, Some(id)) if !id.is_empty() => Ok(Received::Envelope(Envelope {
            id,
            kind: match kind.as_str() {
                "interactive" => Kind::Interactive,
                "slash_commands" => Kind::SlashCommand,
                "events_api" => Kind::EventsApi,
                _ => Kind::Other(kind),
            },
            payload: wire.payload,
            accepts_response_payload: wire.accepts_response_payload,
            retry_attempt: wire.retry_attempt.unwrap_or(0),
        })),
        _ => Err(format!(
            "a message of type `{kind}` without an envelope_id, so nothing to acknowledge"
        )),
    }
}

/// The acknowledgement of an envelope: Slack stops retrying it.
pub fn ack(envelope_id: &str) -> String {
    json!({ "envelope_id": envelope_id }).to_string()
}

/// An acknowledgement carrying an answer (a slash command's reply).
pub fn ack_with(envelope_id: &str, payload: Value) -> String {
    json!({ "envelope_id": envelope_id, "payload": payload }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_and_disconnect_are_read_with_their_details() {
        let hello = r#"{"type":"hello","num_connections":2,"debug_info":{"host":"applink-1","approximate_connection_time":18060},"connection_info":{"app_id":"A0CEREBRO"}}"#;
        assert_eq!(
            parse(hello),
            Ok(Received::Hello {
                num_connections: Some(2)
            })
        );
        let bye = r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-1"}}"#;
        assert_eq!(
            parse(bye),
            Ok(Received::Disconnect {
                reason: "refresh_requested".into()
            })
        );
    }

    #[test]
    fn an_envelope_keeps_its_id_kind_payload_and_retry() {
        let text = r#"{"envelope_id":"dbdd0ef3-1543-4f94-bfb4-133d0e6c1545","type":"slash_commands","payload":{"command":"/cerebro","text":"status","user_id":"U0ALICE"},"accepts_response_payload":true,"retry_attempt":1,"retry_reason":"timeout"}"#;
        let Ok(Received::Envelope(e)) = parse(text) else {
            panic!("not an envelope: {:?}", parse(text));
        };
        assert_eq!(e.id, "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545");
        assert_eq!(e.kind, Kind::SlashCommand);
        assert_eq!(e.payload["text"], "status");
        assert!(e.accepts_response_payload);
        assert_eq!(e.retry_attempt, 1);
    }

    #[test]
    fn an_unknown_type_with_an_id_is_still_an_envelope_to_acknowledge() {
        let Ok(Received::Envelope(e)) = parse(r#"{"type":"workflow_step","envelope_id":"e1"}"#)
        else {
            panic!("not an envelope");
        };
        assert_eq!(e.kind, Kind::Other("workflow_step".into()));
        assert_eq!(e.kind.as_str(), "workflow_step");
        assert!(!e.accepts_response_payload);
        assert_eq!((e.retry_attempt, e.payload), (0, Value::Null));
    }

    #[test]
    fn a_message_without_an_id_or_not_json_is_an_error() {
        assert!(parse(r#"{"type":"interactive","payload":{}}"#).is_err());
        assert!(parse(r#"{"type":"interactive","envelope_id":""}"#).is_err());
        assert!(parse("not json").is_err());
        assert!(parse("[1,2]").is_err());
    }

    #[test]
    fn acknowledgements_name_the_envelope_and_carry_an_answer_only_when_given() {
        let plain: Value = serde_json::from_str(&ack("e1")).expect("json");
        assert_eq!(plain, json!({"envelope_id": "e1"}));
        let answered: Value = serde_json::from_str(&ack_with(
            "e\"2",
            json!({"response_type": "ephemeral", "text": "No open incidents."}),
        ))
        .expect("json");
        assert_eq!(answered["envelope_id"], "e\"2");
        assert_eq!(answered["payload"]["text"], "No open incidents.");
    }
}
