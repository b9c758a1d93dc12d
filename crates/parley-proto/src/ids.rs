//! Typed identifiers.
//!
//! Ids are opaque strings to clients (JavaScript cannot hold 64-bit integers),
//! but the server stores them as integers. Each kind has a one-letter prefix so
//! that a user id pasted where a conversation id belongs can never silently
//! name some other row.
//!
//! Because ids are opaque, a client cannot tell a malformed id from one that
//! names nothing, and neither does the protocol: reading an id from JSON or a
//! URL path never fails on its content. A string that is not an id of the
//! expected kind reads as that kind's `UNKNOWN` id, which names no row, so
//! every lookup answers it with `not_found` like any other unknown id.
//! [`FromStr`] stays strict for code that must tell the two apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An id string that does not parse as the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {value:?}")]
pub struct IdParseError {
    /// Which kind of id was expected.
    pub kind: &'static str,
    /// The rejected input, truncated.
    pub value: String,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub i64);

        impl $name {
            /// The string prefix of this kind of id.
            pub const PREFIX: &'static str = $prefix;

            /// What any string that is not an id of this kind deserializes
            /// to. Storage numbers rows from 1, so it names nothing.
            pub const UNKNOWN: $name = $name(0);
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix($prefix)
                    .filter(|digits| !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|digits| digits.parse::<i64>().ok())
                    .map($name)
                    .ok_or_else(|| IdParseError {
                        kind: $kind,
                        value: s.chars().take(40).collect(),
                    })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        // A string such as `u12`, as `Serialize` above writes it. Requests
        // may carry any string (it reads as `UNKNOWN`), so no pattern.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("A ", $kind, " id: `", $prefix, "` and digits, opaque to clients.")))
                    .examples([concat!($prefix, "12")])
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok(s.parse().unwrap_or($name::UNKNOWN))
            }
        }
    };
}

typed_id!(
    /// A user account.
    UserId, "u", "user"
);
typed_id!(
    /// One logged-in device of a user (every login is a new device).
    DeviceId, "d", "device"
);
typed_id!(
    /// A direct or group conversation.
    ConversationId, "c", "conversation"
);
typed_id!(
    /// A stored message, unique across the server.
    MessageId, "m", "message"
);
typed_id!(
    /// An uploaded media file (§9).
    MediaId, "f", "media"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_kinds() {
        let user: UserId = "u42".parse().unwrap();
        assert_eq!(user, UserId(42));
        assert_eq!(user.to_string(), "u42");
        assert!("c42".parse::<UserId>().is_err());
        assert!("u".parse::<UserId>().is_err());
        assert!("u-1".parse::<UserId>().is_err());
        assert!("u99999999999999999999".parse::<UserId>().is_err());
        let json = serde_json::to_string(&ConversationId(7)).unwrap();
        assert_eq!(json, "\"c7\"");
        assert_eq!(
            serde_json::from_str::<ConversationId>(&json).unwrap(),
            ConversationId(7)
        );
        // Read from JSON, anything else names no conversation.
        for other in ["\"u7\"", "\"zzz\"", "\"\"", "\"c\""] {
            assert_eq!(
                serde_json::from_str::<ConversationId>(other).unwrap(),
                ConversationId::UNKNOWN,
                "{other}"
            );
        }
        assert!(
            serde_json::from_str::<ConversationId>("7").is_err(),
            "not a string"
        );
    }
}
