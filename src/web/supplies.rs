//! 物资: depots of the jurisdiction, a depot's stock by batch with its levels and ledger, and
//! receiving, issuing and adjusting stock as a form. All through the API's handlers
//! ([`super::api`]): the ledger's rules (never negative, audited) are the API's.

use askama::Template;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect};
use crate::error::ApiError;
use crate::supplies::{AdjustReason, MovementKind, ReserveMode};

#[derive(Deserialize)]
struct Depot {
    id: i64,
    code: String,
    name: String,
    region_code: String,
    kind_label: String,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct DepotPage {
    items: Vec<Depot>,
    total: i64,
}

#[derive(Template)]
#[template(path = "web/supplies.html")]
struct ListPage {
    layout: Layout,
    items: Vec<Depot>,
    total: i64,
}

/// `GET /supplies`.
pub async fn list(req: Req) -> WebResult {
    let s = req.session().await?;
    let page: DepotPage = api::decode(api::get(&req, &s, "/api/v1/depots", "limit=1000").await?)?;
    let p =
        ListPage { layout: Layout::new(&req, &s, "物资", "supplies").await?, items: page.items, total: page.total };
    Ok(html(p.render()?))
}

#[derive(Deserialize)]
struct Batch {
    item_code: String,
    batch: String,
    quantity: i64,
    expiry_date: Option<String>,
    reserve_mode: String,
}

#[derive(Deserialize)]
struct StockLevel {
    item_code: String,
    quantity: i64,
    minimum: Option<i64>,
    below_minimum: bool,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(flatten)]
    depot: Depot,
    batches: Vec<Batch>,
    levels: Vec<StockLevel>,
}

#[derive(Deserialize)]
struct Movement {
    item_code: String,
    batch: String,
    kind: String,
    quantity: i64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    destination: Option<String>,
    at: String,
    actor: String,
}

#[derive(Deserialize)]
struct MovementPage {
    items: Vec<Movement>,
}

#[derive(Template)]
#[template(path = "web/depot.html")]
struct DetailPage {
    layout: Layout,
    d: Detail,
    ledger: Vec<Movement>,
    items: Vec<crate::supplies::catalogue::Item>,
    kinds: Vec<(&'static str, &'static str)>,
    reasons: Vec<(&'static str, &'static str)>,
    modes: Vec<(&'static str, &'static str)>,
    names: std::collections::HashMap<String, (String, String)>,
    done: bool,
    can_write: bool,
    form: FormState,
}

impl DetailPage {
    fn item(&self, code: &str) -> String {
        self.names.get(code).map_or_else(|| code.to_string(), |(n, _)| n.clone())
    }
    fn unit(&self, code: &str) -> String {
        self.names.get(code).map_or_else(String::new, |(_, u)| u.clone())
    }
    fn kind_label(&self, code: &str) -> &'static str {
        MovementKind::parse(code).map_or("其他", MovementKind::label)
    }
    fn mode_label(&self, code: &str) -> &'static str {
        ReserveMode::parse(code).map_or("其他", ReserveMode::label)
    }
    fn when(&self, at: &str) -> String {
        crate::time::parse_instant(at).map_or_else(|_| at.to_string(), |t| t.local_display())
    }
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

/// `GET /supplies/{id}`.
pub async fn detail(req: Req) -> WebResult {
    let s = req.session().await?;
    render_detail(&req, &s, FormState::none()).await
}

async fn render_detail(req: &Req, s: &crate::auth::login::Session, form: FormState) -> WebResult {
    let id = super::path_id(&req.path)?;
    let d: Detail = api::decode(api::get(req, s, &format!("/api/v1/depots/{id}"), "").await?)?;
    let ledger: MovementPage =
        api::decode(api::get(req, s, &format!("/api/v1/depots/{id}/movements"), "limit=50").await?)?;
    let items = crate::supplies::catalogue::all(&req.app.db).await?;
    let names = items.iter().map(|i| (i.code.clone(), (i.name.clone(), i.unit.clone()))).collect();
    let done: Done = req.query().unwrap_or_default();
    let page = DetailPage {
        layout: Layout::new(req, s, d.depot.name.clone(), "supplies").await?,
        d,
        ledger: ledger.items,
        items,
        kinds: [MovementKind::Receive, MovementKind::Issue, MovementKind::Adjust]
            .iter()
            .map(|k| (k.code(), k.label()))
            .collect(),
        reasons: AdjustReason::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        modes: ReserveMode::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        names,
        done: done.done.is_some(),
        can_write: s.principal.role.allows(crate::auth::Perm::Write),
        form,
    };
    Ok(html(page.render()?))
}

#[derive(Deserialize)]
struct MovementForm {
    csrf: String,
    kind: String,
    item_code: String,
    quantity: String,
    #[serde(default)]
    batch: String,
    #[serde(default)]
    expiry_date: String,
    #[serde(default)]
    reserve_mode: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    destination: String,
    #[serde(default)]
    note: String,
}

/// `POST /supplies/{id}/movements`: one stock movement through the API's handler. Only the
/// fields a person filled in are sent, so the API's validation names what is missing.
pub async fn movement(req: Req) -> WebResult {
    let id = super::path_id(&req.path)?;
    let f: MovementForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let result = record(&req, &s, id, &f).await.map(|()| redirect(&format!("/supplies/{id}?done=1")));
    form::again("movement-form", &req.body, result, |form| render_detail(&req, &s, form)).await
}

async fn record(req: &Req, s: &crate::auth::login::Session, id: i64, f: &MovementForm) -> Result<(), WebError> {
    let quantity: i64 =
        f.quantity.trim().parse().map_err(|_| {
            WebError::Api(ApiError::invalid("quantity", format!("数量“{}”不是整数", f.quantity.trim())))
        })?;
    let mut body = Map::new();
    body.insert("kind".into(), json!(f.kind));
    body.insert("item_code".into(), json!(f.item_code));
    body.insert("quantity".into(), json!(quantity));
    for (k, v) in [
        ("batch", &f.batch),
        ("expiry_date", &f.expiry_date),
        ("reserve_mode", &f.reserve_mode),
        ("reason", &f.reason),
        ("destination", &f.destination),
        ("note", &f.note),
    ] {
        let relevant = match k {
            "expiry_date" | "reserve_mode" => f.kind == "receive",
            "reason" => f.kind == "adjust",
            "destination" => f.kind == "issue",
            _ => true,
        };
        if relevant && !v.trim().is_empty() {
            body.insert(k.into(), json!(v.trim()));
        }
    }
    api::post(req, s, &format!("/api/v1/depots/{id}/movements"), &Value::Object(body)).await?;
    Ok(())
}
