//! CPU work off the async runtime: CSV parsing and HTML documents run on tokio's blocking pool,
//! the readiness engine on a lower-priority thread of its own, so the worker threads keep
//! answering requests (`/healthz` answers in milliseconds while a 60 MB import is parsed).

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

/// Drives a long background job (a future that mixes database awaits with long CPU stretches) on
/// a thread of its own at a lower CPU priority (nice [`BACKGROUND_NICE`] on Linux): its I/O
/// still goes through the runtime, its CPU stretches never occupy a worker thread, and when the
/// two cores are busy the scheduler serves the request workers first, so the API keeps its
/// latency while the job runs. The thread ends with the job (a pool thread would keep the
/// priority, and an unprivileged process cannot raise it back).
pub async fn background<T, Fut>(name: &str, fut: Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        lower_priority();
        let _ = done.send(handle.block_on(fut));
    })?;
    result.await.map_err(|_| anyhow::anyhow!("background job {name} stopped without a result"))?
}

/// The nice value of [`background`] jobs: 10 of 19, so they still progress on a busy machine.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority (Linux: the nice value is per thread). Best effort:
/// a failure is logged, the job runs at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
        let done = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE)
        };
        if done != 0 {
            tracing::warn!("lowering a background job's CPU priority failed: {}", std::io::Error::last_os_error());
        }
    }
}
