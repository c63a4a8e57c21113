//! 演练: the month's drills on a calendar (and as a list for phones), read through the API's
//! drill list ([`super::api`]); scheduling a drill from the page, and subscribing to the
//! iCalendar feed with a QR code. A drill's own page and its steps are [`super::drill`].

use askama::Template;
use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use serde::Deserialize;
use serde_json::{Value, json};

use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect, urlencode};
use crate::auth::login::Session;
use crate::drills::{Form, Purpose, Scope};
use crate::error::ApiError;
use crate::time::{LOCAL_TZ, Timestamp};

#[derive(Deserialize)]
struct Drill {
    id: i64,
    title: String,
    starts_at: String,
    place_name: String,
    status_label: String,
    region_code: String,
}

#[derive(Deserialize)]
struct DrillPage {
    items: Vec<Drill>,
}

/// One day cell of the calendar: its drills as (id, title, status).
struct Day {
    date: NaiveDate,
    in_month: bool,
    drills: Vec<(i64, String, String)>,
}

/// A calendar subscription just issued: the address (shown once) and its QR code.
struct Feed {
    url: String,
    qr: String,
}

#[derive(Template)]
#[template(path = "web/drills.html")]
struct Page {
    layout: Layout,
    month_label: String,
    prev: String,
    next: String,
    weeks: Vec<Vec<Day>>,
    list: Vec<Drill>,
    can_write: bool,
    regions: Vec<api::RegionChoice>,
    home: String,
    forms: Vec<(&'static str, &'static str)>,
    scopes: Vec<(&'static str, &'static str)>,
    purposes: Vec<(&'static str, &'static str)>,
    default_start: String,
    default_end: String,
    feed: Option<Feed>,
    form: FormState,
}

impl Page {
    fn when(&self, at: &str) -> String {
        crate::time::parse_instant(at).map_or_else(|_| at.to_string(), |t| t.local_display())
    }
}

#[derive(Deserialize, Default)]
struct MonthQuery {
    month: Option<String>,
}

fn local_midnight(d: NaiveDate) -> Timestamp {
    LOCAL_TZ
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|t| Timestamp(t.with_timezone(&chrono::Utc)))
        .unwrap_or(Timestamp(chrono::Utc::now()))
}

/// `GET /drills?month=YYYY-MM` (default: this month, Asia/Shanghai).
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    render(&req, &s, FormState::none(), None).await
}

async fn render(req: &Req, s: &Session, form: FormState, feed: Option<Feed>) -> WebResult {
    let q: MonthQuery = req.query().unwrap_or_default();
    let today = req.now().0.with_timezone(&LOCAL_TZ).date_naive();
    let first = q
        .month
        .as_deref()
        .and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok())
        .unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let next_first = (first + Duration::days(32)).with_day(1).unwrap_or(first);
    let prev_first = (first - Duration::days(1)).with_day(1).unwrap_or(first);
    let (from, to) = (local_midnight(first), local_midnight(next_first));
    let query = format!("from={}&to={}&limit=1000", urlencode(&from.in_tz(LOCAL_TZ)), urlencode(&to.in_tz(LOCAL_TZ)));
    let page: DrillPage = api::decode(api::get(req, s, "/api/v1/drills", &query).await?)?;
    let start = first - Duration::days(first.weekday().num_days_from_monday() as i64);
    let mut weeks = Vec::new();
    let mut d = start;
    while d < next_first {
        let mut week = Vec::new();
        for _ in 0..7 {
            let drills = page
                .items
                .iter()
                .filter(|x| {
                    crate::time::parse_instant(&x.starts_at)
                        .is_ok_and(|t| t.0.with_timezone(&LOCAL_TZ).date_naive() == d)
                })
                .map(|x| (x.id, x.title.clone(), x.status_label.clone()))
                .collect();
            week.push(Day { date: d, in_month: d.month() == first.month(), drills });
            d += Duration::days(1);
        }
        weeks.push(week);
    }
    let can_write = s.principal.role.allows(crate::auth::Perm::Write);
    let regions = if can_write { api::regions(req, s).await? } else { vec![] };
    // A new drill defaults to a week from today, 09:00–12:00 local time.
    let day = (today + Duration::days(7)).format("%Y-%m-%d");
    let p = Page {
        layout: Layout::new(req, s, "演练", "drills").await?,
        month_label: first.format("%Y 年 %m 月").to_string(),
        prev: prev_first.format("%Y-%m").to_string(),
        next: next_first.format("%Y-%m").to_string(),
        weeks,
        list: page.items,
        can_write,
        regions,
        home: s.principal.scope.code.to_string(),
        forms: Form::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        scopes: Scope::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        purposes: Purpose::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        default_start: format!("{day}T09:00"),
        default_end: format!("{day}T12:00"),
        feed,
        form,
    };
    Ok(html(p.render()?))
}

/// A `datetime-local` value (`2026-11-28T09:00`, Asia/Shanghai) as the API's instant, or a
/// field error naming `field`.
pub fn local_instant(field: &str, label: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    let t = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            ApiError::invalid(
                field,
                if v.is_empty() {
                    format!("请填写{label}")
                } else {
                    format!("{label}“{v}”不是有效的日期和时间")
                },
            )
        })?;
    LOCAL_TZ
        .from_local_datetime(&t)
        .single()
        .map(|t| t.to_rfc3339())
        .ok_or_else(|| ApiError::invalid(field, format!("{label}无效")))
}

/// A start and an end from `datetime-local` fields `starts_at` and `ends_at` (with their
/// labels), both checked before anything is sent so that both errors show at once.
pub fn times(start: (&str, &str), end: (&str, &str)) -> Result<(String, String), WebError> {
    match (local_instant("starts_at", start.0, start.1), local_instant("ends_at", end.0, end.1)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => {
            let errors = [a.err(), b.err()]
                .into_iter()
                .flatten()
                .flat_map(|e| match e {
                    ApiError::Validation { errors, .. } => errors,
                    _ => vec![],
                })
                .collect();
            Err(WebError::Api(ApiError::invalid_many("时间有误", errors)))
        }
    }
}

#[derive(Deserialize)]
struct NewDrillForm {
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    form: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    objective: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    organiser_unit: String,
    #[serde(default)]
    place_name: String,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
}

/// `POST /drills`: schedules a drill through the API's handler, then shows its page.
pub async fn create(req: Req) -> WebResult {
    let f: NewDrillForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let result = schedule(&req, &s, &f).await.map(|id| redirect(&format!("/drills/{id}?done=created")));
    form::again("drill-form", &req.body, result, |form| render(&req, &s, form, None)).await
}

async fn schedule(req: &Req, s: &Session, f: &NewDrillForm) -> Result<i64, WebError> {
    let (starts, ends) = times(("开始时间", &f.starts_at), ("结束时间", &f.ends_at))?;
    let body = json!({
        "title": f.title.trim(), "form": f.form, "scope": f.scope, "purpose": f.purpose,
        "objective": f.objective.trim(), "region": f.region, "organiser_unit": f.organiser_unit.trim(),
        "place_name": f.place_name.trim(), "starts_at": starts, "ends_at": ends,
    });
    let d: Value = api::post(req, s, "/api/v1/drills", &body).await?;
    d.get("id").and_then(Value::as_i64).ok_or_else(|| WebError::Api(ApiError::Internal(anyhow::anyhow!("no drill id"))))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

#[derive(Deserialize)]
struct Issued {
    path: String,
}

/// `POST /drills/feed`: issues the user's calendar feed token (through the API) and shows the
/// address once, as a link and as a QR code for a phone's calendar.
pub async fn subscribe(req: Req) -> WebResult {
    let f: CsrfForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let issued: Issued = api::decode(api::post(&req, &s, "/api/v1/feed-tokens", &json!({})).await?)?;
    let url = format!("{}{}", origin(&req), issued.path);
    let qr = super::qr::svg(&url, "演练日历订阅地址二维码").ok_or_else(|| {
        WebError::Api(ApiError::Internal(anyhow::anyhow!("subscription address too long for a QR code")))
    })?;
    render(&req, &s, FormState::none(), Some(Feed { url, qr })).await
}

/// The address people reach this service at, from the request (`Host`, and
/// `X-Forwarded-Proto` behind a TLS proxy).
fn origin(req: &Req) -> String {
    let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let host = h("host");
    let host = if host.is_empty() { "127.0.0.1:8080".to_string() } else { host };
    let scheme = if h("x-forwarded-proto") == "https" { "https" } else { "http" };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_time_from_the_form_is_shanghai_time() {
        assert_eq!(local_instant("starts_at", "开始时间", "2026-11-28T09:00").unwrap(), "2026-11-28T09:00:00+08:00");
        let e = local_instant("starts_at", "开始时间", "").unwrap_err();
        assert_eq!(e.problem(None).errors[0].message, "请填写开始时间");
        assert!(local_instant("ends_at", "结束时间", "明天").is_err());
    }
}
