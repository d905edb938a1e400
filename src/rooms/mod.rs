//! The node's live rooms: which rooms have members on this node, and the fan-out of their
//! events to those members.
//!
//! The [`RoomDirectory`] is the node's one record of its rooms: sessions join and leave through
//! it, and the engine delivers every event through it. It encodes each event once (`event`) and
//! sends it once to each HTTP worker thread with members in the room, whose `WorkerRooms`
//! actor hands it to them by a plain call on their own thread (`worker`). A room's numbered
//! events (the Redis engine's, which reach it from two ways) leave it in number order
//! (`order`).

mod directory;
mod event;
mod messages;
mod order;
mod waiting;
mod worker;

pub use directory::RoomDirectory;
pub use messages::RoomEvent;
pub use order::{EventOrder, JoinPoint};
pub use worker::{LocalMember, LocalMembers, WorkerAddr};
