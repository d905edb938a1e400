//! Encoding of the frames a node sends.
//!
//! Every frame is encoded straight into a [`ByteString`], the type the WebSocket writer takes, so
//! a frame encoded once (a room's message, fanned out to every member) is shared, not copied.

use bytestring::ByteString;
use serde::{Serialize, Serializer, ser::SerializeSeq};

use super::ErrorCode;
use crate::domain::{Member, Message, MessageId, PresenceKind, RoomName, SessionId, UserName};

/// The limits a session runs under, announced in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_body_bytes: usize,
    pub rate_per_sec: u32,
    pub burst: u32,
    pub max_rooms: usize,
}

/// A frame from the node to the client. `reference` is the client's `ref`, echoed in replies.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Welcome {
        session: SessionId,
        user: &'a UserName,
        node: &'a str,
        heartbeat_ms: u64,
        limits: &'a Limits,
    },
    Joined {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a RoomName,
        /// Every user with their session count; empty when the room is over the presence limit.
        members: &'a [Member],
        /// How many users are in the room.
        member_count: u64,
        /// `false` when the room has more users than the presence limit: then `members` is
        /// empty and joins and leaves are not announced.
        presence: bool,
        last_id: Option<MessageId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    Left {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a RoomName,
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a RoomName,
        id: MessageId,
    },
    Message(&'a Message),
    Presence {
        room: &'a RoomName,
        event: PresenceKind,
        user: &'a UserName,
    },
    History {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a RoomName,
        messages: MessageList<'a>,
        /// The page was cut to fit the connection's queue: ask again from its edge.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    },
    /// Messages of `room` were lost before this node could deliver them (cluster engine only).
    Gap {
        room: &'a RoomName,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<MessageId>,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        code: ErrorCode,
        message: &'a str,
    },
}

/// A list of messages, each in the shape of a `message` frame, so a client handles history
/// (from the protocol or the server API) and live messages alike.
#[derive(Debug, Clone, Copy)]
pub struct MessageList<'a>(pub &'a [Message]);

impl Serialize for MessageList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            seq.serialize_element(&ServerFrame::Message(message))?;
        }
        seq.end()
    }
}

impl ServerFrame<'_> {
    pub fn encode(&self) -> ByteString {
        match serde_json::to_string(self) {
            Ok(text) => ByteString::from(text),
            // Unreachable for these types (no maps with non-string keys), but a frame must
            // never take the session down.
            Err(error) => {
                tracing::error!(%error, "could not encode a server frame");
                ByteString::from_static(r#"{"type":"error","code":"internal","message":"could not encode a frame"}"#)
            }
        }
    }
}

/// Encodes a `message` frame: the one encoding shared by a whole room's fan-out.
pub fn encode_message(message: &Message) -> ByteString {
    ServerFrame::Message(message).encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn json_of(frame: &ServerFrame<'_>) -> Value {
        serde_json::from_str(&frame.encode()).unwrap()
    }

    #[test]
    fn message_frames_carry_every_field() {
        let message = Message {
            room: RoomName::parse("lobby").unwrap(),
            id: MessageId::new(1_700_000_000_123, 4),
            user: UserName::parse("alice").unwrap(),
            body: "hi \"there\"".into(),
            trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        };
        assert_eq!(
            serde_json::from_str::<Value>(&encode_message(&message)).unwrap(),
            json!({"type":"message","room":"lobby","id":"1700000000123-4","user":"alice",
                   "body":"hi \"there\"","ts":1_700_000_000_123u64})
        );
        let room = message.room.clone();
        let history = json_of(&ServerFrame::History {
            reference: Some("h"),
            room: &room,
            messages: MessageList(std::slice::from_ref(&message)),
            truncated: false,
        });
        assert!(history.get("truncated").is_none(), "a whole page says nothing");
        assert_eq!(history["ref"], "h");
        assert_eq!(history["messages"][0]["type"], "message");
        assert_eq!(history["messages"][0]["id"], "1700000000123-4");
    }

    #[test]
    fn replies_echo_ref_only_when_given() {
        let room = RoomName::parse("a").unwrap();
        let joined = json_of(&ServerFrame::Joined {
            reference: None,
            room: &room,
            members: &[],
            member_count: 0,
            presence: true,
            last_id: None,
            recovered: None,
        });
        assert_eq!(
            joined,
            json!({"type":"joined","room":"a","members":[],"member_count":0,"presence":true,"last_id":null})
        );
        let error =
            json_of(&ServerFrame::Error { reference: Some("7"), code: ErrorCode::RateLimited, message: "slow down" });
        assert_eq!(error, json!({"type":"error","ref":"7","code":"rate_limited","message":"slow down"}));
    }
}
