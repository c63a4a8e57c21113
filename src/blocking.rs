//! CPU work off the async runtime: CSV parsing, HTML documents and the readiness engine run on
//! tokio's blocking pool, so the worker threads keep answering requests (`/healthz` answers in
//! milliseconds while a 60 MB import is parsed).

use std::future::Future;

use crate::error::ApiError;

/// Runs CPU-bound `f` on the blocking pool and waits for it.
pub async fn cpu<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(anyhow::anyhow!("blocking task failed: {e}")))
}

/// Drives a future that mixes database awaits with long CPU stretches on a blocking-pool thread
/// (its I/O still goes through the runtime), so the stretches never occupy a worker thread.
pub async fn off_runtime<T, Fut>(fut: Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(fut))
        .await
        .map_err(|e| anyhow::anyhow!("blocking task failed: {e}"))?
}
