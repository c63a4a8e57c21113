//! Standard 5-field cron expressions (`minute hour day-of-month month day-of-week`), validated
//! field by field and converted to the `cron` crate's form.
//!
//! Every field accepts `*`, numbers, ranges `a-b`, steps `/n` and lists `a,b`; the month field
//! also takes `JAN`–`DEC` and the day of week `SUN`–`SAT` (any case). Errors name the field and
//! its allowed range. Two differences from the crate need care: the crate wants a seconds field
//! and numbers days of the week 1–7 from Sunday, while standard cron numbers them 0–7 with 0 and
//! 7 both Sunday and 1 Monday; and when both day-of-month and day-of-week are restricted,
//! standard cron fires when *either* matches (the Vixie rule; a field counts as restricted unless
//! it starts with `*`), while the crate requires both. So each field is expanded to explicit
//! values, and an expression restricting both days becomes two schedules whose next occurrences
//! are merged.
//!
//! Daylight-saving time is handled as cron does: the expression is matched against the local
//! wall clock; a wall-clock time skipped by a change (spring forward) runs right after the
//! change, and a time that occurs twice (fall back) runs once, the first time.

use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

/// One field's rules: its Chinese name, allowed range, and names (with the value of the first).
struct FieldSpec {
    label: &'static str,
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
    first_name: u32,
}

const MINUTE: FieldSpec = FieldSpec { label: "分", lo: 0, hi: 59, names: &[], first_name: 0 };
const HOUR: FieldSpec = FieldSpec { label: "时", lo: 0, hi: 23, names: &[], first_name: 0 };
const DOM: FieldSpec = FieldSpec { label: "日", lo: 1, hi: 31, names: &[], first_name: 0 };
const MONTH: FieldSpec = FieldSpec { label: "月", lo: 1, hi: 12, names: &MONTH_NAMES, first_name: 1 };
const DOW: FieldSpec = FieldSpec { label: "星期", lo: 0, hi: 7, names: &DAY_NAMES, first_name: 0 };

impl FieldSpec {
    fn allowed(&self) -> String {
        let mut s = format!("{}–{}", self.lo, self.hi);
        if let (Some(a), Some(b)) = (self.names.first(), self.names.last()) {
            s.push_str(&format!(" 或 {a}–{b}"));
        }
        if self.label == "星期" {
            s.push_str("，0 和 7 为星期日");
        }
        s
    }

    fn error(&self, field: &str, why: &str) -> String {
        format!("cron 字段「{}」{field:?} 无效：{why}（允许 {}，可用 * , - /）", self.label, self.allowed())
    }

    fn value(&self, field: &str, s: &str) -> Result<u32, String> {
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + self.first_name);
        }
        match s.parse::<u32>() {
            Ok(n) if (self.lo..=self.hi).contains(&n) => Ok(n),
            Ok(n) => Err(self.error(field, &format!("{n} 超出范围 {}–{}", self.lo, self.hi))),
            Err(_) if s.is_empty() => Err(self.error(field, "缺少数值（负数不允许）")),
            Err(_) => Err(self.error(field, &format!("{s:?} 不是数值{}", self.name_hint()))),
        }
    }

    fn name_hint(&self) -> &'static str {
        if self.names.is_empty() { "" } else { "或名称" }
    }

    /// The set of values the field selects, in order.
    fn expand(&self, field: &str) -> Result<Vec<u32>, String> {
        if field.is_empty() {
            return Err(self.error(field, "字段为空"));
        }
        let mut on = vec![false; self.hi as usize + 1];
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => match s.parse::<u32>() {
                    Ok(s) if s > 0 && s <= self.hi.max(1) => (r, s),
                    _ => return Err(self.error(field, &format!("步长 {s:?} 应为 1–{} 的整数", self.hi.max(1)))),
                },
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.lo, if self.label == "星期" { 6 } else { self.hi })
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(field, a)?, self.value(field, b)?)
            } else {
                let v = self.value(field, range)?;
                (v, if part.contains('/') { self.hi } else { v })
            };
            if lo > hi {
                return Err(self.error(field, &format!("范围起点 {lo} 大于终点 {hi}")));
            }
            let mut v = lo;
            while v <= hi {
                on[v as usize] = true;
                v += step;
            }
        }
        Ok((0..on.len() as u32).filter(|v| on[*v as usize]).collect())
    }
}

fn join(values: &[u32]) -> String {
    values.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// A validated standard cron expression.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    schedules: Vec<cron::Schedule>,
}

impl CronExpr {
    /// Parses a standard 5-field expression; the error names the field and its allowed range,
    /// in Chinese.
    pub fn parse(source: &str) -> Result<CronExpr, String> {
        let fields: Vec<&str> = source.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "cron 表达式 {source:?} 应有 5 个字段：分 时 日 月 星期（例如 \"0 8 * * *\" 表示每天 08:00）"
            ));
        }
        let (minute, hour, dom, month, dow) = (fields[0], fields[1], fields[2], fields[3], fields[4]);
        let minutes = join(&MINUTE.expand(minute)?);
        let hours = join(&HOUR.expand(hour)?);
        let doms = join(&DOM.expand(dom)?);
        let months = join(&MONTH.expand(month)?);
        let mut days: Vec<u32> = DOW.expand(dow)?.into_iter().map(|d| d % 7).collect();
        days.sort_unstable();
        days.dedup();
        let dow_list = days.iter().map(|d| DAY_NAMES[*d as usize]).collect::<Vec<_>>().join(",");
        let variants: Vec<(String, String)> = if !dom.starts_with('*') && !dow.starts_with('*') {
            vec![(doms, "*".to_string()), ("*".to_string(), dow_list)]
        } else if dom.starts_with('*') && !dom.contains('/') {
            vec![("*".to_string(), dow_list)]
        } else {
            vec![(doms, dow_list)]
        };
        let mut schedules = Vec::new();
        for (d, w) in variants {
            let expr = format!("0 {minutes} {hours} {d} {months} {w}");
            let s = cron::Schedule::from_str(&expr).map_err(|e| format!("cron 表达式 {source:?} 无效：{e}"))?;
            schedules.push(s);
        }
        Ok(CronExpr { source: source.trim().to_string(), schedules })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first wall-clock match strictly after `t` (no zone: the expression's own calendar).
    fn next_naive(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        self.schedules.iter().filter_map(|s| s.after(&t.and_utc()).next()).min().map(|d| d.naive_utc())
    }

    /// The last wall-clock match strictly before `t`.
    fn prev_naive(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        self.schedules.iter().filter_map(|s| s.after(&t.and_utc()).next_back()).max().map(|d| d.naive_utc())
    }

    /// The first occurrence strictly after `after`, in `after`'s time zone. A wall-clock time
    /// skipped by a daylight-saving change fires at the first instant after the change; a time
    /// that occurs twice fires at its first occurrence only.
    pub fn next_after<Z: TimeZone>(&self, after: &DateTime<Z>) -> Option<DateTime<Z>> {
        let tz = after.timezone();
        let mut naive = after.naive_local();
        // Bounded: a repeated hour can hold at most 60 × 24 candidates that map before `after`.
        for _ in 0..2_000 {
            naive = self.next_naive(naive)?;
            let t = resolve(&tz, naive)?;
            if t > *after {
                return Some(t);
            }
        }
        None
    }

    /// The last occurrence strictly before `before` (the inverse of [`CronExpr::next_after`]).
    pub fn prev_before<Z: TimeZone>(&self, before: &DateTime<Z>) -> Option<DateTime<Z>> {
        let tz = before.timezone();
        // Start a few hours later on the wall clock: during a repeated hour, later wall-clock
        // times can map to earlier instants.
        let mut naive = before.naive_local() + Duration::hours(3);
        let mut best: Option<DateTime<Z>> = None;
        for _ in 0..4_000 {
            naive = self.prev_naive(naive)?;
            let t = resolve(&tz, naive)?;
            if t < *before {
                if best.as_ref().is_none_or(|b| t > *b) {
                    best = Some(t);
                }
                // Once the wall clock is 3 h behind `before`, nothing earlier can map later.
                if naive + Duration::hours(3) < before.naive_local() {
                    return best;
                }
            }
        }
        best
    }
}

/// The instant a wall-clock time denotes in `tz`: the first of two in a repeated hour, the
/// first existing instant after a skipped one.
fn resolve<Z: TimeZone>(tz: &Z, naive: NaiveDateTime) -> Option<DateTime<Z>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(first, _) => Some(first),
        LocalResult::None => {
            // In a gap: step forward minute by minute to the first wall-clock time that exists
            // (the moment of the change). Gaps are at most a day long.
            let start = naive.and_utc().timestamp() / 60 * 60;
            let mut m = chrono::DateTime::<Utc>::from_timestamp(start, 0)?.naive_utc();
            for _ in 0..(48 * 60) {
                m += Duration::minutes(1);
                match tz.from_local_datetime(&m) {
                    LocalResult::Single(t) => return Some(t),
                    LocalResult::Ambiguous(first, _) => return Some(first),
                    LocalResult::None => {}
                }
            }
            None
        }
    }
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

    #[test]
    fn month_and_day_names_are_standard() {
        let from = Shanghai.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
        let jul = CronExpr::parse("0 9 * JUL *").unwrap().next_after(&from).unwrap();
        assert_eq!(jul, Shanghai.with_ymd_and_hms(2027, 7, 1, 9, 0, 0).unwrap());
        let dec = CronExpr::parse("0 9 1 dec *").unwrap().next_after(&from).unwrap();
        assert_eq!(dec, Shanghai.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
        // 2026-11-29 is a Sunday.
        let sun = CronExpr::parse("30 7 * * SUN").unwrap().next_after(&from).unwrap();
        assert_eq!(sun, Shanghai.with_ymd_and_hms(2026, 11, 29, 7, 30, 0).unwrap());
        let range = CronExpr::parse("0 8 * JUN-AUG MON-FRI").unwrap().next_after(&from).unwrap();
        assert_eq!(range, Shanghai.with_ymd_and_hms(2027, 6, 1, 8, 0, 0).unwrap());
        for expr in ["0 0 1 JAN,APR,JUL,OCT *", "0 0 * FEB SAT", "0 0 * NOV-DEC SUN,WED", "15 10 * * 0-6/2"] {
            assert!(CronExpr::parse(expr).is_ok(), "{expr}");
        }
    }

    #[test]
    fn errors_name_the_field_and_its_range() {
        let e = CronExpr::parse("60 * * * *").unwrap_err();
        assert!(e.contains("「分」") && e.contains("60 超出范围 0–59"), "{e}");
        let e = CronExpr::parse("-1 * * * *").unwrap_err();
        assert!(e.contains("「分」") && e.contains("0–59") && !e.contains("月"), "{e}");
        let e = CronExpr::parse("0 24 * * *").unwrap_err();
        assert!(e.contains("「时」") && e.contains("0–23"), "{e}");
        let e = CronExpr::parse("0 0 0 * *").unwrap_err();
        assert!(e.contains("「日」") && e.contains("1–31"), "{e}");
        let e = CronExpr::parse("0 0 * 13 *").unwrap_err();
        assert!(e.contains("「月」") && e.contains("1–12 或 JAN–DEC"), "{e}");
        let e = CronExpr::parse("0 0 * JUX *").unwrap_err();
        assert!(e.contains("「月」") && e.contains("JUX"), "{e}");
        let e = CronExpr::parse("0 0 * * 8").unwrap_err();
        assert!(e.contains("「星期」") && e.contains("0–7"), "{e}");
        let e = CronExpr::parse("0 0 L * *").unwrap_err();
        assert!(e.contains("「日」"), "{e}");
        let e = CronExpr::parse("*/0 * * * *").unwrap_err();
        assert!(e.contains("步长"), "{e}");
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_runs_right_after_the_change() {
        use chrono_tz::America::New_York;
        use chrono_tz::Europe::Berlin;
        // 2027-03-14 02:00 EST jumps to 03:00 EDT in New York: 02:30 runs at 03:00 EDT.
        let c = CronExpr::parse("30 2 14 3 *").unwrap();
        let t = c.next_after(&New_York.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap()).unwrap();
        assert_eq!(t.with_timezone(&Utc), Utc.with_ymd_and_hms(2027, 3, 14, 7, 0, 0).unwrap());
        // Berlin, 2027-03-28: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let c = CronExpr::parse("30 2 * * *").unwrap();
        let before = Berlin.with_ymd_and_hms(2027, 3, 26, 12, 0, 0).unwrap();
        let t = c.next_after(&before).unwrap();
        assert_eq!(t.with_timezone(&Utc), Utc.with_ymd_and_hms(2027, 3, 27, 1, 30, 0).unwrap());
        let gap = c.next_after(&t).unwrap();
        assert_eq!(gap.with_timezone(&Utc), Utc.with_ymd_and_hms(2027, 3, 28, 1, 0, 0).unwrap());
        let after_gap = c.next_after(&gap).unwrap();
        assert_eq!(after_gap.with_timezone(&Utc), Utc.with_ymd_and_hms(2027, 3, 29, 0, 30, 0).unwrap());
        assert_eq!(c.prev_before(&after_gap).unwrap(), gap);
        // Every quarter hour across the gap: 01:45 CET, then 03:00 CEST once, then 03:15.
        let q = CronExpr::parse("*/15 * * * *").unwrap();
        let mut t = Berlin.with_ymd_and_hms(2027, 3, 28, 1, 30, 0).unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            t = q.next_after(&t).unwrap();
            got.push(t.with_timezone(&Utc).format("%H:%M").to_string());
        }
        assert_eq!(got, vec!["00:45", "01:00", "01:15", "01:30"]);
    }

    #[test]
    fn a_time_repeated_by_daylight_saving_runs_once() {
        use chrono_tz::Europe::Berlin;
        // Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let c = CronExpr::parse("30 2 * * *").unwrap();
        let t = c.next_after(&Berlin.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap()).unwrap();
        assert_eq!(t.with_timezone(&Utc), Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
        let next = c.next_after(&t).unwrap();
        assert_eq!(next.with_timezone(&Utc), Utc.with_ymd_and_hms(2026, 10, 26, 1, 30, 0).unwrap());
        assert_eq!(c.prev_before(&next).unwrap(), t);
        // Asked from inside the second 02:xx hour, the next run is the next day's.
        let second_pass = Utc.with_ymd_and_hms(2026, 10, 25, 1, 10, 0).unwrap().with_timezone(&Berlin);
        assert_eq!(c.next_after(&second_pass).unwrap(), next);
        assert_eq!(c.prev_before(&second_pass).unwrap(), t);
    }
}
