//! Validated value types shared by every layer: room and user names, message ids, session ids,
//! messages and presence.
//!
//! Everything that crosses the wire or goes into the engine is parsed into one of these first, so
//! the rest of the code never re-checks a name or re-parses an id.

mod message;
mod message_id;
mod names;

pub use message::{Member, Message, PresenceChange, PresenceKind, RoomPresence};
pub use message_id::{MessageId, ParseMessageIdError, now_ms};
pub use names::{InvalidName, RoomName, SessionId, UserName};
