//! Logging in to the console, behind one interface ([`IdentityProvider`]) so a single sign-on
//! (蒙政通) can replace the password check later without touching sessions or pages; and the
//! browser sessions that a login opens.
//!
//! Guessing is slowed: every failed login is recorded and audited; after
//! [`FREE_FAILURES`] failures for one name within [`FAILURE_WINDOW_MINUTES`] each further attempt
//! waits 0.5, 1, 2 … (at most 8) seconds before the password is even checked, and after
//! [`LOCK_FAILURES`] the name is refused at once, even with the right password, until the window
//! has passed (at most 10 guesses per name per 15 minutes).

use std::future::Future;
use std::time::Duration;

use super::{Principal, Role, Scope, users};
use crate::audit::{self, Actor, Change};
use crate::db::Db;
use crate::error::ApiError;
use crate::regions::{Level, RegionCode};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Failures (within the window) answered without delay.
pub const FREE_FAILURES: i64 = 3;
/// Failures (within the window) after which the name is refused.
pub const LOCK_FAILURES: i64 = 10;
/// The window failures are counted in.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;
/// How long a session lasts after login.
pub const SESSION_HOURS: i64 = 12;

/// Who says a person is who they claim: answers with the user id, or None.
pub trait IdentityProvider: Send + Sync {
    /// Checks `name` and `secret`; Ok(None) when they do not match an enabled user.
    fn verify(&self, db: &Db, name: &str, secret: &str) -> impl Future<Output = Result<Option<i64>, ApiError>> + Send;
}

/// User name and argon2id password, checked against `users.password_hash`.
pub struct PasswordLogin;

impl IdentityProvider for PasswordLogin {
    async fn verify(&self, db: &Db, name: &str, secret: &str) -> Result<Option<i64>, ApiError> {
        let creds = users::credentials(db, name).await?;
        let secret = secret.to_string();
        let (id, hash, disabled) = match creds {
            Some((id, Some(h), disabled)) => (Some(id), h, disabled),
            // Unknown name or no password: spend the same time on a decoy.
            _ => (None, users::decoy_hash().to_string(), false),
        };
        // Hashing takes tens of milliseconds of CPU: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || users::verify_password(&secret, &hash))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        Ok(id.filter(|_| ok && !disabled))
    }
}

/// An open session: the cookie value (shown once, to be set as the cookie) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The secret that goes into the cookie.
    pub cookie: String,
    /// The token every form of this session carries.
    pub csrf: String,
}

/// A session found from its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    /// Session id.
    pub id: i64,
    /// Who is logged in.
    pub principal: Principal,
    /// The session's CSRF token.
    pub csrf: String,
}

/// A fresh random secret: 192 bits as 48 hex digits (session cookies, CSRF tokens).
pub fn random_secret() -> String {
    let mut b = [0u8; 24];
    // The OS random source failing is unrecoverable for a service that issues secrets.
    getrandom::fill(&mut b).expect("operating system random source unavailable");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Recent failures for a name.
async fn recent_failures(db: &Db, name: &str, now: Timestamp) -> Result<i64, sqlx::Error> {
    let since = Timestamp(now.0 - chrono::Duration::minutes(FAILURE_WINDOW_MINUTES));
    with_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE user_name = $1 AND at > $2")
        .bind(name)
        .bind(since)
        .fetch_one(p)
        .await)
}

/// The delay before answering an attempt after `failures` recent failures.
pub fn delay_after(failures: i64) -> Duration {
    if failures < FREE_FAILURES {
        Duration::ZERO
    } else {
        Duration::from_millis(500u64 << (failures - FREE_FAILURES).min(4))
    }
}

/// Why a login failed (the page says the same thing for a wrong name and a wrong password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Name or password wrong (or the user disabled).
    BadCredentials,
    /// Too many recent failures for this name.
    Locked,
}

/// Logs in: checks the name and secret with `provider`, slowing and refusing repeated failures,
/// auditing every attempt, and opens a session on success.
pub async fn login(
    db: &Db,
    provider: &impl IdentityProvider,
    now: Timestamp,
    name: &str,
    secret: &str,
    request_id: &str,
) -> Result<Result<(NewSession, Principal), Refusal>, ApiError> {
    let name = name.trim();
    let failures = recent_failures(db, name, now).await?;
    if failures < LOCK_FAILURES {
        tokio::time::sleep(delay_after(failures)).await;
    }
    let anonymous = Actor { name: "anonymous".into(), role: None, request_id: Some(request_id.to_string()) };
    let user_id = if failures >= LOCK_FAILURES { None } else { provider.verify(db, name, secret).await? };
    let principal = match user_id {
        Some(id) => super::tokens::principal_for_user(db, id).await?,
        None => None,
    };
    let Some(principal) = principal else {
        let refusal = if failures >= LOCK_FAILURES { Refusal::Locked } else { Refusal::BadCredentials };
        let mut tx = db.begin().await?;
        with_tx!(&mut tx, |c| sqlx::query("INSERT INTO login_failures (user_name, at) VALUES ($1, $2)")
            .bind(name)
            .bind(now)
            .execute(c)
            .await
            .map(|_| ()))?;
        let reason = if refusal == Refusal::Locked { "locked" } else { "bad_credentials" };
        let change = Change {
            action: "login_failed",
            entity_type: "user",
            entity_id: name,
            region_code: None,
            before: None,
            after: Some(serde_json::json!({ "reason": reason, "recent_failures": failures + 1 })),
        };
        audit::record(&mut tx, &anonymous, now, change).await?;
        tx.commit().await?;
        tracing::warn!(request_id, user = name, failures = failures + 1, "console login failed");
        return Ok(Err(refusal));
    };
    let session = NewSession { cookie: random_secret(), csrf: random_secret() };
    let expires = Timestamp(now.0 + chrono::Duration::hours(SESSION_HOURS));
    let mut tx = db.begin().await?;
    let sid: i64 = with_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id"
    )
    .bind(super::tokens::hash_token(&session.cookie))
    .bind(principal.user_id)
    .bind(&session.csrf)
    .bind(now)
    .bind(expires)
    .fetch_one(c)
    .await
    })?;
    let change = Change {
        action: "login",
        entity_type: "user",
        entity_id: &principal.user_id.to_string(),
        region_code: Some(principal.scope.code.as_str()),
        before: None,
        after: Some(serde_json::json!({ "session": sid, "expires_at": expires })),
    };
    audit::record(&mut tx, &Actor::user(&principal, request_id), now, change).await?;
    tx.commit().await?;
    Ok(Ok((session, principal)))
}

/// The live session behind a cookie value (not ended, not expired, user not disabled).
pub async fn session(db: &Db, cookie: &str, now: Timestamp) -> Result<Option<Session>, sqlx::Error> {
    if cookie.len() != 48 || !cookie.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    type Row = (i64, String, i64, String, String, String, String);
    let row: Option<Row> = with_db!(db, |p| sqlx::query_as(
        "SELECT s.id, s.csrf, u.id, u.name, u.role, u.region_code, r.level
         FROM web_sessions s JOIN users u ON u.id = s.user_id JOIN regions r ON r.code = u.region_code
         WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND u.disabled_at IS NULL"
    )
    .bind(super::tokens::hash_token(cookie))
    .bind(now)
    .fetch_optional(p)
    .await)?;
    Ok(row.and_then(|(id, csrf, user_id, name, role, region, level)| {
        Some(Session {
            id,
            csrf,
            principal: Principal {
                user_id,
                name,
                role: Role::parse(&role)?,
                scope: Scope { code: RegionCode::parse(&region).ok()?, level: Level::parse(&level)? },
                token_id: 0,
            },
        })
    }))
}

/// Ends a session (logout), audited.
pub async fn logout(db: &Db, s: &Session, now: Timestamp, request_id: &str) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let n =
        with_tx!(&mut tx, |c| sqlx::query("UPDATE web_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(s.id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
    if n == 1 {
        let change = Change {
            action: "logout",
            entity_type: "user",
            entity_id: &s.principal.user_id.to_string(),
            region_code: Some(s.principal.scope.code.as_str()),
            before: None,
            after: Some(serde_json::json!({ "session": s.id })),
        };
        audit::record(&mut tx, &Actor::user(&s.principal, request_id), now, change).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap() {
        assert_eq!(delay_after(0), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES), Duration::from_millis(500));
        assert_eq!(delay_after(FREE_FAILURES + 1), Duration::from_secs(1));
        assert_eq!(delay_after(FREE_FAILURES + 20), Duration::from_secs(8));
    }
}
