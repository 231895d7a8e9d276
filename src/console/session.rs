//! Console sessions: signing in with an API key, the session cookie, the [`Console`] extractor
//! every page takes, protection against cross-site requests, and the console's error pages.
//!
//! A session is a row of `console_sessions`; the browser holds a random token whose SHA-256
//! names the row, so every replica serves every session and a copy of the table opens none.
//! Each request joins the session to its API key, so revoking the key ends the session at once.
//! Every form carries the session's CSRF token (the cookie is also `SameSite=Strict`); the
//! sign-in form, which comes before any session, carries a token that a short-lived cookie
//! repeats.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::i18n::{Lang, T};
use super::layout;
use crate::audit::{self, Action, Actor};
use crate::auth::extract::RequestId;
use crate::auth::{keys, Principal, Role};
use crate::http::error::ApiError;
use crate::http::{AppState, State};

/// The session cookie: a random token, HttpOnly, only ever sent to `/console`.
pub const SESSION_COOKIE: &str = "paygate_console";
/// The sign-in form's cookie: the token the form repeats (login CSRF).
pub const PRE_COOKIE: &str = "paygate_console_pre";
/// The language cookie (`vi` or `en`).
pub const LANG_COOKIE: &str = "lang";
/// Every console cookie is scoped to the console's paths.
const COOKIE_PATH: &str = "/console";

/// How long a session lasts after sign-in, whatever happens in it: a working day.
pub const SESSION_HOURS: i64 = 8;
/// How long a session's row is kept after it ended or expired, for investigations that start
/// from an audit entry naming it; after that the hourly purge deletes it.
pub const ENDED_SESSION_RETENTION_DAYS: i32 = 90;
/// How long a sign-in form stays usable.
const PRE_COOKIE_MAX_AGE_S: i64 = 3_600;
/// How long the language choice is remembered.
const LANG_COOKIE_MAX_AGE_S: i64 = 365 * 24 * 3_600;
/// Random bytes in a session token and in a CSRF token.
const TOKEN_BYTES: usize = 32;
/// The longest key worth looking up; real keys are 47 characters.
const MAX_KEY_CHARS: usize = 128;
/// The longest cookie value worth reading; tokens are 43 characters.
const MAX_TOKEN_CHARS: usize = 64;

/// The signed-in person of a console request.
#[derive(Debug, Clone)]
pub struct Console {
    /// The key signed in with: id, role and label; `request_id` is this request's.
    pub principal: Principal,
    /// The language of the pages, from the `lang` cookie.
    pub lang: Lang,
    /// This session's CSRF token, which every form carries.
    pub csrf: String,
    pub session_id: i64,
    /// The path and query of this request, where the language switch comes back to.
    pub location: String,
}

impl Console {
    /// The key's identity, reached through the console, for the audit trail.
    pub fn actor(&self) -> Actor {
        Actor::console(&self.principal)
    }

    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    /// A 403 page unless the signed-in key is an admin's.
    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden)
        }
    }

    /// A 403 page unless `token` is this session's CSRF token. The comparison takes the same
    /// time wherever the texts differ.
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        if same_token(token, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }

    /// The label `key` in the session's language.
    pub fn t(&self, key: T) -> &'static str {
        key.get(self.lang)
    }

    /// The signed-in role's name in the session's language.
    pub fn role_name(&self) -> &'static str {
        self.t(match self.principal.role {
            Role::Admin => T::RoleAdmin,
            Role::Auditor => T::RoleAuditor,
            Role::Agency => T::RoleAgency,
        })
    }
}

/// Why a console request is not answered with its page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or it ended or expired: a page request is sent to the sign-in form, a form
    /// submission is refused (403).
    #[error("not signed in to the console")]
    SignIn,
    /// The signed-in role may not do this.
    #[error("this key's role may not do this")]
    Forbidden,
    /// A form without this session's CSRF token.
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// A refusal of the domain, shown with the API's status, code and detail.
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// A domain refusal as a console error: `.map_err(api)?`.
pub fn api(err: impl Into<ApiError>) -> ConsoleError {
    ConsoleError::Api(err.into())
}

impl layout::Viewer for Console {
    fn lang(&self) -> Lang {
        self.lang
    }

    fn who(&self) -> String {
        match &self.principal.label {
            Some(label) => format!("{label} ({})", self.principal.key_id),
            None => self.principal.key_id.clone(),
        }
    }

    fn role_name(&self) -> &'static str {
        Console::role_name(self)
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl From<crate::db::DbError> for ConsoleError {
    fn from(err: crate::db::DbError) -> Self {
        ConsoleError::Api(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for ConsoleError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        ConsoleError::Api(err.into())
    }
}

impl From<tokio_postgres::Error> for ConsoleError {
    fn from(err: tokio_postgres::Error) -> Self {
        ConsoleError::Api(err.into())
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn => StatusCode::SEE_OTHER,
            ConsoleError::Forbidden | ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::Api(err) => err.status_code(),
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page in Vietnamese; [`error_pages`] renders it again in the request's language.
    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "console: internal error")
            }
            ConsoleError::Api(ApiError::Internal(cause)) => {
                tracing::error!(error = format!("{cause:#}"), "console: internal error")
            }
            ConsoleError::Api(ApiError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, "console: unavailable")
            }
            _ => {}
        }
        error_page(self, Lang::Vi, true)
    }
}

/// The page of `err` in `lang`; a missing session on a page request (`is_read`) redirects to
/// the sign-in form, on a form submission it is a 403 page.
fn error_page(err: &ConsoleError, lang: Lang, is_read: bool) -> HttpResponse {
    let (status, title, text, code): (StatusCode, T, String, Option<String>) = match err {
        ConsoleError::SignIn if is_read => {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/console/sign-in"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        ConsoleError::SignIn => (
            StatusCode::FORBIDDEN,
            T::ErrorCsrfTitle,
            T::ErrorCsrf.get(lang).to_owned(),
            None,
        ),
        ConsoleError::Forbidden => (
            StatusCode::FORBIDDEN,
            T::ErrorForbiddenTitle,
            T::ErrorForbidden.get(lang).to_owned(),
            None,
        ),
        ConsoleError::Csrf => (
            StatusCode::FORBIDDEN,
            T::ErrorCsrfTitle,
            T::ErrorCsrf.get(lang).to_owned(),
            None,
        ),
        ConsoleError::NotFound => (
            StatusCode::NOT_FOUND,
            T::ErrorNotFoundTitle,
            T::ErrorNotFound.get(lang).to_owned(),
            None,
        ),
        ConsoleError::Api(api_err) => {
            let problem = api_err.problem();
            let title = match api_err.status_code().as_u16() {
                500.. => T::ErrorInternalTitle,
                404 => T::ErrorNotFoundTitle,
                _ => T::ErrorRefusedTitle,
            };
            (
                api_err.status_code(),
                title,
                problem.detail,
                Some(problem.code.as_str().to_owned()),
            )
        }
        ConsoleError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            T::ErrorInternalTitle,
            T::ErrorInternal.get(lang).to_owned(),
            None,
        ),
    };
    let signed_out = matches!(err, ConsoleError::SignIn);
    let body = html! {
        div class="notice notice-error" role="alert" {
            p { (text) }
            @if let Some(code) = code {
                p { (T::ErrorCodeLabel.get(lang)) ": " code { (code) } }
            }
        }
        p {
            @if signed_out {
                a href="/console/sign-in" { (T::SignInAgain.get(lang)) }
            } @else {
                a href="/console" { (T::BackToOverview.get(lang)) }
            }
        }
    };
    layout::bare_page(lang, status, title, body)
}

/// Renders a [`ConsoleError`] answer again in the language of the request, and turns a missing
/// session into a redirect for page requests only. Registered on the whole app; other answers
/// pass untouched.
pub fn error_pages<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let call = service.call(req);
    async move {
        let response = call.await?;
        let page = response
            .response()
            .error()
            .and_then(|err| err.as_error::<ConsoleError>())
            .map(|err| {
                let req = response.request();
                error_page(err, lang_of(req), is_read(req.method()))
            });
        Ok(match page {
            Some(page) => response.into_response(page).map_into_right_body(),
            None => response.map_into_left_body(),
        })
    }
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The value of the cookie `name`, read from every `Cookie` header.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// The page language of a request: its `lang` cookie, Vietnamese by default.
pub fn lang_of(req: &HttpRequest) -> Lang {
    cookie(req, LANG_COOKIE)
        .and_then(|code| code.parse().ok())
        .unwrap_or_default()
}

/// A `Set-Cookie` value for the console's paths. `Secure` is set when the request reached the
/// ingress over https (which the `X-Forwarded-Proto` it sets tells).
fn set_cookie(req: &HttpRequest, name: &str, value: &str, max_age_s: i64) -> String {
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path={COOKIE_PATH}; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// A random token: 32 bytes in unpadded base64url.
fn random_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Compares two tokens in time that depends only on their lengths.
fn same_token(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    if given.len() != expected.len() || expected.is_empty() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The live session named by `token`: not ended, not expired, its key not revoked and an
/// admin's or auditor's.
async fn session_for(
    state: &AppState,
    token: &str,
) -> Result<Option<(i64, String, Principal)>, ConsoleError> {
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT s.id, s.csrf, k.id, k.role, k.label
             FROM console_sessions s JOIN api_keys k ON k.id = s.key_id
             WHERE s.token_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > now()
               AND k.revoked_at IS NULL AND k.role IN ('admin', 'auditor')",
            &[&token_hash(token)],
        )
        .await?;
    Ok(row.map(|row| {
        let principal = Principal {
            key_id: keys::key_id(row.get(2)),
            role: Role::parse(row.get(3)).expect("the role column is constrained"),
            agency: None,
            label: row.get(4),
            request_id: None,
        };
        (row.get(0), row.get(1), principal)
    }))
}

impl FromRequest for Console {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Console, ConsoleError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let token = cookie(req, SESSION_COOKIE).filter(|token| token.len() <= MAX_TOKEN_CHARS);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|RequestId(id)| id.clone());
        let lang = lang_of(req);
        // A form's answer (a page shown again with its errors) is at an address that only takes
        // the form, so the language switch goes back to the overview from there.
        let location = match (is_read(req.method()), req.query_string()) {
            (false, _) => "/console".to_owned(),
            (true, "") => req.path().to_owned(),
            (true, query) => format!("{}?{query}", req.path()),
        };
        Box::pin(async move {
            let token = token.ok_or(ConsoleError::SignIn)?;
            let state = state.expect("AppState is registered on the app");
            let (session_id, csrf, principal) = session_for(&state, &token)
                .await?
                .ok_or(ConsoleError::SignIn)?;
            Ok(Console {
                principal: Principal {
                    request_id,
                    ..principal
                },
                lang,
                csrf,
                session_id,
                location,
            })
        })
    }
}

/// The session of the request, when it has a live one; for the pages that also work signed
/// out (the sign-in form sends a signed-in person on to the overview).
async fn current(req: &HttpRequest) -> Option<Console> {
    Console::extract(req).await.ok()
}

/// The sign-in and sign-out routes and the language switch.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/sign-in", web::get().to(sign_in_form))
        .route("/console/sign-in", web::post().to(sign_in))
        .route("/console/sign-out", web::post().to(sign_out))
        .route("/console/lang", web::get().to(switch_language));
}

/// The sign-in form, with `message` above it.
fn sign_in_page(
    req: &HttpRequest,
    status: StatusCode,
    message: Option<(layout::NoticeKind, T)>,
) -> HttpResponse {
    let lang = lang_of(req);
    // A fresh form token for every form shown: the cookie and the hidden field must match.
    let pre = random_token();
    let body = html! {
        @if let Some((kind, text)) = message {
            (layout::notice(kind, text.get(lang)))
        }
        p { (T::SignInIntro.get(lang)) }
        form id="sign-in" class="sign-in" method="post" action="/console/sign-in" {
            input type="hidden" name="csrf" value=(pre);
            div class="field" {
                label for="key" { (T::ApiKey.get(lang)) }
                input id="key" name="key" type="password" required autocomplete="off"
                    autofocus aria-describedby="key-hint" maxlength=(MAX_KEY_CHARS);
                p id="key-hint" class="hint" { (T::ApiKeyHint.get(lang)) }
            }
            button type="submit" { (T::SignInButton.get(lang)) }
        }
        p class="lang-switch" {
            (layout::language_link(lang, "/console/sign-in"))
        }
    };
    let mut response = layout::bare_page(lang, status, T::SignInTitle, body);
    let cookie = set_cookie(req, PRE_COOKIE, &pre, PRE_COOKIE_MAX_AGE_S);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie.parse().expect("a cookie is a valid header value"),
    );
    response
}

async fn sign_in_form(req: HttpRequest) -> HttpResponse {
    if current(&req).await.is_some() {
        return see_other("/console");
    }
    sign_in_page(&req, StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
}

async fn sign_in(
    req: HttpRequest,
    state: State,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    let pre = cookie(&req, PRE_COOKIE).unwrap_or_default();
    if !same_token(&form.csrf, &pre) {
        return Ok(sign_in_page(
            &req,
            StatusCode::FORBIDDEN,
            Some((layout::NoticeKind::Error, T::SignInExpiredForm)),
        ));
    }
    let key = form.key.trim();
    let wrong = || {
        sign_in_page(
            &req,
            StatusCode::UNAUTHORIZED,
            Some((layout::NoticeKind::Error, T::SignInWrongKey)),
        )
    };
    if key.is_empty() || key.len() > MAX_KEY_CHARS {
        return Ok(wrong());
    }
    let mut client = state.pool.get().await?;
    // An agency key of a disabled agency is refused like any agency key.
    let principal = match crate::auth::authenticate(&client, key).await {
        Ok(Some(principal)) if matches!(principal.role, Role::Admin | Role::Auditor) => principal,
        Ok(_) | Err(crate::auth::AuthError::AgencyDisabled(_)) => return Ok(wrong()),
        Err(crate::auth::AuthError::Db(err)) => return Err(err.into()),
    };
    let principal = Principal {
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|RequestId(id)| id.clone()),
        ..principal
    };
    let key_row = keys::parse_key_id(&principal.key_id).expect("key ids are canonical");
    let token = random_token();
    let csrf = random_token();
    let transaction = client.transaction().await?;
    let session_id: i64 = transaction
        .query_one(
            "INSERT INTO console_sessions (token_sha256, key_id, csrf, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(hours => $4))
             RETURNING id",
            &[
                &token_hash(&token),
                &key_row,
                &csrf,
                &i32::try_from(SESSION_HOURS).expect("a few hours"),
            ],
        )
        .await?
        .get(0);
    audit::record(
        &transaction,
        &Actor::console(&principal),
        Action::ConsoleSignIn,
        &format!("api_key:{}", principal.key_id),
        serde_json::json!({ "session": session_id }),
    )
    .await?;
    transaction.commit().await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .append_header((
            header::SET_COOKIE,
            set_cookie(&req, SESSION_COOKIE, &token, SESSION_HOURS * 3_600),
        ))
        .append_header((header::SET_COOKIE, set_cookie(&req, PRE_COOKIE, "", 0)))
        .finish())
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

async fn sign_out(
    req: HttpRequest,
    console: Console,
    state: State,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    let ended = transaction
        .execute(
            "UPDATE console_sessions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL",
            &[&console.session_id],
        )
        .await?;
    // Two sign-outs of one session racing: the second finds it ended and records nothing.
    if ended == 1 {
        audit::record(
            &transaction,
            &console.actor(),
            Action::ConsoleSignOut,
            &format!("api_key:{}", console.principal.key_id),
            serde_json::json!({ "session": console.session_id }),
        )
        .await?;
    }
    transaction.commit().await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/sign-in"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .append_header((header::SET_COOKIE, set_cookie(&req, SESSION_COOKIE, "", 0)))
        .finish())
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    #[serde(default)]
    to: String,
    #[serde(default)]
    back: String,
}

/// True for a path of the console itself: where the language switch may send the browser back
/// to (anything else could make it an open redirect).
pub fn is_console_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/console") else {
        return false;
    };
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        && !rest.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

async fn switch_language(req: HttpRequest, query: web::Query<LangQuery>) -> HttpResponse {
    let back = if is_console_path(&query.back) {
        query.back.as_str()
    } else {
        "/console"
    };
    let mut response = see_other(back);
    if let Ok(lang) = query.to.parse::<Lang>() {
        let cookie = set_cookie(&req, LANG_COOKIE, lang.code(), LANG_COOKIE_MAX_AGE_S);
        response.headers_mut().append(
            header::SET_COOKIE,
            cookie.parse().expect("a cookie is a valid header value"),
        );
    }
    response
}

/// A 303 to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Deletes the rows of sessions that ended or expired more than
/// [`ENDED_SESSION_RETENTION_DAYS`] ago; returns how many. Run by the hourly purge; a live
/// session is never touched.
pub async fn purge_old_sessions(pool: &deadpool_postgres::Pool) -> Result<u64, crate::db::DbError> {
    let client = pool.get().await?;
    let deleted = client
        .execute(
            "DELETE FROM console_sessions
             WHERE coalesce(least(ended_at, expires_at), expires_at)
                   < now() - make_interval(days => $1)",
            &[&ENDED_SESSION_RETENTION_DAYS],
        )
        .await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical_and_not_empty() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
        assert!(!same_token("", ""));
    }

    #[test]
    fn random_tokens_are_43_url_safe_characters() {
        let token = random_token();
        assert_eq!(token.len(), 43);
        assert_ne!(token, random_token());
    }

    #[test]
    fn the_language_switch_only_returns_to_console_paths() {
        for good in ["/console", "/console/audit?action=x", "/console?x=1"] {
            assert!(is_console_path(good), "{good}");
        }
        for bad in [
            "",
            "https://evil.example/console",
            "//evil.example",
            "/consolex",
            "/console//evil.example",
            "/console/\\evil",
            "/v1/payments",
            "/console/a\r\nSet-Cookie: x=1",
        ] {
            assert!(!is_console_path(bad), "{bad}");
        }
    }
}
