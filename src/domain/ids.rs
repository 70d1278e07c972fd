//! The trade's identifiers as types, not strings (nautilus' lesson): an
//! exec id cannot be passed where a venue order id is meant, and each says
//! whose name for what it is.
//!
//! - [`ClientOrderId`]: the trader's name for an order (Alpaca's
//!   `client_order_id`), unique per account; validated on the way in.
//! - [`VenueClientOrderId`]: orderd's name for the order *at the venue*,
//!   derived from the order id (`od-…`), the placement's idempotency key.
//! - [`VenueOrderId`]: the venue's own id of the order.
//! - [`ExecId`]: the venue's id of one execution (a fill), never reused.
//! - [`HoldId`]: the balances service's id of a hold.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::InvalidField;

/// An identifier someone else assigned: taken as given (no validation),
/// compared and shown as its text.
macro_rules! foreign_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(text: impl Into<String>) -> Self {
                Self(text.into())
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

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self::new(text)
            }
        }
    };
}

foreign_id!(
    /// The venue's id of an order.
    VenueOrderId
);
foreign_id!(
    /// The venue's id of one execution; the key that makes a repeated
    /// report a no-op and the settlement's idempotency key.
    ExecId
);
foreign_id!(
    /// The balances service's id of a hold.
    HoldId
);
foreign_id!(
    /// orderd's client order id at the venue (`od-` and the order id's
    /// hex); see `engine::keys`.
    VenueClientOrderId
);

/// Longest `client_order_id` accepted (Alpaca's limit).
pub const CLIENT_ORDER_ID_MAX_LEN: usize = 128;

/// A trader-chosen or orderd-generated id, unique per account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientOrderId(String);

impl ClientOrderId {
    /// Validates a trader's id: 1 to [`CLIENT_ORDER_ID_MAX_LEN`]
    /// characters, no control characters.
    pub fn parse(text: &str) -> Result<Self, InvalidField> {
        let invalid = |problem: String| InvalidField {
            field: "client_order_id",
            problem,
        };
        if text.is_empty() {
            return Err(invalid("must not be empty".into()));
        }
        if text.chars().count() > CLIENT_ORDER_ID_MAX_LEN {
            return Err(invalid(format!(
                "must be at most {CLIENT_ORDER_ID_MAX_LEN} characters"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters".into()));
        }
        Ok(Self(text.to_string()))
    }

    /// An id orderd generates itself (the order id's text).
    pub fn generated(order_id: uuid::Uuid) -> Self {
        Self(order_id.to_string())
    }

    /// An id read back from orderd's own records (validated when it was
    /// accepted, possibly under an older limit).
    pub fn recorded(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_ids_are_bounded_and_printable() {
        assert!(ClientOrderId::parse("abc-1").is_ok());
        assert!(ClientOrderId::parse("").is_err());
        assert!(ClientOrderId::parse(&"x".repeat(CLIENT_ORDER_ID_MAX_LEN + 1)).is_err());
        assert!(ClientOrderId::parse("a\u{0}b").is_err());
        assert_eq!(ClientOrderId::parse("é").unwrap().as_str(), "é");
    }

    #[test]
    fn foreign_ids_serialize_as_their_text() {
        let id = ExecId::new("e-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"e-1\"");
        assert_eq!(id.to_string(), "e-1");
    }
}
