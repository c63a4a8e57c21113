//! Users and their API tokens. A token is 192 random bits, shown once, stored only as its
//! SHA-256 hash, and revocable.

use schemars::JsonSchema;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Principal, Role, Scope};
use crate::audit::{self, Actor, Change};
use crate::db::Db;
use crate::error::ApiError;
use crate::freshness::{Cached, Generations};
use crate::regions::{Level, RegionCode};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Prefix that makes a yingji token recognisable (e.g. to secret scanners).
pub const TOKEN_PREFIX: &str = "yj_";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS random source failing is unrecoverable for a service that issues secrets.
    getrandom::fill(&mut b).expect("operating system random source unavailable");
    b
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// 64 random bits as 16 hex digits (request ids).
pub fn random_hex16() -> String {
    hex(&random_bytes::<8>())
}

/// A new random token: `yj_` and 48 hex digits (192 bits).
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex(&random_bytes::<24>()))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A token as listed (never the secret itself).
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct TokenInfo {
    /// Token id.
    pub id: i64,
    /// User name.
    pub user_name: String,
    /// Role.
    pub role: String,
    /// Jurisdiction.
    pub region_code: String,
    /// Optional label (what the token is for).
    pub label: Option<String>,
    /// When issued.
    pub created_at: Timestamp,
    /// When revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A newly issued token, with the secret shown this once.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IssuedToken {
    /// The listed form.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token. Shown only now; store it safely.
    pub token: String,
}

/// Issues a token for user `name` (created if new) with `role` and jurisdiction `region`.
/// An existing user must have the same role and region.
pub async fn issue(
    db: &Db,
    actor: &Actor,
    now: Timestamp,
    name: &str,
    role: Role,
    region: &RegionCode,
    label: Option<&str>,
) -> Result<IssuedToken, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid("name", "用户名不能为空，且不超过 64 个字符"));
    }
    if crate::regions::store::get(db, region.as_str()).await?.is_none() {
        return Err(ApiError::invalid("region", format!("区划 {region} 不存在")));
    }
    let token = new_token();
    let hash = hash_token(&token);
    let mut tx = db.begin().await?;
    let existing: Option<(i64, String, String)> = with_tx!(&mut tx, |c| {
        sqlx::query_as("SELECT id, role, region_code FROM users WHERE name = $1").bind(name).fetch_optional(c).await
    })?;
    let user_id = match existing {
        Some((id, r, reg)) => {
            if r != role.as_str() || reg != region.as_str() {
                return Err(ApiError::Conflict(format!(
                    "用户 {name} 已存在，角色为 {r}、辖区为 {reg}；同一用户的令牌须同角色同辖区，请换一个用户名"
                )));
            }
            id
        }
        None => {
            let id: i64 = with_tx!(&mut tx, |c| {
                sqlx::query_scalar(
                    "INSERT INTO users (name, role, region_code, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(region.as_str())
                .bind(now)
                .fetch_one(c)
                .await
            })?;
            id
        }
    };
    let id: i64 = with_tx!(&mut tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user_id)
        .bind(&hash)
        .bind(label)
        .bind(now)
        .fetch_one(c)
        .await
    })?;
    let info = TokenInfo {
        id,
        user_name: name.to_string(),
        role: role.as_str().to_string(),
        region_code: region.to_string(),
        label: label.map(str::to_string),
        created_at: now,
        revoked_at: None,
    };
    audit::record(
        &mut tx,
        actor,
        now,
        Change {
            action: "issue",
            entity_type: "token",
            entity_id: &id.to_string(),
            region_code: Some(region.as_str()),
            before: None,
            after: Some(serde_json::to_value(&info).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedToken { info, token })
}

const TOKEN_SELECT: &str =
    "SELECT t.id, u.name AS user_name, u.role, u.region_code, t.label, t.created_at, t.revoked_at
     FROM api_tokens t JOIN users u ON u.id = t.user_id";

/// Lists tokens of users in the jurisdiction bounds.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    limit: i64,
    offset: i64,
) -> Result<(Vec<TokenInfo>, i64), sqlx::Error> {
    let sql =
        format!("{TOKEN_SELECT} WHERE u.region_code >= $1 AND u.region_code <= $2 ORDER BY t.id LIMIT $3 OFFSET $4");
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, TokenInfo>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.region_code >= $1 AND u.region_code <= $2",
        )
        .bind(bounds.0)
        .bind(bounds.1)
        .fetch_one(p)
        .await?;
        Ok((items, total))
    })
}

/// One token by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<TokenInfo>, sqlx::Error> {
    let sql = format!("{TOKEN_SELECT} WHERE t.id = $1");
    with_db!(db, |p| sqlx::query_as::<_, TokenInfo>(&sql).bind(id).fetch_optional(p).await)
}

/// Revokes a token (idempotent: revoking a revoked token changes nothing and writes no audit).
pub async fn revoke(db: &Db, actor: &Actor, now: Timestamp, id: i64) -> Result<TokenInfo, ApiError> {
    let before = get(db, id).await?.ok_or_else(|| ApiError::NotFound(format!("令牌 {id} 不存在")))?;
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, |c| {
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(c)
            .await
            .map(|_| ())
    })?;
    let after = TokenInfo { revoked_at: Some(now), ..before.clone() };
    audit::record(
        &mut tx,
        actor,
        now,
        Change {
            action: "revoke",
            entity_type: "token",
            entity_id: &id.to_string(),
            region_code: Some(&before.region_code),
            before: Some(serde_json::to_value(&before).map_err(anyhow::Error::from)?),
            after: Some(serde_json::to_value(&after).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Looks up the caller behind a bearer token; None when unknown or revoked.
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<Principal>, sqlx::Error> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    by_hash(db, &hash_token(token)).await
}

/// [`authenticate`] through the instance's cache of tokens seen valid, under the generations
/// checked for this request (`fresh`; None: straight from the database). A revoked token, a
/// disabled user, a changed role or jurisdiction is never served from the cache once its
/// transaction has committed (see `crate::freshness`). Unknown tokens are not cached.
pub async fn authenticate_fresh(
    db: &Db,
    cache: &Cached<String, Principal>,
    fresh: Option<Generations>,
    token: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    let Some(g) = fresh else { return authenticate(db, token).await };
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    let hash = hash_token(token);
    if let Some(p) = cache.get(g, &hash) {
        return Ok(Some(p));
    }
    let found = by_hash(db, &hash).await?;
    if let Some(p) = &found {
        cache.put(g, hash, p.clone());
    }
    Ok(found)
}

/// The caller behind a token hash (unrevoked).
async fn by_hash(db: &Db, hash: &str) -> Result<Option<Principal>, sqlx::Error> {
    let row: Option<(i64, i64, String, String, String, String)> = with_db!(db, |p| {
        sqlx::query_as(
            "SELECT t.id, u.id, u.name, u.role, u.region_code, r.level
             FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN regions r ON r.code = u.region_code
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(p)
        .await
    })?;
    Ok(row.and_then(|(token_id, user_id, name, role, region, level)| {
        Some(Principal {
            user_id,
            name,
            role: Role::parse(&role)?,
            scope: Scope { code: RegionCode::parse(&region).ok()?, level: Level::parse(&level)? },
            token_id,
        })
    }))
}

/// The caller behind a user id (for feed tokens, which stand for their user).
pub async fn principal_for_user(db: &Db, user_id: i64) -> Result<Option<Principal>, sqlx::Error> {
    let row: Option<(i64, String, String, String, String)> = with_db!(db, |p| {
        sqlx::query_as(
            "SELECT u.id, u.name, u.role, u.region_code, r.level FROM users u JOIN regions r ON r.code = u.region_code WHERE u.id = $1",
        )
        .bind(user_id)
        .fetch_optional(p)
        .await
    })?;
    Ok(row.and_then(|(user_id, name, role, region, level)| {
        Some(Principal {
            user_id,
            name,
            role: Role::parse(&role)?,
            scope: Scope { code: RegionCode::parse(&region).ok()?, level: Level::parse(&level)? },
            token_id: 0,
        })
    }))
}
