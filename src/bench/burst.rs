//! Many drill reminders due at once, written straight into the database: the load of the burst
//! benchmark (`cargo bench --bench burst`) and of the crash tests.

use chrono::Duration;
use serde_json::json;

use super::rows::{self, Val};
use crate::db::Db;
use crate::time::Timestamp;
use crate::with_db;

/// Reminders per planted drill (each with its own offset, so each has its own message key).
const PER_DRILL: usize = 1000;

/// Plants `count` pending reminders in `region`, all due at `due`, on drills starting a day
/// later (so every reminder is sent). Returns the ids of the planted drills.
pub async fn plant_reminders(
    db: &Db,
    region: &str,
    count: usize,
    due: Timestamp,
    now: Timestamp,
) -> anyhow::Result<Vec<i64>> {
    let starts = Timestamp(due.0 + Duration::days(1));
    let drills = count.div_ceil(PER_DRILL);
    let tag = format!("压力测试-{}", crate::auth::tokens::random_hex16());
    let rows: Vec<Vec<Val>> = (0..drills)
        .map(|i| {
            vec![
                Val::S(format!("{tag}-{i}")),
                Val::S("tabletop".into()),
                Val::S("single".into()),
                Val::S("test".into()),
                Val::S("检验提醒送达".into()),
                Val::S(region.to_string()),
                Val::S("应急办".into()),
                Val::J(json!(["应急办"])),
                Val::S("指挥中心".into()),
                Val::T(starts),
                Val::T(Timestamp(starts.0 + Duration::hours(2))),
                Val::S("planned".into()),
                Val::J(json!([60])),
                Val::I(0),
                Val::T(now),
                Val::T(now),
            ]
        })
        .collect();
    let mut tx = db.begin().await?;
    rows::insert(
        &mut tx,
        "drills",
        &[
            "title",
            "form",
            "scope",
            "purpose",
            "objective",
            "region_code",
            "organiser_unit",
            "participating_units",
            "place_name",
            "starts_at",
            "ends_at",
            "status",
            "reminder_offsets",
            "sequence",
            "created_at",
            "updated_at",
        ],
        &rows,
    )
    .await?;
    tx.commit().await?;
    let pattern = format!("{tag}-%");
    let ids: Vec<i64> = with_db!(db, |p| sqlx::query_scalar("SELECT id FROM drills WHERE title LIKE $1 ORDER BY id")
        .bind(&pattern)
        .fetch_all(p)
        .await)?;
    let mut reminders = Vec::with_capacity(count);
    for n in 0..count {
        reminders.push(vec![
            Val::I(ids[n / PER_DRILL]),
            Val::T(starts),
            Val::I((n % PER_DRILL) as i64 + 1),
            Val::T(due),
            Val::S("pending".into()),
            Val::B(false),
        ]);
    }
    let mut tx = db.begin().await?;
    rows::insert(
        &mut tx,
        "drill_reminders",
        &["drill_id", "starts_at", "offset_minutes", "due_at", "status", "late"],
        &reminders,
    )
    .await?;
    tx.commit().await?;
    Ok(ids)
}
