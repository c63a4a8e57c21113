//! Standard 5-field cron expressions (`minute hour day-of-month month day-of-week`), converted to
//! the `cron` crate's form.
//!
//! Two differences need care: the crate wants a seconds field and numbers days of the week 1–7
//! from Sunday, while standard cron numbers them 0–7 with 0 and 7 both Sunday and 1 Monday; and
//! when both day-of-month and day-of-week are restricted, standard cron fires when *either*
//! matches (the Vixie rule; a field counts as restricted unless it starts with `*`), while the
//! crate requires both. So day-of-week is expanded to explicit day names, and an expression
//! restricting both days becomes two schedules whose next occurrences are merged.

use std::str::FromStr;

use chrono::{DateTime, TimeZone};

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A validated standard cron expression.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    schedules: Vec<cron::Schedule>,
}

impl CronExpr {
    /// Parses a standard 5-field expression; the error says what is wrong in Chinese.
    pub fn parse(source: &str) -> Result<CronExpr, String> {
        let fields: Vec<&str> = source.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "cron 表达式 {source:?} 应有 5 个字段：分 时 日 月 星期（例如 \"0 8 * * *\" 表示每天 08:00）"
            ));
        }
        let (minute, hour, dom, month, dow) = (fields[0], fields[1], fields[2], fields[3], fields[4]);
        for (name, f) in [("分", minute), ("时", hour), ("日", dom), ("月", month)] {
            if f.contains('?') || f.contains('L') || f.contains('W') || f.contains('#') {
                return Err(format!("cron 字段「{name}」中的 {f:?} 不是标准 cron 写法"));
            }
        }
        let days = expand_dow(dow)?;
        let dow_list = days.iter().map(|d| DAY_NAMES[*d as usize]).collect::<Vec<_>>().join(",");
        let variants: Vec<(String, String)> = if !dom.starts_with('*') && !dow.starts_with('*') {
            vec![(dom.to_string(), "*".to_string()), ("*".to_string(), dow_list)]
        } else {
            vec![(dom.to_string(), dow_list)]
        };
        let mut schedules = Vec::new();
        for (d, w) in variants {
            let expr = format!("0 {minute} {hour} {d} {month} {w}");
            let s = cron::Schedule::from_str(&expr).map_err(|e| format!("cron 表达式 {source:?} 无效：{e}"))?;
            schedules.push(s);
        }
        Ok(CronExpr { source: source.trim().to_string(), schedules })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first occurrence strictly after `after`, in `after`'s time zone.
    pub fn next_after<Z: TimeZone>(&self, after: &DateTime<Z>) -> Option<DateTime<Z>> {
        self.schedules.iter().filter_map(|s| s.after(after).next()).min()
    }
}

/// Expands a standard day-of-week field to the set of days (0 = Sunday … 6 = Saturday).
fn expand_dow(field: &str) -> Result<Vec<u8>, String> {
    let bad = |why: &str| format!("星期字段 {field:?} 无效：{why}（0–7，0 和 7 为星期日，1 为星期一，或 SUN–SAT）");
    let value = |s: &str| -> Result<u8, String> {
        if let Some(i) = DAY_NAMES.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u8);
        }
        match s.parse::<u8>() {
            Ok(n) if n <= 7 => Ok(n),
            _ => Err(bad(&format!("{s:?} 不是星期值"))),
        }
    };
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u8>().ok().filter(|s| *s > 0).ok_or_else(|| bad("步长应为正整数"))?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { 6 } else { v })
        };
        if lo > hi {
            return Err(bad("范围起点大于终点"));
        }
        let mut d = lo;
        while d <= hi {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    Ok((0..7u8).filter(|d| days[*d as usize]).collect())
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Duration, Timelike, Utc};
    use chrono_tz::Asia::Shanghai;

    use super::*;

    /// Standard cron semantics, written independently of the conversion: does `t` match?
    fn standard_matches(expr: &str, t: &DateTime<chrono_tz::Tz>) -> bool {
        let f: Vec<&str> = expr.split_whitespace().collect();
        let in_field = |field: &str, v: u32, lo: u32, hi: u32, sunday7: bool| -> bool {
            field.split(',').any(|part| {
                let (range, step) = part.split_once('/').map(|(r, s)| (r, s.parse().unwrap())).unwrap_or((part, 1));
                let (a, b) = if range == "*" {
                    (lo, hi)
                } else if let Some((a, b)) = range.split_once('-') {
                    (a.parse().unwrap(), b.parse().unwrap())
                } else {
                    let a: u32 = range.parse().unwrap();
                    (a, if part.contains('/') { hi } else { a })
                };
                (a..=b).step_by(step).any(|x| x == v || (sunday7 && x == 7 && v == 0))
            })
        };
        let dom_ok = in_field(f[2], t.day(), 1, 31, false);
        let dow_ok = in_field(f[4], t.weekday().num_days_from_sunday(), 0, 7, true);
        let days_ok = match (f[2].starts_with('*'), f[4].starts_with('*')) {
            (false, false) => dom_ok || dow_ok,
            _ => dom_ok && dow_ok,
        };
        in_field(f[0], t.minute(), 0, 59, false)
            && in_field(f[1], t.hour(), 0, 23, false)
            && days_ok
            && in_field(f[3], t.month(), 1, 12, false)
    }

    #[test]
    fn conversion_gives_the_standard_instants() {
        let start = Shanghai.with_ymd_and_hms(2026, 12, 20, 0, 0, 0).unwrap();
        for expr in [
            "0 8 * * *",
            "30 7 * * 1",
            "0 9 * * 0",
            "0 9 * * 7",
            "0 9 * * 1-5",
            "15 6 * * 5-7",
            "0 20 1 * *",
            "0 10 13 * 5",
            "0 0 1,15 * 3",
            "*/20 6-7 * * 6",
            "0 12 */10 * *",
            "0 8 * * */2",
            "0 8 31 * *",
            "45 23 28-31 2 *",
        ] {
            let cron = CronExpr::parse(expr).unwrap();
            let mut expected = Vec::new();
            let mut t = start;
            while t < start + Duration::days(75) && expected.len() < 40 {
                t += Duration::minutes(1);
                if standard_matches(expr, &t) {
                    expected.push(t);
                }
            }
            let mut got = Vec::new();
            let mut cur = start;
            while got.len() < expected.len() {
                cur = cron.next_after(&cur).unwrap();
                got.push(cur);
            }
            assert!(!expected.is_empty(), "{expr} never fired in the window");
            assert_eq!(got, expected, "{expr}");
        }
    }

    #[test]
    fn names_and_errors() {
        let c = CronExpr::parse("0 8 * * MON").unwrap();
        let t = c.next_after(&Shanghai.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap()).unwrap();
        assert_eq!(t, Shanghai.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap());
        assert!(CronExpr::parse("0 8 * *").is_err());
        assert!(CronExpr::parse("0 8 * * 8").is_err());
        assert!(CronExpr::parse("61 8 * * *").is_err());
        assert!(CronExpr::parse("0 8 ? * 1").is_err());
        // The schedule is read in the zone of the instant it is asked about.
        let from = Utc.with_ymd_and_hms(2026, 11, 26, 16, 0, 0).unwrap();
        let local = c.next_after(&from.with_timezone(&Shanghai)).unwrap();
        assert_eq!(local.with_timezone(&Utc), Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap());
    }
}
