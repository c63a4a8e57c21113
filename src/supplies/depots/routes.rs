//! Depot endpoints.

use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::*;
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::personal::{Cipher, Field};
use crate::regions::check_lon_lat;
use crate::supplies::{Batch, opt_text, text, to_audit};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// The depot named in the path.
pub(crate) const ON_DEPOT: &[Region] = &[Region::Path("id", &access::DEPOT)];

/// Routes of depots.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/depots",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "辖区内的储备库（点），按编码排序；管理员电话已掩码。",
                query: Some(schema::<DepotQuery>()),
                response: Some(schema::<Page<Depot>>()),
                ..Doc::new("应急物资", "列出储备库")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/depots",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "登记储备库（点）。需要修改权限，限辖区内；电话加密保存。",
                request: Some(schema::<NewDepot>()),
                response: Some(schema::<Depot>()),
                status: 201,
                ..Doc::new("应急物资", "登记储备库")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Write, &[Region::Body("region_code")]),
        route(
            Method::GET,
            "/api/v1/depots/{id}",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "储备库及其库存批次与各物资库存水平。`reveal=true` 显示完整电话（仅管理员，记入审计）。",
                query: Some(schema::<ShowQuery>()),
                response: Some(schema::<DepotDetail>()),
                ..Doc::new("应急物资", "查看储备库")
            },
            |c| Box::pin(show(c)),
        )
        .guard(Perm::Read, ON_DEPOT),
        route(
            Method::PATCH,
            "/api/v1/depots/{id}",
            Access::Token,
            BodyKind::Json,
            Doc {
                request: Some(schema::<DepotPatch>()),
                response: Some(schema::<Depot>()),
                ..Doc::new("应急物资", "修改储备库")
            },
            |c| Box::pin(patch(c)),
        )
        .guard(Perm::Write, ON_DEPOT),
        route(
            Method::PUT,
            "/api/v1/depots/{id}/minimums",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "设置某物资在本库的最低储备量（0 表示取消）。",
                request: Some(schema::<Minimum>()),
                response: Some(schema::<DepotDetail>()),
                ..Doc::new("应急物资", "设置最低储备量")
            },
            |c| Box::pin(set_minimum(c)),
        )
        .guard(Perm::Write, ON_DEPOT),
    ]
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: DepotQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = narrowed_bounds(p, q.region.as_ref())?;
    let kind = q.kind.map(|k| k.as_str());
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR kind = $3)";
    let sql = format!("{SELECT} {WHERE} ORDER BY code LIMIT $4 OFFSET $5");
    let count = format!("SELECT COUNT(*) FROM depots {WHERE}");
    let (rows, total) = with_db!(&c.app.db, |db| {
        let rows = sqlx::query_as::<_, DepotRow>(&sql)
            .bind(&lo)
            .bind(&hi)
            .bind(kind)
            .bind(limit)
            .bind(offset)
            .fetch_all(db)
            .await?;
        let total: i64 = sqlx::query_scalar(&count).bind(&lo).bind(&hi).bind(kind).fetch_one(db).await?;
        Ok::<_, sqlx::Error>((rows, total))
    })?;
    let items = rows.iter().map(|r| r.view(&c.app.cipher, false)).collect();
    json(&Page { items, total })
}

fn parse_new(b: NewDepot, cipher: &Cipher, now: Timestamp) -> ApiResult<DepotRow> {
    check_lon_lat(b.lon, b.lat).map_err(|m| ApiError::invalid("lon", m))?;
    let phone = match b.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => {
            Some(cipher.encrypt(Field::DEPOT_PHONE, &check_phone(p).map_err(|m| ApiError::invalid("phone", m))?))
        }
        None => None,
    };
    Ok(DepotRow {
        id: 0,
        code: text("code", &b.code, 40)?,
        name: text("name", &b.name, 100)?,
        region_code: b.region_code.as_str().to_string(),
        kind: b.kind,
        lon: b.lon,
        lat: b.lat,
        address: opt_text("address", b.address.as_deref(), 200)?,
        manager: opt_text("manager", b.manager.as_deref(), 50)?,
        phone_enc: phone,
        notes: opt_text("notes", b.notes.as_deref(), 1000)?,
        created_at: now,
        updated_at: now,
    })
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let b: NewDepot = c.json()?;
    let mut d = parse_new(b, &c.app.cipher, c.now())?;
    let mut tx = c.app.db.begin().await?;
    if crate::regions::store::get_tx(&mut tx, &d.region_code).await?.is_none() {
        return Err(ApiError::invalid("region_code", format!("区划 {} 不存在", d.region_code)));
    }
    d.id = match insert(&mut tx, &d).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => return Err(ApiError::Conflict(format!("储备库编码 {} 已存在", d.code))),
        Err(e) => return Err(e.into()),
    };
    let view = d.view(&c.app.cipher, false);
    let change = Change {
        action: "create",
        entity_type: "depot",
        entity_id: &d.id.to_string(),
        region_code: Some(&d.region_code),
        before: None,
        after: Some(to_audit(&view)?),
    };
    audit::record(&mut tx, &c.actor()?, d.created_at, change).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &view)
}

async fn detail(c: &Ctx, d: &DepotRow, reveal: bool) -> ApiResult<DepotDetail> {
    let sql = format!(
        "SELECT {} FROM stock_batches WHERE depot_id = $1 AND quantity > 0 ORDER BY item_code, expiry_date IS NULL, expiry_date, batch",
        crate::supplies::BATCH_COLUMNS
    );
    let (batches, mut levels) = with_db!(&c.app.db, |p| {
        let batches = sqlx::query_as::<_, Batch>(&sql).bind(d.id).fetch_all(p).await?;
        let levels = sqlx::query_as::<_, Level>(
            "SELECT item_code, CAST(SUM(quantity) AS BIGINT) AS quantity, MAX(minimum) AS minimum FROM (
                 SELECT item_code, quantity, NULL AS minimum FROM stock_batches WHERE depot_id = $1
                 UNION ALL SELECT item_code, 0, minimum FROM stock_minimums WHERE depot_id = $1
             ) t GROUP BY item_code ORDER BY item_code",
        )
        .bind(d.id)
        .fetch_all(p)
        .await?;
        Ok::<_, sqlx::Error>((batches, levels))
    })?;
    for l in &mut levels {
        l.below_minimum = l.minimum.is_some_and(|m| l.quantity < m);
    }
    Ok(DepotDetail { depot: d.view(&c.app.cipher, reveal), batches, levels })
}

async fn show(c: Ctx) -> ApiResult<Response> {
    let q: ShowQuery = c.query()?;
    let d = load(&c, c.id_param("id")?).await?;
    if q.reveal {
        c.require(Perm::RevealPersonal)?;
        let mut tx = c.app.db.begin().await?;
        audit_reveal(&mut tx, &c, &d).await?;
        tx.commit().await?;
    }
    json(&detail(&c, &d, q.reveal).await?)
}

async fn patch(c: Ctx) -> ApiResult<Response> {
    let b: DepotPatch = c.json()?;
    let before = load(&c, c.id_param("id")?).await?;
    let mut d = before.clone();
    if let Some(n) = b.name {
        d.name = text("name", &n, 100)?;
    }
    if let Some(k) = b.kind {
        d.kind = k;
    }
    match (b.lon, b.lat) {
        (None, None) => {}
        (Some(lon), Some(lat)) => {
            check_lon_lat(lon, lat).map_err(|m| ApiError::invalid("lon", m))?;
            (d.lon, d.lat) = (lon, lat);
        }
        _ => return Err(ApiError::invalid("lon", "经度和纬度须同时给出")),
    }
    if let Some(a) = b.address {
        d.address = opt_text("address", Some(&a), 200)?;
    }
    if let Some(m) = b.manager {
        d.manager = opt_text("manager", Some(&m), 50)?;
    }
    if let Some(p) = b.phone {
        d.phone_enc = match p.trim() {
            "" => None,
            p => Some(
                c.app.cipher.encrypt(Field::DEPOT_PHONE, &check_phone(p).map_err(|m| ApiError::invalid("phone", m))?),
            ),
        };
    }
    if let Some(n) = b.notes {
        d.notes = opt_text("notes", Some(&n), 1000)?;
    }
    d.updated_at = c.now();
    let mut tx = c.app.db.begin().await?;
    update(&mut tx, &d).await?;
    let (bv, av) = (before.view(&c.app.cipher, false), d.view(&c.app.cipher, false));
    let change = Change {
        action: "update",
        entity_type: "depot",
        entity_id: &d.id.to_string(),
        region_code: Some(&d.region_code),
        before: Some(to_audit(&bv)?),
        after: Some(to_audit(&av)?),
    };
    audit::record(&mut tx, &c.actor()?, d.updated_at, change).await?;
    tx.commit().await?;
    json(&av)
}

async fn set_minimum(c: Ctx) -> ApiResult<Response> {
    let b: Minimum = c.json()?;
    let d = load(&c, c.id_param("id")?).await?;
    if b.minimum < 0 {
        return Err(ApiError::invalid("minimum", "最低储备量不能为负数"));
    }
    crate::supplies::catalogue::need(&c.app.db, "item_code", &b.item_code).await?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    with_tx!(&mut tx, |conn| {
        sqlx::query("DELETE FROM stock_minimums WHERE depot_id = $1 AND item_code = $2")
            .bind(d.id)
            .bind(b.item_code.as_str())
            .execute(&mut *conn)
            .await?;
        if b.minimum > 0 {
            sqlx::query(
                "INSERT INTO stock_minimums (depot_id, item_code, minimum, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(d.id)
            .bind(b.item_code.as_str())
            .bind(b.minimum)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok::<_, sqlx::Error>(())
    })?;
    let change = Change {
        action: "update",
        entity_type: "depot_minimum",
        entity_id: &format!("{}:{}", d.id, b.item_code),
        region_code: Some(&d.region_code),
        before: None,
        after: Some(serde_json::json!({ "item_code": b.item_code, "minimum": b.minimum })),
    };
    audit::record(&mut tx, &c.actor()?, now, change).await?;
    tx.commit().await?;
    json(&detail(&c, &d, false).await?)
}
