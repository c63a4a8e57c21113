//! The page frame every console page shares (title, navigation, who is logged in, the logout
//! form with its CSRF token) and the error page.

use askama::Template;

use super::{Req, WebError, assets};
use crate::auth::login::Session;

/// One entry of the main navigation.
pub struct NavItem {
    /// Link.
    pub href: &'static str,
    /// Chinese label.
    pub label: &'static str,
    /// Whether it is the page being shown.
    pub current: bool,
}

/// The main navigation: `(key, href, label)`.
const NAV: &[(&str, &str, &str)] = &[
    ("today", "/today", "今日"),
    ("map", "/map", "地图"),
    ("plans", "/plans", "预案"),
    ("supplies", "/supplies", "物资"),
    ("teams", "/teams", "队伍"),
    ("drills", "/drills", "演练"),
    ("readiness", "/readiness", "检查"),
    ("events", "/events", "事件"),
    ("imports", "/imports", "导入导出"),
];

/// Navigation entries for administrators only, after the others.
const ADMIN_NAV: &[(&str, &str, &str)] = &[("users", "/users", "用户")];

/// What the frame shows.
pub struct Layout {
    /// Page title (also the `<h1>`).
    pub title: String,
    /// Key of the current navigation entry.
    pub active: &'static str,
    /// User name.
    pub user: String,
    /// Role (Chinese).
    pub role: &'static str,
    /// Jurisdiction's name.
    pub region: String,
    /// The session's CSRF token, for every form on the page.
    pub csrf: String,
    /// Whether the user manages users (administrators): the 用户 entry is shown.
    pub manages_users: bool,
}

impl Layout {
    /// The frame for a page of session `s`.
    pub async fn new(
        req: &Req,
        s: &Session,
        title: impl Into<String>,
        active: &'static str,
    ) -> Result<Layout, WebError> {
        let p = &s.principal;
        let region = crate::regions::store::get(&req.app.db, p.scope.code.as_str())
            .await?
            .map(|r| r.name)
            .unwrap_or_else(|| p.scope.code.to_string());
        Ok(Layout {
            title: title.into(),
            active,
            user: p.name.clone(),
            role: p.role.label(),
            region,
            csrf: s.csrf.clone(),
            manages_users: p.role.allows(crate::auth::Perm::ManageUsers),
        })
    }

    /// URL of an embedded asset.
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    /// The navigation with the current entry marked.
    pub fn nav(&self) -> Vec<NavItem> {
        let admin: &[(&str, &str, &str)] = if self.manages_users { ADMIN_NAV } else { &[] };
        NAV.iter().chain(admin).map(|(k, href, label)| NavItem { href, label, current: *k == self.active }).collect()
    }
}

/// The error page: what went wrong, in Chinese, with the request id.
#[derive(Template)]
#[template(path = "web/error.html")]
pub struct ErrorPage {
    /// Kind of problem.
    pub title: String,
    /// What went wrong.
    pub detail: String,
    /// Each error (field or line) on its own line.
    pub errors: Vec<String>,
    /// Request id.
    pub request_id: String,
}

impl ErrorPage {
    /// URL of an embedded asset.
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }
}
