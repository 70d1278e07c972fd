//! Who is at the console: login with the admin token (an operator) or the
//! viewer token into a session stored in Postgres (so any instance knows
//! it), carried by an `HttpOnly; SameSite=Strict; Path=/console` cookie.
//! Every POST carries the session's CSRF token and must come from this
//! host (Origin, or Referer). A trader's API key is never looked at here:
//! no header authenticates a console route, only the cookie.

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::ConsoleError;
use super::layout::{self, Section};
use crate::app::console::{self, LoginError, Role, Session};
use crate::http::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "orderd_console";

/// A request of a logged-in console session (any role).
pub struct Console {
    pub session: Session,
    /// The cookie's id (for logout).
    id: String,
}

impl std::ops::Deref for Console {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

/// The value of cookie `name`, if the request has it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// To the login page, coming back to `uri` afterwards.
fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/console/orders");
    Redirect::to(&format!("/console/login?next={}", layout::encode(next))).into_response()
}

impl FromRequestParts<Arc<AppState>> for Console {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(id) = cookie(&parts.headers, COOKIE).filter(|id| id.len() == 64) else {
            return Err(to_login(parts));
        };
        match console::session(&state.app, id).await {
            Ok(Some(session)) => Ok(Console {
                session,
                id: id.to_string(),
            }),
            Ok(None) => Err(to_login(parts)),
            Err(error) => Err(ConsoleError::from(error).into_response()),
        }
    }
}

/// Whether the request comes from a page of this host: its Origin, or
/// failing that its Referer, names the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ["http://", "https://"].iter().any(|scheme| {
        from.strip_prefix(scheme).is_some_and(|rest| {
            rest.strip_prefix(host)
                .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
        })
    })
}

/// The checks every console POST passes: from this host, with the
/// session's CSRF token, and (for an action) by an operator.
pub fn check_post(
    headers: &HeaderMap,
    session: &Session,
    csrf: &str,
    needs_operator: bool,
) -> Result<(), ConsoleError> {
    if !same_origin(headers) {
        return Err(ConsoleError::Forbidden(
            "this request did not come from a console page of this host".into(),
        ));
    }
    if !crate::http::admin::constant_time_eq(csrf.as_bytes(), session.csrf_token.as_bytes()) {
        return Err(ConsoleError::Forbidden(
            "the form's token does not match your session; reload the page and try again".into(),
        ));
    }
    if needs_operator && session.role != Role::Operator {
        return Err(ConsoleError::Forbidden(
            "your session is read-only (viewer): log in with the operator token to act".into(),
        ));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Where to go after logging in: a console page, never elsewhere.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console/") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/console/orders",
    }
}

fn login_page(next: &str, error: Option<&str>, operator: &str) -> maud::Markup {
    layout::page(
        "Log in",
        Section::None,
        None,
        html! {
            div.login {
                h1 { "Log in to the orderd console" }
                @if let Some(error) = error { (layout::notice("error", error)) }
                form method="post" action="/console/login" {
                    input type="hidden" name="next" value=(next);
                    div.field {
                        label for="operator" { "Your name" }
                        input type="text" id="operator" name="operator" required
                            autocomplete="username" maxlength="64" value=(operator)
                            aria-describedby="operator-help";
                        div.muted id="operator-help" { "Recorded with every action you take." }
                    }
                    div.field {
                        label for="token" { "Token" }
                        input type="password" id="token" name="token" required
                            autocomplete="current-password" aria-describedby="token-help";
                        div.muted id="token-help" {
                            "The admin token (operator) or the console's viewer token (read-only)."
                        }
                    }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// `GET /console/login`.
pub async fn login_form(Query(query): Query<LoginQuery>) -> maud::Markup {
    login_page(safe_next(query.next.as_deref()), None, "")
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    operator: String,
    next: Option<String>,
}

/// `POST /console/login`: a session cookie, or the form again with why.
pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    if !same_origin(&headers) {
        return ConsoleError::Forbidden(
            "this login did not come from this host's login page".into(),
        )
        .into_response();
    }
    match console::login(&state.app, &form.token, &form.operator).await {
        Ok(new) => {
            let max_age = state.app.settings.console.session_ttl_ms / 1000;
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={max_age}",
                new.id
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(LoginError::Internal(error)) => ConsoleError::from(error).into_response(),
        Err(error) => {
            let status = match error {
                LoginError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                LoginError::BadName => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::UNAUTHORIZED,
            };
            (
                status,
                login_page(&next, Some(&error.to_string()), form.operator.trim()),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /console/logout`: the session ends on every instance.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    console: Console,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    check_post(&headers, &console, &form.csrf, false)?;
    console::logout(&state.app, &console.id).await?;
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "orderd_console=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0",
        ),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn a_post_must_come_from_this_host() {
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("referer", "http://127.0.0.1:8080/console/orders")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080.evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080")])));
    }

    #[test]
    fn after_login_only_console_pages() {
        assert_eq!(safe_next(Some("/console/health")), "/console/health");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console/orders");
        assert_eq!(
            safe_next(Some("//evil.example/console/")),
            "/console/orders"
        );
        assert_eq!(safe_next(None), "/console/orders");
    }
}
