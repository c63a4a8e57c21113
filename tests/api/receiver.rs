//! A local webhook receiver for notification tests: records every request and fails the first
//! few on purpose.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use warp::Filter;

/// One received request.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `Idempotency-Key` header.
    pub key: String,
    /// The full request path with query.
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// Whether the receiver answered with success.
    pub accepted: bool,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Its address.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<AtomicUsize>,
}

impl Receiver {
    /// Starts a receiver that answers 500 to the first `fail_first` requests, then 200.
    pub async fn start(fail_first: usize) -> Receiver {
        Self::start_with(fail_first, std::time::Duration::ZERO).await
    }

    /// Starts a receiver that takes `delay` to answer each request (a slow receiver).
    pub async fn start_slow(delay: std::time::Duration) -> Receiver {
        Self::start_with(0, delay).await
    }

    /// Starts a receiver failing the first `fail_first` requests and taking `delay` for each.
    pub async fn start_with(fail_first: usize, delay: std::time::Duration) -> Receiver {
        Self::start_full(fail_first, 0, delay, delay).await
    }

    /// Starts a receiver whose first `held` requests take `hold` to answer and every later one
    /// `delay`: the first requests stay in flight long enough for a test to act while they do.
    pub async fn start_holding(held: usize, hold: std::time::Duration, delay: std::time::Duration) -> Receiver {
        Self::start_full(0, held, hold, delay).await
    }

    async fn start_full(
        fail_first: usize,
        held: usize,
        hold: std::time::Duration,
        delay: std::time::Duration,
    ) -> Receiver {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let arrived = Arc::new(AtomicUsize::new(0));
        let count = arrived.clone();
        let fails = Arc::new(AtomicUsize::new(fail_first));
        let (l, f) = (log.clone(), fails.clone());
        let route = warp::path::full()
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("idempotency-key"))
            .and(warp::body::json::<Value>())
            .then(move |path: warp::path::FullPath, query: String, key: Option<String>, body: Value| {
                let (l, f) = (l.clone(), f.clone());
                let nth = count.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(if nth < held { hold } else { delay }).await;
                    let accepted = f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err();
                    l.lock().unwrap().push(Received {
                        key: key.unwrap_or_default(),
                        path: format!("{}?{query}", path.as_str()),
                        body,
                        accepted,
                    });
                    if accepted {
                        warp::reply::with_status(
                            warp::reply::json(&serde_json::json!({"errcode": 0})),
                            warp::http::StatusCode::OK,
                        )
                    } else {
                        warp::reply::with_status(
                            warp::reply::json(&serde_json::json!({})),
                            warp::http::StatusCode::INTERNAL_SERVER_ERROR,
                        )
                    }
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver { addr, log, arrived }
    }

    /// The URL to configure as a channel.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Distinct idempotency keys received so far.
    pub fn keys(&self) -> std::collections::BTreeSet<String> {
        self.log.lock().unwrap().iter().map(|r| r.key.clone()).collect()
    }

    /// Requests that have arrived so far, answered or not.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}
