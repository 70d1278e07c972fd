//! The store boundary for domain values: every lifecycle enum and
//! identifier is decoded from its column once, here, into its domain type
//! (an unknown spelling is a decode error naming the value, never a silent
//! default), and the domain's sets of values (terminal statuses, driven
//! steps) are rendered into SQL from the domain's own constants, so no
//! query retypes them.

use std::sync::LazyLock;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::domain::TextEnum;
use crate::domain::asset::AssetStatus;
use crate::domain::fills::{FillSource, SettlementState};
use crate::domain::ids::{ClientOrderId, ExecId, HoldId, VenueClientOrderId, VenueOrderId};
use crate::domain::lifecycle::{ActionState, Status, Step, StepState, VenueStatus};
use crate::domain::order::{OrderType, Side, TimeInForce};

/// `TEXT` columns holding one of a [`TextEnum`]'s spellings.
macro_rules! text_enum_column {
    ($($name:ty),+ $(,)?) => {$(
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                <$name as TextEnum>::parse(text).ok_or_else(|| {
                    format!("unknown {} {text:?}", <$name as TextEnum>::NAME).into()
                })
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    )+};
}

text_enum_column!(
    AssetStatus,
    Status,
    Step,
    StepState,
    ActionState,
    VenueStatus,
    Side,
    OrderType,
    TimeInForce,
    SettlementState,
    FillSource,
);

/// `TEXT` columns holding an identifier, as its text.
macro_rules! text_id_column {
    ($($name:ty => $make:path),+ $(,)?) => {$(
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok($make(<&str as Decode<Postgres>>::decode(value)?))
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    )+};
}

text_id_column!(
    VenueOrderId => VenueOrderId::new,
    ExecId => ExecId::new,
    HoldId => HoldId::new,
    VenueClientOrderId => VenueClientOrderId::new,
    ClientOrderId => ClientOrderId::recorded,
);

/// `values` as a parenthesised SQL list of string literals, for `IN`
/// (the spellings are the domain's own, lower-case ASCII words).
pub(crate) fn sql_list<T: TextEnum>(values: &[T]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| {
            let text = v.as_str();
            debug_assert!(
                text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "a spelling that needs quoting: {text:?}"
            );
            format!("'{text}'")
        })
        .collect();
    format!("({})", quoted.join(", "))
}

/// `('filled', 'canceled', ...)`: [`Status::TERMINAL`] in SQL.
pub(crate) static TERMINAL_STATUSES: LazyLock<String> =
    LazyLock::new(|| sql_list(Status::TERMINAL));

/// `('day', ...)`: [`TimeInForce::ENDS_WITH_SESSION`] in SQL.
pub(crate) static SESSION_TIME_IN_FORCE: LazyLock<String> =
    LazyLock::new(|| sql_list(TimeInForce::ENDS_WITH_SESSION));

/// `('reserve', 'place', ...)`: [`Step::DRIVEN`] in SQL.
pub(crate) static DRIVEN_STEPS: LazyLock<String> = LazyLock::new(|| sql_list(Step::DRIVEN));

/// `(..., 'parked')`: the driven steps and parked, what "stuck" means.
pub(crate) static STUCK_STEPS: LazyLock<String> = LazyLock::new(|| {
    let mut steps = Step::DRIVEN.to_vec();
    steps.push(Step::Parked);
    sql_list(&steps)
});

/// `('working', 'cancel')`: [`Step::AT_VENUE`] in SQL.
pub(crate) static AT_VENUE_STEPS: LazyLock<String> = LazyLock::new(|| sql_list(Step::AT_VENUE));

/// `('canceled', 'expired')`: [`Status::LATE_FILLS_POSSIBLE`] in SQL.
pub(crate) static LATE_FILL_STATUSES: LazyLock<String> =
    LazyLock::new(|| sql_list(Status::LATE_FILLS_POSSIBLE));

/// A statement built once from a template, kept for the process's life
/// (sqlx takes `&'static str` without copying it).
pub(crate) fn statement(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// The SQL that stamps an order's terminal timestamps when `status_param`
/// (a `$n` holding the new status) is terminal: the one place they are
/// written, so every path that ends an order stamps them alike. Each is
/// set once and never moved.
pub(crate) fn terminal_timestamps(status_param: &str) -> String {
    let stamp = |column: &str, status: Status| {
        format!(
            "{column} = CASE WHEN {status_param} = '{}' THEN COALESCE({column}, now()) ELSE {column} END",
            status.as_str()
        )
    };
    [
        stamp("filled_at", Status::Filled),
        stamp("canceled_at", Status::Canceled),
        stamp("expired_at", Status::Expired),
        stamp("failed_at", Status::Rejected),
        stamp("replaced_at", Status::Replaced),
    ]
    .join(",\n                ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_render_from_the_domain() {
        let parse = |list: &str| -> Vec<String> {
            list.trim_matches(|c| c == '(' || c == ')')
                .split(", ")
                .map(|s| s.trim_matches('\'').to_string())
                .collect()
        };
        let spelled = |values: &[Status]| -> Vec<String> {
            values.iter().map(|s| s.as_str().to_string()).collect()
        };
        assert_eq!(parse(&TERMINAL_STATUSES), spelled(Status::TERMINAL));
        let steps: Vec<String> = Step::DRIVEN.iter().map(|s| s.to_string()).collect();
        assert_eq!(parse(&DRIVEN_STEPS), steps);
        assert_eq!(
            parse(&STUCK_STEPS).last().map(String::as_str),
            Some("parked")
        );
    }

    #[test]
    fn terminal_timestamps_cover_every_terminal_status() {
        let sql = terminal_timestamps("$2");
        for status in Status::TERMINAL {
            assert!(sql.contains(&format!("'{}'", status.as_str())), "{sql}");
        }
    }
}
