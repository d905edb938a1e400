//! Room names, user names and session ids.
//!
//! Names are `Arc<str>` inside: a room name is cloned into every delivery and every membership,
//! so a clone must be a reference-count bump, not an allocation.

use std::{fmt, sync::Arc};

use serde::{Serialize, Serializer};

/// Why a name was rejected; the text is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must match ^[A-Za-z0-9_.:-]{{1,{max}}}$")]
pub struct InvalidName {
    what: &'static str,
    max: usize,
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-')
}

fn check_name(raw: &str, what: &'static str, max: usize) -> Result<(), InvalidName> {
    if raw.is_empty() || raw.len() > max || !raw.bytes().all(is_name_char) {
        return Err(InvalidName { what, max });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The longest accepted name, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Parses `raw`, rejecting anything outside `^[A-Za-z0-9_.:-]{1,MAX_LEN}$`.
            pub fn parse(raw: &str) -> Result<Self, InvalidName> {
                check_name(raw, $what, Self::MAX_LEN)?;
                Ok(Self(Arc::from(raw)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A room name: `^[A-Za-z0-9_.:-]{1,128}$`.
    RoomName, "room", 128
);
name_type!(
    /// A user name: `^[A-Za-z0-9_.:-]{1,64}$` (JWT subjects are checked against it too).
    UserName, "user", 64
);

/// A session's identity: a random UUID, unique across the cluster.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for SessionId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_pattern() {
        for ok in ["lobby", "a", "team:eng.ops-1_x", &"r".repeat(128)] {
            assert_eq!(RoomName::parse(ok).map(|r| r.to_string()), Ok(ok.to_string()));
        }
        for bad in ["", "has space", "slash/no", "é", &"r".repeat(129)] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn user_names_stop_at_64_bytes() {
        assert!(UserName::parse(&"u".repeat(64)).is_ok());
        let err = UserName::parse(&"u".repeat(65)).unwrap_err();
        assert_eq!(err.to_string(), "user must match ^[A-Za-z0-9_.:-]{1,64}$");
    }

    #[test]
    fn session_ids_round_trip_through_text() {
        let id = SessionId::random();
        assert_eq!(id.to_string().parse::<SessionId>().ok(), Some(id));
    }
}
