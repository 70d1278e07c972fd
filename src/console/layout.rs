//! The page every console view sits in (skip link, navigation, who is
//! logged in, the logout form), the two vendored assets served under a
//! content hash, and small renderers the views share.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};

use crate::app::console::{Role, Session};
use crate::domain::lifecycle::{Status, Step, StepState};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// An asset's name with the first 12 hex digits of its SHA-256: a new
/// build's asset is a new URL, so it may be cached for good.
fn hashed(stem: &str, ext: &str, body: &str) -> String {
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    format!("{stem}-{}.{ext}", &digest[..12])
}

static CSS_NAME: LazyLock<String> = LazyLock::new(|| hashed("console", "css", CSS));
static JS_NAME: LazyLock<String> = LazyLock::new(|| hashed("console", "js", JS));

/// `GET /console/assets/{name}`: the stylesheet or the script, by its
/// hashed name.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = if name == *CSS_NAME {
        (CSS, "text/css; charset=utf-8")
    } else if name == *JS_NAME {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

/// The console's sections, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Orders,
    Reconciliation,
    Health,
    None,
}

/// A whole page: `title`, the logged-in `session` (none on the login
/// page) and the view's `body`.
pub fn page(title: &str, section: Section, session: Option<&Session>, body: Markup) -> Markup {
    let nav = [
        (Section::Orders, "/console/orders", "Blotter"),
        (
            Section::Reconciliation,
            "/console/reconciliation",
            "Reconciliation",
        ),
        (Section::Health, "/console/health", "Health"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · orderd console" }
                link rel="stylesheet" href={ "/console/assets/" (*CSS_NAME) };
                script src={ "/console/assets/" (*JS_NAME) } defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "orderd console" }
                    @if let Some(session) = session {
                        nav aria-label="Console sections" {
                            ul {
                                @for (s, href, label) in nav {
                                    li {
                                        a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                        div.who {
                            span { (session.operator) " · " (session.role.as_str()) }
                            form method="post" action="/console/logout" {
                                (csrf_field(session))
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token); }
}

/// Whether the session may act (buttons are shown only then; the
/// handlers refuse a viewer regardless).
pub fn may_act(session: &Session) -> bool {
    session.role == Role::Operator
}

/// A time as the console shows it: UTC, to the millisecond.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S%.3f")) }
    }
}

/// How long ago, in words a tired reader takes in at once.
pub fn ago(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// A status as a coloured badge.
pub fn status_badge(status: Status) -> Markup {
    let class = match status {
        Status::Filled => "badge ok",
        Status::Rejected | Status::Expired => "badge bad",
        Status::PendingNew | Status::PendingCancel | Status::PendingReplace => "badge warn",
        _ => "badge",
    };
    html! { span class=(class) { (status.as_str()) } }
}

/// A recovery point as a badge: the step, and its state unless pending.
pub fn step_badge(step: Step, state: StepState) -> Markup {
    let class = match (step, state) {
        (Step::Parked, _) => "badge bad",
        (_, StepState::Unknown) => "badge warn",
        (Step::Closed, _) => "badge ok",
        _ => "badge",
    };
    html! {
        span class=(class) {
            (step.as_str())
            @if state != StepState::Pending { " · " (state.as_str()) }
        }
    }
}

/// A notice above a view's content (`ok` or `error`).
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div class={ "notice " (kind) } role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

/// JSON shown as preformatted text.
pub fn json_block(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.mono { (text) } }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
