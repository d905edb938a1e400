//! Parsing of client frames.
//!
//! A frame is parsed in two steps, into a JSON object and then field by field, so that a frame
//! with a bad field still gets its `ref` echoed and an error that names the field.

use serde_json::{Map, Value};

use super::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, MAX_REF_LEN};
use crate::{
    domain::{MessageId, RoomName},
    engine::idempotency::MAX_KEY_BYTES,
};

/// One parsed client frame with the fields every frame may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's `ref`, echoed in the direct reply.
    pub reference: Option<String>,
    /// A W3C `traceparent` the client wants this frame's span to continue.
    pub traceparent: Option<String>,
    pub frame: ClientFrame,
}

/// What the client asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Join {
        room: RoomName,
        since: Option<MessageId>,
    },
    Leave {
        room: RoomName,
    },
    /// `key`: the client's idempotency key, so a retry is stored once (see `engine::idempotency`).
    Send {
        room: RoomName,
        body: String,
        key: Option<String>,
    },
    History {
        room: RoomName,
        query: HistoryQuery,
    },
    Ping,
}

impl ClientFrame {
    /// The `type` tag, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Send { .. } => "send",
            Self::History { .. } => "history",
            Self::Ping => "ping",
        }
    }

    /// The room the frame is about, if any.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Self::Join { room, .. } | Self::Leave { room } | Self::Send { room, .. } | Self::History { room, .. } => {
                Some(room)
            }
            Self::Ping => None,
        }
    }
}

/// A page of a room's history: ids strictly between `after` and `before`, at most `limit`.
///
/// With `after`, the page starts right after it (paging forward); otherwise it is the newest
/// `limit` messages before `before` (or the newest overall). Either way it is in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self { before: None, after: None, limit: DEFAULT_HISTORY_LIMIT }
    }
}

impl HistoryQuery {
    /// Checks a limit from a client: `1..=MAX_HISTORY_LIMIT`.
    pub fn checked_limit(limit: u64) -> Result<usize, String> {
        match usize::try_from(limit) {
            Ok(n @ 1..=MAX_HISTORY_LIMIT) => Ok(n),
            _ => Err(format!("`limit` must be between 1 and {MAX_HISTORY_LIMIT}")),
        }
    }
}

/// A frame that could not be understood: always answered with `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub reference: Option<String>,
    pub message: String,
}

/// Parses one text frame.
pub fn parse_client_frame(text: &str) -> Result<Request, FrameError> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(text) else {
        return Err(FrameError { reference: None, message: "a frame must be one JSON object".into() });
    };
    let reference = take_ref(&mut fields)?;
    let fail = |message: String| FrameError { reference: reference.clone(), message };
    let traceparent = optional_string(&mut fields, "traceparent").map_err(&fail)?;
    let frame = parse_frame(&mut fields).map_err(&fail)?;
    Ok(Request { reference, traceparent, frame })
}

fn take_ref(fields: &mut Map<String, Value>) -> Result<Option<String>, FrameError> {
    match fields.remove("ref") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) if r.chars().count() <= MAX_REF_LEN => Ok(Some(r)),
        Some(_) => Err(FrameError {
            reference: None,
            message: format!("`ref` must be a string of at most {MAX_REF_LEN} characters"),
        }),
    }
}

fn parse_frame(fields: &mut Map<String, Value>) -> Result<ClientFrame, String> {
    let kind = required_string(fields, "type")?;
    Ok(match kind.as_str() {
        "join" => ClientFrame::Join { room: room(fields)?, since: optional_id(fields, "since")? },
        "leave" => ClientFrame::Leave { room: room(fields)? },
        "send" => ClientFrame::Send {
            room: room(fields)?,
            body: required_string(fields, "body")?,
            key: idempotency_key(optional_string(fields, "key")?).map_err(|e| format!("`key` {e}"))?,
        },
        "history" => ClientFrame::History {
            room: room(fields)?,
            query: HistoryQuery {
                before: optional_id(fields, "before")?,
                after: optional_id(fields, "after")?,
                limit: match fields.remove("limit") {
                    None | Some(Value::Null) => DEFAULT_HISTORY_LIMIT,
                    Some(Value::Number(n)) => HistoryQuery::checked_limit(n.as_u64().unwrap_or(0))?,
                    Some(_) => return Err("`limit` must be a number".into()),
                },
            },
        },
        "ping" => ClientFrame::Ping,
        other => return Err(format!("unknown frame type `{other}`")),
    })
}

fn room(fields: &mut Map<String, Value>) -> Result<RoomName, String> {
    let raw = required_string(fields, "room")?;
    RoomName::parse(&raw).map_err(|e| e.to_string())
}

fn required_string(fields: &mut Map<String, Value>, name: &str) -> Result<String, String> {
    optional_string(fields, name)?.ok_or_else(|| format!("missing field `{name}`"))
}

fn optional_string(fields: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

/// Checks a client's idempotency key: 1 to [`MAX_KEY_BYTES`] bytes. The error completes "`key` ..."
/// or "`Idempotency-Key` ...".
pub fn idempotency_key(key: Option<String>) -> Result<Option<String>, String> {
    match key {
        Some(key) if key.is_empty() || key.len() > MAX_KEY_BYTES => Err(format!("must be 1 to {MAX_KEY_BYTES} bytes")),
        key => Ok(key),
    }
}

fn optional_id(fields: &mut Map<String, Value>, name: &str) -> Result<Option<MessageId>, String> {
    optional_string(fields, name)?.map(|raw| raw.parse().map_err(|e| format!("`{name}`: {e}"))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, FrameError> {
        parse_client_frame(text)
    }

    #[test]
    fn parses_every_frame_type() {
        let join = parse(r#"{"type":"join","room":"lobby","since":"5-1","ref":"r1"}"#).unwrap();
        assert_eq!(join.reference.as_deref(), Some("r1"));
        assert_eq!(
            join.frame,
            ClientFrame::Join { room: RoomName::parse("lobby").unwrap(), since: Some(MessageId::new(5, 1)) }
        );
        assert_eq!(parse(r#"{"type":"leave","room":"a"}"#).unwrap().frame.kind(), "leave");
        assert_eq!(parse(r#"{"type":"send","room":"a","body":"hi"}"#).unwrap().frame.kind(), "send");
        let keyed = parse(r#"{"type":"send","room":"a","body":"hi","key":"k-1"}"#).unwrap();
        assert!(matches!(keyed.frame, ClientFrame::Send { key: Some(k), .. } if k == "k-1"));
        assert_eq!(parse(r#"{"type":"ping","extra":1}"#).unwrap().frame, ClientFrame::Ping);
        let history = parse(r#"{"type":"history","room":"a","after":"1-0","limit":500}"#).unwrap();
        assert_eq!(
            history.frame,
            ClientFrame::History {
                room: RoomName::parse("a").unwrap(),
                query: HistoryQuery { before: None, after: Some(MessageId::new(1, 0)), limit: 500 }
            }
        );
    }

    #[test]
    fn history_limit_defaults_to_50_and_stops_at_500() {
        let page = parse(r#"{"type":"history","room":"a"}"#).unwrap();
        assert!(matches!(page.frame, ClientFrame::History { query, .. } if query.limit == 50));
        for bad in ["0", "501", "-1", "1.5", "\"10\""] {
            let text = format!(r#"{{"type":"history","room":"a","limit":{bad},"ref":"x"}}"#);
            let err = parse(&text).unwrap_err();
            assert_eq!(err.reference.as_deref(), Some("x"), "{bad}");
            assert!(err.message.contains("limit"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn errors_keep_the_ref_and_name_the_problem() {
        let cases = [
            (r#"{"type":"send","room":"a","ref":"q"}"#, "missing field `body`"),
            (r#"{"type":"send","room":"a","body":3,"ref":"q"}"#, "`body` must be a string"),
            (r#"{"type":"join","room":"bad room","ref":"q"}"#, "room must match"),
            (r#"{"type":"nope","ref":"q"}"#, "unknown frame type `nope`"),
            (r#"{"room":"a","ref":"q"}"#, "missing field `type`"),
            (r#"{"type":"join","room":"a","since":"x","ref":"q"}"#, "`since`"),
            (r#"{"type":"send","room":"a","body":"b","key":"","ref":"q"}"#, "`key` must be 1 to 64 bytes"),
            (r#"{"type":"send","room":"a","body":"b","key":7,"ref":"q"}"#, "`key` must be a string"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.reference.as_deref(), Some("q"), "{text}");
            assert!(err.message.contains(expected), "{text}: {}", err.message);
        }
    }

    #[test]
    fn rejects_non_objects_and_bad_refs() {
        for text in ["", "nope", "[1]", "\"join\"", "{\"type\":"] {
            assert_eq!(parse(text).unwrap_err().reference, None, "{text:?}");
        }
        let long = format!(r#"{{"type":"ping","ref":"{}"}}"#, "r".repeat(65));
        assert!(parse(&long).unwrap_err().message.contains("`ref`"));
        let exact = format!(r#"{{"type":"ping","ref":"{}"}}"#, "r".repeat(64));
        assert!(parse(&exact).is_ok());
        let long_key = format!(r#"{{"type":"send","room":"a","body":"b","key":"{}"}}"#, "k".repeat(65));
        assert!(parse(&long_key).unwrap_err().message.contains("`key`"));
    }
}
