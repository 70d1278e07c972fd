//! What the fuzz targets build their inputs from: JSON written token by
//! token, so that a number can be any token (`1e400`, thirty digits, `-0`),
//! a key can repeat, and the text can be cut short or corrupted after it
//! is written.
//!
//! The targets are property tests named `fuzz_*`, beside the code each
//! fuzzes: the order request parser (`http/contract/order_request_fuzz.rs`),
//! the venue's execution reports and REST answers
//! (`venues/exchange_fuzz.rs`, `venues/exchange_rest_fuzz.rs`) and the
//! ledger's answers (`venues/balances_fuzz.rs`). They are proptest, not
//! cargo-fuzz: cargo-fuzz needs a nightly toolchain, which CI does not
//! have, so these run in the ordinary suite, a few hundred cases each. Run
//! them longer with `PROPTEST_CASES=100000 cargo nextest run fuzz_`.

use proptest::prelude::*;
use proptest::sample::Index;
use reqwest::StatusCode;

use crate::venues::CallError;

/// The cases a target runs: `default`, or `PROPTEST_CASES` when set.
pub fn config(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

/// A JSON value as it will be written.
#[derive(Debug, Clone)]
pub enum Json {
    /// A token written as is: a number in any spelling, `true`, `null`.
    Raw(String),
    Str(String),
    Arr(Vec<Json>),
    /// Entries in order; a key may repeat.
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn raw(token: impl Into<String>) -> Self {
        Json::Raw(token.into())
    }

    pub fn str(text: impl Into<String>) -> Self {
        Json::Str(text.into())
    }

    /// A decimal written as a number token, or as a string.
    pub fn decimal(text: String, as_number: bool) -> Self {
        if as_number {
            Json::Raw(text)
        } else {
            Json::Str(text)
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Raw(token) => out.push_str(token),
            Json::Str(text) => out.push_str(&quoted(text)),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quoted(key));
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// Number tokens that sit on the edges a decimal field has: zero and its
/// signs, exponents, floats that are not what they print as, past u64,
/// past f64, past `Decimal`, and a few random ones of each shape.
pub fn number_token() -> BoxedStrategy<String> {
    const EDGES: &[&str] = &[
        "0",
        "-0",
        "0.0",
        "1",
        "-1",
        "2",
        "10",
        "10.0",
        "10.5",
        "100",
        "1e2",
        "1E2",
        "1e+2",
        "1e-2",
        "1.5e1",
        "115e-2",
        "0.1",
        "0.01",
        "0.0001",
        "0.00001",
        "0.5",
        "1.15",
        "1.155",
        "1.1500000000000001",
        "190.25",
        "190.255",
        "99.9999",
        "99.99999",
        "1000000",
        "1000000.01",
        "9999999",
        "10000000",
        "10000001",
        "100000000",
        "100000001",
        "1e7",
        "1e8",
        "1e12",
        "1e15",
        "1e28",
        "1e29",
        "1e30",
        "1e300",
        "1e400",
        "-1e400",
        "1e-400",
        "1e-7",
        "5e-324",
        "1.7976931348623157e308",
        "0.30000000000000004",
        "9007199254740993",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "79228162514264337593543950335",
        "79228162514264337593543950336",
        "1000000000000000000000000000000",
        "0.000000000000000000000000000001",
        "123456789012345678901234567890.123456789012345678901234567890",
    ];
    prop_oneof![
        4 => prop::sample::select(EDGES).prop_map(str::to_string),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        2 => any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(|n| n.to_string()),
        2 => "-?(0|[1-9][0-9]{0,31})(\\.[0-9]{1,31})?([eE][-+]?[0-9]{1,3})?",
    ]
    .boxed()
}

/// Text a decimal field might be sent as: plain decimals in range and out,
/// the notations the grammar refuses (signs, exponents, spaces, words),
/// and digits that are not ASCII.
pub fn decimal_text() -> BoxedStrategy<String> {
    const WORDS: &[&str] = &[
        "",
        " ",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "+1",
        "-1",
        " 1",
        "1 ",
        "1.",
        ".5",
        "01",
        "00.5",
        "0x10",
        "1_000",
        "1,5",
        "1e2",
        "1E400",
        "10^30",
        "1e400",
        "-0",
        "\u{ff11}\u{ff10}",
        "\u{661}\u{662}",
        "1\u{0}",
        "½",
        "1.0.0",
        "--1",
        "0.0",
    ];
    prop_oneof![
        3 => number_token(),
        3 => "(0|[1-9][0-9]{0,9})(\\.[0-9]{1,8})?",
        2 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => "[-+ .eE0-9]{0,12}",
        1 => "[0-9]{20,40}(\\.[0-9]{0,40})?",
        1 => "0\\.[0-9]{25,40}",
    ]
    .boxed()
}

/// Any text: printable, control characters, and long runs.
pub fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "\\PC{0,16}",
        1 => ".{0,8}",
        1 => "[\\x00-\\x1f\\x7f-\\x9f]{1,4}",
        1 => "[a-z]{150,300}",
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
pub fn any_json() -> BoxedStrategy<Json> {
    let leaf = prop_oneof![
        Just(Json::raw("null")),
        Just(Json::raw("true")),
        Just(Json::raw("false")),
        number_token().prop_map(Json::Raw),
        decimal_text().prop_map(Json::Str),
        any_text().prop_map(Json::Str),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Arr),
            prop::collection::vec((any_text(), inner), 0..4).prop_map(Json::Obj),
        ]
    })
    .boxed()
}

/// A field `key` of an object: present with `valid` (what a sender who
/// means well sends) most of the time, else with a value of the wrong
/// kind, or null; absent with probability `1 - present`.
pub fn field(
    key: &'static str,
    valid: BoxedStrategy<Json>,
    present: f64,
) -> BoxedStrategy<Option<(String, Json)>> {
    let value = prop_oneof![
        6 => valid,
        2 => any_json(),
        1 => Just(Json::raw("null")),
    ];
    prop::option::weighted(present, value.prop_map(move |v| (key.to_string(), v))).boxed()
}

/// An object of `fields` (in a shuffled order), sometimes with keys
/// nobody asked for: near misses of a real key's spelling, or a real key
/// again with another value (JSON allows it; the last one counts).
pub fn object(
    fields: Vec<BoxedStrategy<Option<(String, Json)>>>,
    keys: &'static [&'static str],
) -> BoxedStrategy<Json> {
    let extra_key = prop_oneof![
        prop::sample::select(keys).prop_map(str::to_string),
        prop::sample::select(keys).prop_map(|k| k.to_uppercase()),
        prop::sample::select(keys).prop_map(|k| format!(" {k}")),
        prop::sample::select(keys).prop_map(|k| format!("{k}\u{0}")),
        any_text(),
    ];
    let extras = prop::collection::vec((extra_key, any_json()), 0..3);
    (fields, extras, any::<Index>(), any::<bool>())
        .prop_map(|(fields, extras, rotate, extras_first)| {
            let mut entries: Vec<(String, Json)> = fields.into_iter().flatten().collect();
            if !entries.is_empty() {
                let n = rotate.index(entries.len());
                entries.rotate_left(n);
            }
            if extras_first {
                let mut all = extras;
                all.extend(entries);
                entries = all;
            } else {
                entries.extend(extras);
            }
            Json::Obj(entries)
        })
        .boxed()
}

/// `valid` entries with up to two things changed: one dropped, one's
/// value replaced by `other`, or an entry of `keys` (with `other`) added.
pub fn near(
    valid: BoxedStrategy<Vec<(String, Json)>>,
    keys: &'static [&'static str],
    other: BoxedStrategy<Json>,
) -> BoxedStrategy<Json> {
    let change = (any::<Index>(), 0..3u8, prop::sample::select(keys), other);
    let changes = prop::collection::vec(prop::option::weighted(0.5, change), 0..3);
    (valid, changes)
        .prop_map(|(mut entries, changes)| {
            for (at, kind, key, value) in changes.into_iter().flatten() {
                match kind {
                    0 if !entries.is_empty() => {
                        entries.remove(at.index(entries.len()));
                    }
                    1 if !entries.is_empty() => {
                        let i = at.index(entries.len());
                        entries[i].1 = value;
                    }
                    _ => entries.push((key.to_string(), value)),
                }
            }
            Json::Obj(entries)
        })
        .boxed()
}

/// A value a number field might be sent instead of its own: a number in
/// any spelling, as a string or a token, or any other JSON.
pub fn wrong_number() -> BoxedStrategy<Json> {
    prop_oneof![
        2 => number_token().prop_map(Json::Raw),
        2 => decimal_text().prop_map(Json::Str),
        1 => "-?[0-9]{25,35}(\\.[0-9]{0,30})?".prop_map(Json::Str),
        1 => any_json(),
    ]
    .boxed()
}

/// An HTTP status an answer might carry: mostly success, else each class
/// the clients tell apart.
pub fn status_code() -> BoxedStrategy<StatusCode> {
    const OTHERS: &[u16] = &[
        100, 201, 202, 204, 301, 304, 400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504,
        599,
    ];
    prop_oneof![
        4 => Just(StatusCode::OK),
        1 => prop::sample::select(OTHERS)
            .prop_map(|code| StatusCode::from_u16(code).unwrap_or(StatusCode::OK)),
    ]
    .boxed()
}

/// A failed answer is classified by its status, and only by it.
pub fn classified_by_status(status: StatusCode, error: &CallError) -> Result<(), TestCaseError> {
    let retryable = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::CONFLICT);
    match error {
        CallError::Unexpected { .. } => prop_assert!(status.is_success(), "{status}: {error}"),
        CallError::Retryable { .. } => prop_assert!(retryable, "{status}: {error}"),
        CallError::Unknown { .. } => prop_assert!(status.is_server_error(), "{status}: {error}"),
        CallError::Definitive { status: code, .. } => {
            prop_assert_eq!(*code, status.as_u16());
            prop_assert!(!status.is_success() && !retryable && !status.is_server_error());
        }
    }
    Ok(())
}

/// `text`'s bytes, mostly as written, sometimes cut short, with a byte
/// changed or inserted, or replaced by random bytes.
pub fn bytes_of(text: String) -> BoxedStrategy<Vec<u8>> {
    const HOSTILE: &[u8] = b"\"\\{}[],:0-.e \x00\xff\xc3";
    let n = text.len();
    let bytes = text.into_bytes();
    prop_oneof![
        12 => Just(bytes.clone()),
        2 => any::<Index>().prop_map({
            let bytes = bytes.clone();
            move |at| bytes[..at.index(n + 1)].to_vec()
        }),
        1 => (any::<Index>(), prop::sample::select(HOSTILE)).prop_map({
            let bytes = bytes.clone();
            move |(at, byte)| {
                let mut bytes = bytes.clone();
                if n > 0 {
                    bytes[at.index(n)] = byte;
                }
                bytes
            }
        }),
        1 => (any::<Index>(), prop::sample::select(HOSTILE)).prop_map({
            let bytes = bytes.clone();
            move |(at, byte)| {
                let mut bytes = bytes.clone();
                bytes.insert(at.index(n + 1), byte);
                bytes
            }
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
    .boxed()
}
