//! Drives a running service with `wrk` (Debian package `wrk`), a separate process written in C,
//! so that the load generator does not share the service's runtime and costs less CPU than a
//! Rust client would on the same machine.

use std::io::Write as _;
use std::process::Command;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    /// Completed requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
}

/// Whether `wrk` is installed.
pub fn available() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// Asks `paths` (round-robin, per `wrk` thread) of `base` with the bearer `token` from
/// `connections` connections on `threads` threads for `seconds`.
pub fn run(
    base: &str,
    token: Option<&str>,
    paths: &[String],
    connections: usize,
    threads: usize,
    seconds: u64,
) -> anyhow::Result<Run> {
    let script = std::env::temp_dir().join(format!("yingji-bench-wrk-{}.lua", std::process::id()));
    {
        let mut f = std::fs::File::create(&script)?;
        writeln!(f, "local paths = {{")?;
        for p in paths {
            writeln!(f, "  {:?},", p)?;
        }
        writeln!(f, "}}")?;
        if let Some(t) = token {
            writeln!(f, "wrk.headers[\"Authorization\"] = \"Bearer {t}\"")?;
        }
        writeln!(f, "local i = 0")?;
        writeln!(f, "request = function()")?;
        writeln!(f, "  i = i + 1")?;
        writeln!(f, "  return wrk.format(\"GET\", paths[(i % #paths) + 1])")?;
        writeln!(f, "end")?;
    }
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(base)
        .output();
    let _ = std::fs::remove_file(&script);
    let out = out?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        anyhow::bail!("wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    parse(&text).ok_or_else(|| anyhow::anyhow!("cannot read wrk's output:\n{text}"))
}

/// Reads `wrk --latency` output.
fn parse(text: &str) -> Option<Run> {
    let mut run = Run::default();
    let mut seen = (false, false, false);
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                run.rps = v.parse().ok()?;
                seen.0 = true;
            }
            (Some("50%"), Some(v)) => {
                run.p50_ms = millis(v)?;
                seen.1 = true;
            }
            (Some("99%"), Some(v)) => {
                run.p99_ms = millis(v)?;
                seen.2 = true;
            }
            (Some("Non-2xx"), _) => run.errors += line.rsplit(' ').next()?.parse::<u64>().ok()?,
            (Some("Socket"), Some("errors:")) => {
                // Socket errors: connect 0, read 0, write 0, timeout 0
                for part in line.trim_start_matches("Socket errors:").split(',') {
                    run.errors += part.split_whitespace().nth(1)?.parse::<u64>().ok()?;
                }
            }
            _ => {}
        }
    }
    (seen == (true, true, true)).then_some(run)
}

/// `812.00us`, `1.23ms`, `2.01s` in milliseconds.
fn millis(v: &str) -> Option<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 4s test @ http://127.0.0.1:1\n  2 threads and 64 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     5.10ms    2.00ms  40.00ms   90.00%\n  Latency Distribution\n     50%  812.00us\n     75%    1.23ms\n     90%    2.00ms\n     99%    2.01s\n  40000 requests in 4.00s, 10.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 7\nRequests/sec:  10000.50\nTransfer/sec:      2.50MB\n";
        let r = parse(text).unwrap();
        assert_eq!(r.rps, 10000.5);
        assert_eq!(r.p50_ms, 0.812);
        assert!((r.p99_ms - 2010.0).abs() < 1e-9, "{}", r.p99_ms);
        assert_eq!(r.errors, 12);
        assert!(parse("nothing").is_none());
    }
}
