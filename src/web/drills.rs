//! 演练: the month's drills on a calendar (and as a list for phones), read through the API's
//! drill list ([`super::api`]).

use askama::Template;
use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use serde::Deserialize;

use super::layout::Layout;
use super::{Req, WebResult, api, html, urlencode};
use crate::time::{LOCAL_TZ, Timestamp};

#[derive(Deserialize)]
struct Drill {
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

/// One day cell of the calendar.
struct Day {
    date: NaiveDate,
    in_month: bool,
    drills: Vec<(String, String)>,
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
    let page: DrillPage = api::decode(api::get(&req, &s, "/api/v1/drills", &query).await?)?;
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
                .map(|x| (x.title.clone(), x.status_label.clone()))
                .collect();
            week.push(Day { date: d, in_month: d.month() == first.month(), drills });
            d += Duration::days(1);
        }
        weeks.push(week);
    }
    let p = Page {
        layout: Layout::new(&req, &s, "演练", "drills").await?,
        month_label: first.format("%Y 年 %m 月").to_string(),
        prev: prev_first.format("%Y-%m").to_string(),
        next: next_first.format("%Y-%m").to_string(),
        weeks,
        list: page.items,
    };
    Ok(html(p.render()?))
}
