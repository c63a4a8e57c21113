//! 队伍: registered social rescue teams, a team's filing and members (ID numbers and phones
//! masked; showing them in full is a deliberate form post that the API audits per member), the
//! filing decision and adding a member. All through the API's handlers ([`super::api`]).

use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect, urlencode};
use crate::error::ApiError;
use crate::forces::FilingStatus;
use crate::vocab::Specialty;

#[derive(Deserialize)]
struct Grade {
    specialty: String,
    grade: Option<u8>,
}

#[derive(Deserialize)]
struct Team {
    code: String,
    name: String,
    org_type_label: String,
    region_code: String,
    specialties: Vec<Grade>,
    filing_status: String,
    filing_status_label: String,
    #[serde(default)]
    status_reason: Option<String>,
}

#[derive(Deserialize)]
struct TeamPage {
    items: Vec<Team>,
    total: i64,
}

fn specialty_label(code: &str) -> &'static str {
    Specialty::parse(code).map_or("其他", Specialty::label)
}

#[derive(Template)]
#[template(path = "web/teams.html")]
struct ListPage {
    layout: Layout,
    items: Vec<Team>,
    total: i64,
    status: String,
    statuses: Vec<(&'static str, &'static str)>,
}

impl ListPage {
    fn specialty(&self, code: &str) -> &'static str {
        specialty_label(code)
    }
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    filing_status: String,
}

/// `GET /teams`.
pub async fn list(req: Req) -> WebResult {
    let s = req.session().await?;
    let q: ListQuery = req.query().unwrap_or_default();
    let mut query = "limit=1000".to_string();
    if FilingStatus::parse(&q.filing_status).is_some() {
        query.push_str(&format!("&filing_status={}", q.filing_status));
    }
    let page: TeamPage = api::decode(api::get(&req, &s, "/api/v1/teams", &query).await?)?;
    let p = ListPage {
        layout: Layout::new(&req, &s, "队伍", "teams").await?,
        items: page.items,
        total: page.total,
        status: q.filing_status,
        statuses: FilingStatus::ALL.iter().map(|k| (k.code(), k.label())).collect(),
    };
    Ok(html(p.render()?))
}

#[derive(Deserialize)]
struct Member {
    name: String,
    id_number: Option<String>,
    phone: Option<String>,
    skills: Vec<String>,
    insured_today: bool,
    status_label: String,
}

#[derive(Deserialize)]
struct MemberPage {
    items: Vec<Member>,
}

#[derive(Template)]
#[template(path = "web/team.html")]
struct DetailPage {
    layout: Layout,
    t: Team,
    members: Vec<Member>,
    revealed: bool,
    done: Option<&'static str>,
    can_decide: bool,
    can_write: bool,
    can_reveal: bool,
    specialties: Vec<(&'static str, &'static str)>,
    form: FormState,
}

impl DetailPage {
    fn specialty(&self, code: &str) -> &'static str {
        specialty_label(code)
    }
}

fn team_code(path: &str) -> Result<String, WebError> {
    path.split('/')
        .nth(2)
        .filter(|s| !s.is_empty())
        .map(|s| {
            form_urlencoded::parse(format!("c={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
        })
        .ok_or_else(|| WebError::Api(ApiError::NotFound(format!("没有这个页面：{path}"))))
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn render_as(req: &Req, s: &crate::auth::login::Session, reveal: bool, form: FormState) -> WebResult {
    let code = team_code(&req.path)?;
    let enc = urlencode(&code);
    let t: Team = api::decode(api::get(req, s, &format!("/api/v1/teams/{enc}"), "").await?)?;
    let q = if reveal { "reveal=true" } else { "" };
    let m: MemberPage = api::decode(api::get(req, s, &format!("/api/v1/teams/{enc}/members"), q).await?)?;
    let done: Done = req.query().unwrap_or_default();
    let role = s.principal.role;
    let page = DetailPage {
        layout: Layout::new(req, s, t.name.clone(), "teams").await?,
        t,
        members: m.items,
        revealed: reveal,
        done: match done.done.as_deref() {
            Some("approve") => Some("已批准备案"),
            Some("reject") => Some("已退回备案"),
            Some("member") => Some("已添加队员"),
            _ => None,
        },
        can_decide: role.allows(crate::auth::Perm::Decide),
        can_write: role.allows(crate::auth::Perm::Write),
        can_reveal: role.allows(crate::auth::Perm::RevealPersonal),
        specialties: Specialty::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        form,
    };
    Ok(html(page.render()?))
}

/// `GET /teams/{code}`.
pub async fn detail(req: Req) -> WebResult {
    let s = req.session().await?;
    render_as(&req, &s, false, FormState::none()).await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /teams/{code}/reveal`: the same page with ID numbers and phones in full (admins; the
/// API audits each member shown).
pub async fn reveal(req: Req) -> WebResult {
    let f: CsrfForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let mut req = req;
    req.path = req.path.trim_end_matches("/reveal").to_string();
    render_as(&req, &s, true, FormState::none()).await
}

/// `POST /teams/{code}/approve|reject`: the filing decision through the API's handler.
pub async fn decide(req: Req) -> WebResult {
    let f: CsrfForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let code = team_code(&req.path)?;
    let step = if req.path.ends_with("/approve") { "approve" } else { "reject" };
    let body = if f.reason.trim().is_empty() { json!({}) } else { json!({ "reason": f.reason.trim() }) };
    let result = api::post(&req, &s, &format!("/api/v1/teams/{}/{step}", urlencode(&code)), &body)
        .await
        .map(|_| redirect(&format!("/teams/{}?done={step}", urlencode(&code))));
    let req = on_team_page(req);
    form::again(&format!("team-{step}"), &req.body, result, |form| render_as(&req, &s, false, form)).await
}

/// `POST /teams/{code}/members`: adds a member (skills ticked in the form).
pub async fn add_member(req: Req) -> WebResult {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let s = req.post_session(&field("csrf")).await?;
    let code = team_code(&req.path)?;
    let skills: Vec<String> = pairs.iter().filter(|(n, _)| n == "skills").map(|(_, v)| v.clone()).collect();
    let mut body = json!({ "name": field("name"), "id_number": field("id_number"), "skills": skills });
    if !field("phone").is_empty() {
        body["phone"] = json!(field("phone"));
    }
    let result = api::post(&req, &s, &format!("/api/v1/teams/{}/members", urlencode(&code)), &body)
        .await
        .map(|_| redirect(&format!("/teams/{}?done=member", urlencode(&code))));
    let req = on_team_page(req);
    form::again("member-form", &req.body, result, |form| render_as(&req, &s, false, form)).await
}

/// The request as if for the team's page (`/teams/{code}`), to show a refused form again.
fn on_team_page(mut req: Req) -> Req {
    let code_end = req.path.rfind('/').filter(|i| *i > "/teams/".len()).unwrap_or(req.path.len());
    req.path.truncate(code_end);
    req.query = String::new();
    req
}
