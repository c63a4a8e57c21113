//! People who log in to the console: user names with argon2id password hashes, created, given a
//! new password and disabled by an administrator (command line or console). Every change is
//! audited in its own transaction; hashes never reach the audit log.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Serialize;

use super::Role;
use crate::audit::{self, Actor, Change};
use crate::db::Db;
use crate::error::ApiError;
use crate::regions::RegionCode;
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted password, in characters (bounds the hashing work one request can ask for).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The hasher: argon2id with OWASP's first recommended parameter set (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    // These constants are valid parameters; `Params::new` only fails on out-of-range values.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the password rules, naming the rule broken.
pub fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid("password", format!("密码至少 {MIN_PASSWORD_CHARS} 个字符")));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ApiError::invalid("password", format!("密码不超过 {MAX_PASSWORD_CHARS} 个字符")));
    }
    Ok(())
}

/// Hashes a password as an argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of a password nobody has, verified against when the user name is unknown, so that a
/// wrong name costs as much time as a wrong password (no user-name probing by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::auth::tokens::random_hex16()).unwrap_or_default())
}

/// A console user as listed (never the hash).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct UserInfo {
    /// Id.
    pub id: i64,
    /// Log-in name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Jurisdiction.
    pub region_code: String,
    /// Whether a password is set (else the user has API tokens only).
    pub has_password: bool,
    /// When disabled, if disabled.
    pub disabled_at: Option<Timestamp>,
    /// When created.
    pub created_at: Timestamp,
}

impl UserInfo {
    /// The role's Chinese name.
    pub fn role_label(&self) -> &'static str {
        Role::parse(&self.role).map_or("未知", Role::label)
    }
}

const SELECT: &str = "SELECT id, name, role, region_code, (password_hash IS NOT NULL) AS has_password, disabled_at, created_at FROM users";

/// One user by name.
pub async fn by_name(db: &Db, name: &str) -> Result<Option<UserInfo>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE name = $1");
    with_db!(db, |p| sqlx::query_as::<_, UserInfo>(&sql).bind(name).fetch_optional(p).await)
}

/// One user by id.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<UserInfo>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_db!(db, |p| sqlx::query_as::<_, UserInfo>(&sql).bind(id).fetch_optional(p).await)
}

/// Users whose jurisdiction lies within `bounds`, by name.
pub async fn list(db: &Db, bounds: (&str, &str)) -> Result<Vec<UserInfo>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE region_code >= $1 AND region_code <= $2 ORDER BY name");
    with_db!(db, |p| sqlx::query_as::<_, UserInfo>(&sql).bind(bounds.0).bind(bounds.1).fetch_all(p).await)
}

/// The stored hash and state of a user, for logging in: `(id, hash, disabled)`.
pub async fn credentials(db: &Db, name: &str) -> Result<Option<(i64, Option<String>, bool)>, sqlx::Error> {
    let row: Option<(i64, Option<String>, Option<Timestamp>)> =
        with_db!(db, |p| sqlx::query_as("SELECT id, password_hash, disabled_at FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(p)
            .await)?;
    Ok(row.map(|(id, h, d)| (id, h, d.is_some())))
}

fn check_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "用户名不能为空，不超过 64 个字符，且不含控制字符"));
    }
    Ok(name)
}

fn audit_view(u: &UserInfo) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(u).map_err(|e| ApiError::Internal(e.into()))
}

/// Audits a change of user `before` into `after` (filed under the user's jurisdiction after the
/// change) in the transaction that made it, and commits.
async fn finish(
    mut tx: crate::db::Tx,
    actor: &Actor,
    now: Timestamp,
    action: &str,
    before: &UserInfo,
    after: UserInfo,
) -> Result<UserInfo, ApiError> {
    let change = Change {
        action,
        entity_type: "user",
        entity_id: &before.id.to_string(),
        region_code: Some(&after.region_code),
        before: Some(audit_view(before)?),
        after: Some(audit_view(&after)?),
    };
    audit::record(&mut tx, actor, now, change).await?;
    tx.commit().await?;
    Ok(after)
}

/// Creates a user who logs in with `password`. A name already taken is 409.
pub async fn create(
    db: &Db,
    actor: &Actor,
    now: Timestamp,
    name: &str,
    role: Role,
    region: &RegionCode,
    password: &str,
) -> Result<UserInfo, ApiError> {
    let name = check_name(name)?;
    check_password(password)?;
    if crate::regions::store::get(db, region.as_str()).await?.is_none() {
        return Err(ApiError::invalid("region", format!("区划 {region} 不存在")));
    }
    if by_name(db, name).await?.is_some() {
        return Err(ApiError::Conflict(format!("用户名 {name} 已被使用")));
    }
    let hash = hash_password(password)?;
    let mut tx = db.begin().await?;
    let id: i64 = with_tx!(&mut tx, |c| sqlx::query_scalar(
        "INSERT INTO users (name, role, region_code, created_at, password_hash) VALUES ($1, $2, $3, $4, $5) RETURNING id"
    )
    .bind(name)
    .bind(role.as_str())
    .bind(region.as_str())
    .bind(now)
    .bind(&hash)
    .fetch_one(c)
    .await)
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::Conflict(format!("用户名 {name} 已被使用")),
        e => e.into(),
    })?;
    let info = UserInfo {
        id,
        name: name.to_string(),
        role: role.as_str().to_string(),
        region_code: region.to_string(),
        has_password: true,
        disabled_at: None,
        created_at: now,
    };
    let change = Change {
        action: "create",
        entity_type: "user",
        entity_id: &id.to_string(),
        region_code: Some(region.as_str()),
        before: None,
        after: Some(audit_view(&info)?),
    };
    audit::record(&mut tx, actor, now, change).await?;
    tx.commit().await?;
    Ok(info)
}

/// Sets a user's password (also for users who had API tokens only) and ends their sessions, so
/// a password changed because it leaked locks out whoever had it.
pub async fn set_password(
    db: &Db,
    actor: &Actor,
    now: Timestamp,
    name: &str,
    password: &str,
) -> Result<UserInfo, ApiError> {
    check_password(password)?;
    let before = by_name(db, name).await?.ok_or_else(|| ApiError::NotFound(format!("用户 {name} 不存在")))?;
    let hash = hash_password(password)?;
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, |c| {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(before.id)
            .execute(&mut *c)
            .await?;
        sqlx::query("UPDATE web_sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(before.id)
            .execute(&mut *c)
            .await
            .map(|_| ())
    })?;
    let after = UserInfo { has_password: true, ..before.clone() };
    finish(tx, actor, now, "set_password", &before, after).await
}

/// Disables a user: no more logins, every session ended and every API token revoked, in one
/// transaction. Disabling a disabled user changes nothing.
pub async fn disable(db: &Db, actor: &Actor, now: Timestamp, name: &str) -> Result<UserInfo, ApiError> {
    let before = by_name(db, name).await?.ok_or_else(|| ApiError::NotFound(format!("用户 {name} 不存在")))?;
    if before.disabled_at.is_some() {
        return Ok(before);
    }
    let mut tx = db.begin().await?;
    let changed = with_tx!(&mut tx, |c| {
        let n = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
            .bind(now)
            .bind(before.id)
            .execute(&mut *c)
            .await?
            .rows_affected();
        sqlx::query("UPDATE web_sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(before.id)
            .execute(&mut *c)
            .await?;
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(before.id)
            .execute(&mut *c)
            .await
            .map(|_| n)
    })?;
    if changed == 0 {
        // Someone else disabled the user in between; their transaction wrote the audit row.
        return Ok(by_name(db, name).await?.unwrap_or(before));
    }
    let after = UserInfo { disabled_at: Some(now), ..before.clone() };
    finish(tx, actor, now, "disable", &before, after).await
}

/// Lets a disabled user log in again (their old sessions and tokens stay ended: a new password
/// or token is a deliberate next step). Enabling an enabled user changes nothing.
pub async fn enable(db: &Db, actor: &Actor, now: Timestamp, name: &str) -> Result<UserInfo, ApiError> {
    let before = by_name(db, name).await?.ok_or_else(|| ApiError::NotFound(format!("用户 {name} 不存在")))?;
    if before.disabled_at.is_none() {
        return Ok(before);
    }
    let mut tx = db.begin().await?;
    let changed = with_tx!(&mut tx, |c| sqlx::query(
        "UPDATE users SET disabled_at = NULL WHERE id = $1 AND disabled_at IS NOT NULL"
    )
    .bind(before.id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if changed == 0 {
        // Someone else enabled the user in between; their transaction wrote the audit row.
        return Ok(by_name(db, name).await?.unwrap_or(before));
    }
    let after = UserInfo { disabled_at: None, ..before.clone() };
    finish(tx, actor, now, "enable", &before, after).await
}

/// Gives a user another role and/or jurisdiction. Sessions and tokens read the user's role and
/// region on every request, so the change applies at once to both.
pub async fn assign(
    db: &Db,
    actor: &Actor,
    now: Timestamp,
    name: &str,
    role: Option<Role>,
    region: Option<&RegionCode>,
) -> Result<UserInfo, ApiError> {
    let before = by_name(db, name).await?.ok_or_else(|| ApiError::NotFound(format!("用户 {name} 不存在")))?;
    if let Some(r) = region
        && crate::regions::store::get(db, r.as_str()).await?.is_none()
    {
        return Err(ApiError::invalid("region", format!("区划 {r} 不存在")));
    }
    let after = UserInfo {
        role: role.map_or_else(|| before.role.clone(), |r| r.as_str().to_string()),
        region_code: region.map_or_else(|| before.region_code.clone(), |r| r.to_string()),
        ..before.clone()
    };
    if after.role == before.role && after.region_code == before.region_code {
        return Ok(before);
    }
    let mut tx = db.begin().await?;
    // Conditional on what was read, so two admins changing the same user at once cannot both win.
    let changed = with_tx!(&mut tx, |c| sqlx::query(
        "UPDATE users SET role = $1, region_code = $2 WHERE id = $3 AND role = $4 AND region_code = $5"
    )
    .bind(&after.role)
    .bind(&after.region_code)
    .bind(before.id)
    .bind(&before.role)
    .bind(&before.region_code)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Err(ApiError::Conflict(format!("用户 {name} 刚被他人修改，请刷新后重试")));
    }
    finish(tx, actor, now, "assign", &before, after).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterz", &a));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn password_rules() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }
}
