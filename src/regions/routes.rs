//! Region endpoints.

use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use warp::http::Method;
use warp::reply::Response;

use super::import;
use super::{Level, Region, RegionCode, check_lon_lat, store};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region as On};
use crate::http::ctx::{Page, json, json_bytes, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};

/// Filters of `GET /api/v1/regions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionQuery {
    /// Only direct children of this region.
    pub parent: Option<RegionCode>,
    /// Only this level.
    pub level: Option<Level>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Body of `PATCH /api/v1/regions/{code}`: any subset of the fields. `null` clears the location
/// or boundary.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionPatch {
    /// Longitude and latitude must be given together.
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(range(min = -180, max = 180))]
    pub lon: Option<Option<f64>>,
    /// Latitude (WGS84).
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(range(min = -90, max = 90))]
    pub lat: Option<Option<f64>>,
    /// GeoJSON Polygon or MultiPolygon geometry (WGS84).
    #[serde(default, deserialize_with = "double_option")]
    pub boundary: Option<Option<Value>>,
}

fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The region named in the path.
const ON_REGION: &[On] = &[On::Path("code", &access::REGION)];

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/regions",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "辖区内的行政区划（本级及下级），按代码排序。",
                query: Some(schema::<RegionQuery>()),
                response: Some(schema::<Page<Region>>()),
                ..Doc::new("行政区划", "列出行政区划")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, &[On::Query("parent")]),
        route(
            Method::GET,
            "/api/v1/regions/{code}",
            Access::Token,
            BodyKind::None,
            Doc { response: Some(schema::<Region>()), ..Doc::new("行政区划", "查看行政区划") },
            |c| Box::pin(get(c)),
        )
        .guard(Perm::Read, ON_REGION),
        route(
            Method::PATCH,
            "/api/v1/regions/{code}",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "设置区划的位置（经纬度）与边界（GeoJSON 多边形）。需要修改权限（管理员、规划员、操作员），限辖区内。",
                request: Some(schema::<RegionPatch>()),
                response: Some(schema::<Region>()),
                ..Doc::new("行政区划", "修改区划位置与边界")
            },
            |c| Box::pin(patch(c)),
        )
        .guard(Perm::Write, ON_REGION),
        route(
            Method::POST,
            "/api/v1/import/regions",
            Access::Token,
            BodyKind::Csv,
            Doc {
                description: "导入官方区划表（CSV，表头 code,name,level,parent_code[,lon,lat]，或中文表头 区划代码,名称,级别,上级代码[,经度,纬度]）。管理员；全有或全无；重复导入同一文件不产生变化；每个错误标明行号。",
                query: Some(schema::<crate::imports::ImportQuery>()),
                response: Some(schema::<crate::imports::Outcome>()),
                ..Doc::new("行政区划", "导入行政区划")
            },
            |c| Box::pin(import_csv(c)),
        )
        .guard(Perm::ImportRegions, &[On::Rows]),
    ]
}

/// What one page of `GET /api/v1/regions` depends on: the caller's jurisdiction (its code
/// bounds), the filters and the page.
pub type PageKey = (String, String, Option<RegionCode>, Option<Level>, i64, i64);

/// Served from the instance's page cache while no region has changed (see `crate::freshness`):
/// a full page costs its rows, a count over the jurisdiction and their JSON otherwise.
async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: RegionQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let fresh = c.fresh().await;
    let key: PageKey = (lo.clone(), hi.clone(), q.parent.clone(), q.level, limit, offset);
    if let Some(g) = fresh
        && let Some(body) = c.app.region_pages.get(g, &key)
    {
        return Ok(json_bytes(body));
    }
    let parent = q.parent.as_ref().map(RegionCode::as_str);
    let (items, total) = store::list(&c.app.db, (&lo, &hi), parent, q.level, limit, offset).await?;
    let body = Bytes::from(serde_json::to_vec(&Page { items, total }).map_err(anyhow::Error::from)?);
    if let Some(g) = fresh {
        c.app.region_pages.put(g, key, body.clone());
    }
    Ok(json_bytes(body))
}

/// Loads the region named in the path (the route's guard has checked access to it).
async fn load(c: &Ctx) -> ApiResult<Region> {
    let code = RegionCode::parse(c.param("code")).map_err(ApiError::NotFound)?;
    store::get(&c.app.db, code.as_str()).await?.ok_or_else(|| ApiError::NotFound(format!("区划 {code} 不存在")))
}

async fn get(c: Ctx) -> ApiResult<Response> {
    json(&load(&c).await?)
}

async fn patch(c: Ctx) -> ApiResult<Response> {
    let body: RegionPatch = c.json()?;
    let before = load(&c).await?;
    let mut after = before.clone();
    match (body.lon, body.lat) {
        (None, None) => {}
        (Some(Some(lon)), Some(Some(lat))) => {
            check_lon_lat(lon, lat).map_err(|m| ApiError::invalid("lon", m))?;
            (after.lon, after.lat) = (Some(lon), Some(lat));
        }
        (Some(None), Some(None)) => (after.lon, after.lat) = (None, None),
        _ => return Err(ApiError::invalid("lon", "经度和纬度须同时给出（或同时为 null）")),
    }
    if let Some(boundary) = body.boundary {
        if let Some(b) = &boundary {
            check_polygon(b).map_err(|m| ApiError::invalid("boundary", m))?;
        }
        after.boundary = boundary.map(sqlx::types::Json);
    }
    after.updated_at = c.now();
    let mut tx = c.app.db.begin().await?;
    store::update(&mut tx, &after).await?;
    audit::record(
        &mut tx,
        &c.actor()?,
        after.updated_at,
        Change {
            action: "update",
            entity_type: "region",
            entity_id: &after.code,
            region_code: Some(&after.code),
            before: Some(serde_json::to_value(&before).map_err(anyhow::Error::from)?),
            after: Some(serde_json::to_value(&after).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    tx.commit().await?;
    json(&after)
}

/// Checks a GeoJSON Polygon or MultiPolygon geometry: closed rings of at least four valid
/// positions.
pub fn check_polygon(v: &Value) -> Result<(), String> {
    let kind = v.get("type").and_then(Value::as_str).ok_or("边界须为 GeoJSON 几何对象，含 type 字段")?;
    let coords = v.get("coordinates").and_then(Value::as_array).ok_or("边界缺少 coordinates 数组")?;
    let polygons: Vec<&Value> = match kind {
        "Polygon" => vec![v.get("coordinates").ok_or("边界缺少 coordinates")?],
        "MultiPolygon" => coords.iter().collect(),
        other => return Err(format!("边界类型 {other} 不支持，应为 Polygon 或 MultiPolygon")),
    };
    for poly in polygons {
        let rings = poly.as_array().ok_or("多边形应为线环数组")?;
        if rings.is_empty() {
            return Err("多边形至少需要一个线环".into());
        }
        for ring in rings {
            let pts = ring.as_array().ok_or("线环应为坐标数组")?;
            if pts.len() < 4 {
                return Err("每个线环至少 4 个坐标点（首尾相同）".into());
            }
            let mut parsed = Vec::with_capacity(pts.len());
            for p in pts {
                let xy = p.as_array().filter(|a| a.len() >= 2).ok_or("坐标点应为 [经度, 纬度]")?;
                let (Some(lon), Some(lat)) = (xy[0].as_f64(), xy[1].as_f64()) else {
                    return Err("坐标须为数字".into());
                };
                check_lon_lat(lon, lat)?;
                parsed.push((lon, lat));
            }
            if parsed.first() != parsed.last() {
                return Err("线环首尾坐标须相同（闭合）".into());
            }
        }
    }
    Ok(())
}

async fn import_csv(c: Ctx) -> ApiResult<Response> {
    let imp = import::RegionImport::new(Some(c.caller()?.scope.clone()), c.actor()?, c.now());
    crate::imports::respond(&c, &imp).await
}
