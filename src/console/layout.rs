//! The frame of every console page (document, header, navigation, language switch, sign-out)
//! and small pieces the pages share: notices, labelled form fields, the pager.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

use super::i18n::{Lang, T};

/// The pages of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Reconciliation,
    Cases,
    Notifications,
    Parties,
    Audit,
}

impl Nav {
    const ALL: [Nav; 6] = [
        Nav::Overview,
        Nav::Reconciliation,
        Nav::Cases,
        Nav::Notifications,
        Nav::Parties,
        Nav::Audit,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Nav::Overview => "/console",
            Nav::Reconciliation => "/console/reconciliation",
            Nav::Cases => "/console/cases",
            Nav::Notifications => "/console/notifications",
            Nav::Parties => "/console/parties",
            Nav::Audit => "/console/audit",
        }
    }

    fn label(self) -> T {
        match self {
            Nav::Overview => T::NavOverview,
            Nav::Reconciliation => T::NavReconciliation,
            Nav::Cases => T::NavCases,
            Nav::Notifications => T::NavNotifications,
            Nav::Parties => T::NavParties,
            Nav::Audit => T::NavAudit,
        }
    }
}

/// Who a page is drawn for, as the layout shows it: the signed-in person's language, name, role
/// and form token, and the page's address (for the language switch). The session's `Console`
/// is one.
pub trait Viewer {
    fn lang(&self) -> Lang;
    /// The key's label and id, or the id alone.
    fn who(&self) -> String;
    /// The role's name in the viewer's language.
    fn role_name(&self) -> &'static str;
    /// The address of the page being drawn.
    fn location(&self) -> &str;
    /// The session's CSRF token.
    fn csrf(&self) -> &str;
}

/// The link to the same page in the other language.
pub fn language_link(lang: Lang, back: &str) -> Markup {
    let other = lang.other();
    let href = format!(
        "/console/lang?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("to", other.code())
            .append_pair("back", back)
            .finish()
    );
    html! {
        a id="lang-switch" href=(href) lang=(other.code()) hreflang=(other.code()) {
            (T::SwitchLanguage.get(lang))
        }
    }
}

/// The full page `body` under the heading `title`, for the signed-in `console`.
pub fn page(console: &impl Viewer, nav: Nav, title: T, body: Markup) -> HttpResponse {
    page_with_status(console, nav, title, StatusCode::OK, body)
}

/// [`page`] with another status, e.g. 422 for a form shown again with its errors.
pub fn page_with_status(
    console: &impl Viewer,
    nav: Nav,
    title: T,
    status: StatusCode,
    body: Markup,
) -> HttpResponse {
    let lang = console.lang();
    let who = console.who();
    let header = html! {
        nav class="site-nav" aria-label=(T::MainNavigation.get(lang)) {
            ul {
                @for item in Nav::ALL {
                    li {
                        @if item == nav {
                            a href=(item.path()) aria-current="page" { (item.label().get(lang)) }
                        } @else {
                            a href=(item.path()) { (item.label().get(lang)) }
                        }
                    }
                }
            }
        }
        div class="who" {
            span {
                (T::SignedInAs.get(lang)) ": " strong { (who) } " · " (console.role_name())
            }
            span class="lang-switch" { (language_link(lang, console.location())) }
            form id="sign-out" method="post" action="/console/sign-out" class="inline" {
                (csrf_field(console))
                button type="submit" class="link-button" { (T::SignOut.get(lang)) }
            }
        }
    };
    respond(status, document(lang, title, Some(header), body))
}

/// A page outside a session (the sign-in form, error pages): the same frame without the
/// navigation.
pub fn bare_page(lang: Lang, status: StatusCode, title: T, body: Markup) -> HttpResponse {
    respond(status, document(lang, title, None, body))
}

fn document(lang: Lang, title: T, header: Option<Markup>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title.get(lang)) " — " (T::AppName.get(lang)) }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body {
                a class="skip-link" href="#main" { (T::SkipToContent.get(lang)) }
                header class="site-header" {
                    div class="brand" { (T::AppName.get(lang)) }
                    @if let Some(header) = header {
                        (header)
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title.get(lang)) }
                    (body)
                }
                footer class="site-footer" {
                    p { (T::VietnamTime.get(lang)) }
                }
            }
        }
    }
}

/// An HTML answer that no cache keeps (the pages show payment data), that no other site may
/// frame, and whose page may load only the console's own stylesheet and script.
fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(markup.into_string())
}

/// The hidden field with the session's CSRF token, which every form must carry.
pub fn csrf_field(console: &impl Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(console.csrf()); }
}

/// What a notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Success,
    Error,
    Info,
}

/// A message box. Errors are announced at once by screen readers (`role="alert"`), the others
/// politely (`role="status"`).
pub fn notice(kind: NoticeKind, text: &str) -> Markup {
    let (class, role) = match kind {
        NoticeKind::Success => ("notice notice-success", "status"),
        NoticeKind::Error => ("notice notice-error", "alert"),
        NoticeKind::Info => ("notice notice-info", "status"),
    };
    html! { div class=(class) role=(role) { p { (text) } } }
}

/// A labelled text input (`kind` is the input type: `text`, `date`, `search`, ...).
pub fn input(name: &str, label: &str, kind: &str, value: &str) -> Markup {
    let id = format!("f-{name}");
    html! {
        div class="field" {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value);
        }
    }
}

/// A labelled select of `options` (value, text); the first option is "any" (an empty value).
pub fn select(
    lang: Lang,
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: &str,
) -> Markup {
    let id = format!("f-{name}");
    html! {
        div class="field" {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                option value="" selected[selected.is_empty()] { (T::Any.get(lang)) }
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
        }
    }
}

/// A query string (`?a=1&b=2`) of the non-empty `pairs`, encoded; empty when all are empty.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in pairs {
        if !value.is_empty() {
            serializer.append_pair(key, value);
            any = true;
        }
    }
    if any {
        format!("?{}", serializer.finish())
    } else {
        String::new()
    }
}

/// The pager under a list: back to the first page when not on it, and on to the next page when
/// there is one (`next` is its full link).
pub fn pager(lang: Lang, first: Option<&str>, next: Option<&str>) -> Markup {
    html! {
        @if first.is_some() || next.is_some() {
            nav class="pager" aria-label=(T::Pages.get(lang)) {
                @if let Some(first) = first {
                    a href=(first) { "« " (T::FirstPage.get(lang)) }
                }
                @if let Some(next) = next {
                    a href=(next) rel="next" { (T::NextPage.get(lang)) " »" }
                }
            }
        }
    }
}
