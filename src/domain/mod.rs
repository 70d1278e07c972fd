//! The domain core: order values, the lifecycle transition table, the fold
//! of fills. Plain functions over plain types with `now` passed in.
//!
//! Architecture invariant: this module imports no I/O crate (no tokio,
//! sqlx, reqwest, axum) and reads no clock.

/// A closed set of values with one text form each: the enum, `ALL`,
/// `as_str`, `parse` (`None` for unknown text) and `Display`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod fills;
pub mod lifecycle;
pub mod order;
pub mod reconcile;
pub mod schedule;
