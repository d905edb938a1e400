//! The node's live rooms: one [`Room`] actor per room that has members on this node.
//!
//! Sessions join and leave through the [`Registry`] actor, which creates a room's actor with its
//! first local member and stops it with its last, so there is never a race between a room going
//! away and a session joining it. The engine delivers through the [`RoomDirectory`], a shared
//! read-mostly map from room name to actor, which costs a lookup and no actor hop per event.
//! A room sends each event once to each HTTP worker thread with members in it, and that
//! worker's `WorkerRooms` hands it to them (`worker`).

mod directory;
mod messages;
mod registry;
mod room;
mod worker;

pub use directory::RoomDirectory;
pub use messages::{JoinRoom, LeaveRoom, RoomEvent};
pub use registry::Registry;
pub use room::Room;
pub use worker::{LocalMember, LocalMembers, WorkerAddr};
