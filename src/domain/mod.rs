//! The domain core: order values, the lifecycle transition table, the fold
//! of fills. Plain functions over plain types with `now` passed in.
//!
//! Architecture invariant: this module imports no I/O crate (no tokio,
//! sqlx, reqwest, axum) and reads no clock.

/// A field that failed validation; `field` is the request's field name, so
/// the trader sees which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct InvalidField {
    pub field: &'static str,
    pub problem: String,
}

pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidField {
    InvalidField {
        field,
        problem: problem.into(),
    }
}

/// A closed set of values with one text form each (the wire's and the
/// database's spelling): implemented by every enum [`text_enum!`] declares.
pub trait TextEnum: Sized + Copy + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// What the value is called where a message names it (`side`, `status`).
    const NAME: &'static str;
    fn as_str(self) -> &'static str;
    /// The value spelled `text`, or `None` for an unknown spelling.
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }
    /// Every spelling, comma-separated (for error messages).
    fn spellings() -> String {
        Self::ALL
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Declares a closed set of values with one text form each: the enum,
/// its [`TextEnum`] implementation (`ALL`, `NAME`, `as_str`, `parse`),
/// inherent `as_str`/`parse` for call sites that do not import the trait,
/// `Display`, and serde in the same spelling. The one macro for the idea,
/// used for lifecycle states and request fields alike.
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident as $field:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        $vis enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

        impl $crate::domain::TextEnum for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
            const NAME: &'static str = $field;
            fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = <$name as $crate::domain::TextEnum>::ALL;

            pub fn as_str(self) -> &'static str {
                <$name as $crate::domain::TextEnum>::as_str(self)
            }

            pub fn parse(text: &str) -> Option<Self> {
                <$name as $crate::domain::TextEnum>::parse(text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod asset;
pub mod fills;
pub mod hold;
pub mod ids;
pub mod lifecycle;
pub mod order;
pub mod position;
pub mod reconcile;
pub mod replace;
pub mod schedule;
pub mod session;
