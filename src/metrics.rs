//! Prometheus metrics: requests by route and status, a latency histogram, failed
//! authentications, and the database pool's state.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket bounds, seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency_counts: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_n: u64,
    auth_failures: BTreeMap<&'static str, u64>,
}

/// In-process counters. Cheap to update: one short lock per request.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one finished request. `route` is the route template (bounded cardinality).
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *g.requests.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                g.latency_counts[i] += 1;
            }
        }
        g.latency_sum += secs;
        g.latency_n += 1;
    }

    /// Counts a failed authentication by reason.
    pub fn auth_failure(&self, reason: &'static str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *g.auth_failures.entry(reason).or_default() += 1;
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self, pool: (u32, usize)) -> String {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        s.push_str("# HELP yingji_http_requests_total HTTP requests by method, route and status.\n");
        s.push_str("# TYPE yingji_http_requests_total counter\n");
        for ((m, r, st), n) in &g.requests {
            let _ =
                writeln!(s, "yingji_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{st}\"}} {n}", escape(r));
        }
        s.push_str("# HELP yingji_http_request_duration_seconds HTTP request latency.\n");
        s.push_str("# TYPE yingji_http_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(s, "yingji_http_request_duration_seconds_bucket{{le=\"{b}\"}} {}", g.latency_counts[i]);
        }
        let _ = writeln!(s, "yingji_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}", g.latency_n);
        let _ = writeln!(s, "yingji_http_request_duration_seconds_sum {}", g.latency_sum);
        let _ = writeln!(s, "yingji_http_request_duration_seconds_count {}", g.latency_n);
        s.push_str("# HELP yingji_auth_failures_total Failed authentications by reason.\n");
        s.push_str("# TYPE yingji_auth_failures_total counter\n");
        for (reason, n) in &g.auth_failures {
            let _ = writeln!(s, "yingji_auth_failures_total{{reason=\"{reason}\"}} {n}");
        }
        s.push_str("# HELP yingji_db_pool_connections Open database connections.\n");
        s.push_str("# TYPE yingji_db_pool_connections gauge\n");
        let _ = writeln!(s, "yingji_db_pool_connections {}", pool.0);
        s.push_str("# HELP yingji_db_pool_idle Idle database connections.\n");
        s.push_str("# TYPE yingji_db_pool_idle gauge\n");
        let _ = writeln!(s, "yingji_db_pool_idle {}", pool.1);
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
