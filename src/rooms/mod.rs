//! The node's live rooms: one [`Room`] actor per room that has members on this node.
//!
//! Sessions join and leave through the [`Registry`] actor, which creates a room's actor with its
//! first local member and stops it with its last, so there is never a race between a room going
//! away and a session joining it. The engine delivers through the [`RoomDirectory`], a shared
//! read-mostly map from room name to actor, which costs a lookup and no actor hop per event.

mod directory;
mod messages;
mod registry;
mod room;

pub use directory::RoomDirectory;
pub use messages::{JoinRoom, LeaveRoom, RoomEvent};
pub use registry::Registry;
pub use room::Room;
