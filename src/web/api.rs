//! The console's way to the API: the same route handlers, called in-process as the logged-in
//! user ([`crate::http::call_as`]), their JSON turned into pages. No business rule is repeated
//! here; an API error becomes a Chinese error page naming the field or line.

use bytes::Bytes;
use serde_json::Value;
use warp::http::Method;

use super::{Req, WebError};
use crate::auth::login::Session;
use crate::error::ApiError;

async fn call(req: &Req, s: &Session, method: Method, path: &str, query: &str, body: Bytes) -> Result<Value, WebError> {
    let resp =
        crate::http::call_as(req.app.clone(), s.principal.clone(), method, path, query, body, &req.request_id).await?;
    if resp.status() == warp::http::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    let bytes = http_body_bytes(resp).await?;
    serde_json::from_slice(&bytes).map_err(|e| WebError::Api(ApiError::Internal(e.into())))
}

async fn http_body_bytes(resp: warp::reply::Response) -> Result<Bytes, WebError> {
    use http_body_util::BodyExt;
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| WebError::Api(ApiError::Internal(anyhow::anyhow!("reading an API response: {e}"))))
}

/// `GET path?query` as the session's user, as JSON.
pub async fn get(req: &Req, s: &Session, path: &str, query: &str) -> Result<Value, WebError> {
    call(req, s, Method::GET, path, query, Bytes::new()).await
}

/// `POST path` with a JSON body as the session's user.
pub async fn post(req: &Req, s: &Session, path: &str, body: &Value) -> Result<Value, WebError> {
    let bytes = serde_json::to_vec(body).map_err(|e| WebError::Api(ApiError::Internal(e.into())))?;
    call(req, s, Method::POST, path, "", Bytes::from(bytes)).await
}

/// `POST path?query` without a body as the session's user.
pub async fn post_query(req: &Req, s: &Session, path: &str, query: &str) -> Result<Value, WebError> {
    call(req, s, Method::POST, path, query, Bytes::new()).await
}

/// Reads an API answer into the fields a page shows.
pub fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, WebError> {
    serde_json::from_value(v).map_err(|e| WebError::Api(ApiError::Internal(e.into())))
}

/// `method path` with a JSON body as the session's user (PUT, PATCH).
pub async fn send(req: &Req, s: &Session, method: Method, path: &str, body: &Value) -> Result<Value, WebError> {
    let bytes = serde_json::to_vec(body).map_err(|e| WebError::Api(ApiError::Internal(e.into())))?;
    call(req, s, method, path, "", Bytes::from(bytes)).await
}

/// `POST path` without a body (steps that take none) as the session's user.
pub async fn post_empty(req: &Req, s: &Session, path: &str) -> Result<Value, WebError> {
    call(req, s, Method::POST, path, "", Bytes::new()).await
}

/// A region as a form's choice (code and name).
#[derive(serde::Deserialize)]
pub struct RegionChoice {
    /// Division code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// The regions of the session's jurisdiction (the API's region list), for a form's region choice.
pub async fn regions(req: &Req, s: &Session) -> Result<Vec<RegionChoice>, WebError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        items: Vec<RegionChoice>,
    }
    let a: Answer = decode(get(req, s, "/api/v1/regions", "limit=1000").await?)?;
    Ok(a.items)
}
