//! 事件上报: the form that opens a new event (the first report) through `POST /api/v1/events`
//! as the logged-in user. The place is a region of the user's jurisdiction and a point: picked on
//! the map (with JavaScript), typed as coordinates, or, when both are left empty, the region's own
//! point. `?drill={id}` opens the form in drill mode (【演练】) linked to that drill.

use askama::Template;
use chrono::Timelike;
use serde::Deserialize;
use serde_json::{Value, json};

use super::drills::local_instant;
use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect};
use crate::auth::Perm;
use crate::auth::login::Session;
use crate::error::{ApiError, FieldError};
use crate::events::Severity;
use crate::time::LOCAL_TZ;
use crate::vocab::Hazard;

/// A region to choose, with its point when known.
#[derive(Deserialize)]
struct Region {
    code: String,
    name: String,
    lon: Option<f64>,
    lat: Option<f64>,
}

impl Region {
    fn point(&self) -> Option<(f64, f64)> {
        Some((self.lon?, self.lat?))
    }
}

/// A drill an exercise may rehearse.
#[derive(Deserialize)]
struct Drill {
    id: i64,
    title: String,
    status: String,
    status_label: String,
}

#[derive(Template)]
#[template(path = "web/event_new.html")]
struct Page {
    layout: Layout,
    regions: Vec<Region>,
    home: String,
    hazards: Vec<(&'static str, &'static str)>,
    severities: Vec<(&'static str, &'static str)>,
    drills: Vec<Drill>,
    /// The drill preset by `?drill=` (drill mode).
    preset: Option<i64>,
    default_known: String,
    center: (f64, f64),
    tile_url: String,
    tile_attribution: String,
    form: FormState,
}

impl Page {
    /// Whether the form is in drill mode (preset, or sent with the box ticked).
    fn drill_mode(&self) -> bool {
        self.form.chosen("event-form", "exercise", "on", self.preset.is_some())
    }
    fn drill_chosen(&self, id: &i64) -> bool {
        self.form.chosen("event-form", "drill_id", &id.to_string(), self.preset == Some(*id))
    }
}

#[derive(Deserialize, Default)]
struct NewQuery {
    drill: Option<i64>,
}

/// `GET /events/new`.
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    render(&req, &s, FormState::none()).await
}

async fn render(req: &Req, s: &Session, form: FormState) -> WebResult {
    s.principal.require(Perm::Write)?;
    let q: NewQuery = req.query().unwrap_or_default();
    #[derive(Deserialize)]
    struct Regions {
        items: Vec<Region>,
    }
    #[derive(Deserialize)]
    struct Drills {
        items: Vec<Drill>,
    }
    let regions: Regions = api::decode(api::get(req, s, "/api/v1/regions", "limit=1000").await?)?;
    let drills: Drills = api::decode(api::get(req, s, "/api/v1/drills", "limit=1000").await?)?;
    let drills: Vec<Drill> = drills.items.into_iter().filter(|d| d.status != "cancelled").collect();
    let preset = q.drill.filter(|d| drills.iter().any(|x| x.id == *d));
    let home = s.principal.scope.code.to_string();
    let center = regions
        .items
        .iter()
        .find(|r| r.code == home)
        .and_then(|r| Some((r.lon?, r.lat?)))
        .unwrap_or(crate::regions::BANNER_SEAT);
    let now = req.now().0.with_timezone(&LOCAL_TZ);
    let now = now.with_second(0).unwrap_or(now);
    let title = if preset.is_some() { "【演练】事件上报" } else { "事件上报" };
    let p = Page {
        layout: Layout::new(req, s, title, "events").await?,
        regions: regions.items,
        home,
        hazards: Hazard::ALL.iter().map(|h| (h.code(), h.label())).collect(),
        severities: Severity::ALL.iter().map(|v| (v.code(), v.label())).collect(),
        drills,
        preset,
        default_known: now.format("%Y-%m-%dT%H:%M").to_string(),
        center,
        tile_url: req.app.config.tile_url.clone().unwrap_or_default(),
        tile_attribution: req.app.config.tile_attribution.clone().unwrap_or_default(),
        form,
    };
    Ok(html(p.render()?))
}

/// `POST /events/new`: opens the event through the API and shows its board.
pub async fn create(req: Req) -> WebResult {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let s = req.post_session(&field("csrf")).await?;
    let result = async {
        let body = body(&req, &s, &field).await?;
        let b: Value = api::post(&req, &s, "/api/v1/events", &body).await?;
        let id = b["event"]["id"]
            .as_i64()
            .ok_or_else(|| WebError::Api(ApiError::Internal(anyhow::anyhow!("no event id"))))?;
        Ok(redirect(&format!("/events/{id}?done=created")))
    }
    .await;
    form::again("event-form", &req.body, result, |form| render(&req, &s, form)).await
}

/// The API body from the form; what the page itself must read (times, numbers, the point) is
/// checked here first, every error at once, each naming its field.
async fn body(req: &Req, s: &Session, field: &impl Fn(&str) -> String) -> Result<Value, WebError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut keep = |r: Result<Value, ApiError>| match r {
        Ok(v) => v,
        Err(ApiError::Validation { errors: e, .. }) => {
            errors.extend(e);
            Value::Null
        }
        Err(_) => Value::Null,
    };
    let occurred = keep(local_instant("occurred_at", "发生时间", &field("occurred_at")).map(Value::from));
    let known = keep(local_instant("known_at", "获知时间", &field("known_at")).map(Value::from));
    let mut figures = serde_json::Map::new();
    for (name, label) in FIGURES {
        let v = keep(count(name, label, &field(name)));
        if !v.is_null() {
            figures.insert(name.to_string(), v);
        }
    }
    let (lon, lat) = (field("lon"), field("lat"));
    let region = field("region_code");
    let point = if lon.is_empty() && lat.is_empty() {
        match region_point(req, s, &region).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(ApiError::invalid("lon", "请在地图上点选事发地点或填写经纬度（所选区划没有登记坐标）")),
            Err(WebError::Api(e @ ApiError::Validation { .. })) => Err(e),
            Err(e) => return Err(e),
        }
    } else {
        match (coordinate("lon", "经度", &lon), coordinate("lat", "纬度", &lat)) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (a, b) => Err(ApiError::invalid_many(
                "坐标有误",
                [a.err(), b.err()]
                    .into_iter()
                    .flatten()
                    .flat_map(|e| match e {
                        ApiError::Validation { errors, .. } => errors,
                        _ => vec![],
                    })
                    .collect(),
            )),
        }
    };
    let (lon, lat) = keep(point.map(|(a, b)| json!([a, b]))).as_array().map_or((Value::Null, Value::Null), |p| {
        (p.first().cloned().unwrap_or_default(), p.get(1).cloned().unwrap_or_default())
    });
    if !errors.is_empty() {
        return Err(WebError::Api(ApiError::invalid_many("表单有误", errors)));
    }
    let exercise = field("exercise") == "on";
    let drill = field("drill_id");
    let drill_id = if drill.is_empty() {
        Value::Null
    } else {
        drill.parse::<i64>().map(Value::from).map_err(|_| ApiError::invalid("drill_id", "请选择演练"))?
    };
    let mut b = json!({
        "hazard": field("hazard"), "title": field("title"), "occurred_at": occurred, "known_at": known,
        "region_code": region, "place": field("place"), "lon": lon, "lat": lat,
        "description": field("description"), "source": field("source"), "reporter": field("reporter"),
        "severity": field("severity"), "exercise": exercise, "drill_id": drill_id,
    });
    if let Some(o) = b.as_object_mut() {
        o.extend(figures);
    }
    Ok(b)
}

/// Casualty and damage figures of the form: field and label.
const FIGURES: [(&str, &str); 7] = [
    ("dead", "死亡"),
    ("injured", "受伤"),
    ("missing", "失踪"),
    ("trapped", "被困"),
    ("affected_people", "受灾人口"),
    ("affected_households", "受灾户数"),
    ("affected_livestock", "受灾牲畜"),
];

/// An optional count: empty is none, else a whole number (the API checks the range).
fn count(field: &str, label: &str, v: &str) -> Result<Value, ApiError> {
    if v.is_empty() {
        return Ok(Value::Null);
    }
    v.parse::<i64>().map(Value::from).map_err(|_| ApiError::invalid(field, format!("{label}“{v}”应为整数")))
}

fn coordinate(field: &str, label: &str, v: &str) -> Result<f64, ApiError> {
    if v.is_empty() {
        return Err(ApiError::invalid(field, format!("请填写{label}")));
    }
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| ApiError::invalid(field, format!("{label}“{v}”不是数字")))
}

/// The region's own point, read through the API as the user (None when it has none). A region
/// outside the user's jurisdiction is the API's 403, as the event itself would be.
async fn region_point(req: &Req, s: &Session, code: &str) -> Result<Option<(f64, f64)>, WebError> {
    let unknown = || WebError::Api(ApiError::invalid("region_code", format!("区划“{code}”不存在")));
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    match api::get(req, s, &format!("/api/v1/regions/{code}"), "").await {
        Ok(r) => Ok(r["lon"].as_f64().zip(r["lat"].as_f64())),
        Err(WebError::Api(ApiError::NotFound(_))) => Err(unknown()),
        Err(e) => Err(e),
    }
}
