//! The working-day calendar: official holidays and make-up working days (调休) per year, from
//! `data/calendar/YYYY.toml` (compiled in) and optionally a configured directory. Years without
//! a file fall back to Monday–Friday.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, Months, NaiveDate, Weekday};
use serde::Deserialize;

/// The calendar files shipped with the service.
pub const SHIPPED: &[(&str, &str)] = &[("data/calendar/2026.toml", include_str!("../../data/calendar/2026.toml"))];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    #[allow(dead_code)]
    source: String,
    #[serde(default)]
    holidays: Vec<Holiday>,
    #[serde(default)]
    workdays: Vec<Workday>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Holiday {
    #[allow(dead_code)]
    name: String,
    from: toml::value::Datetime,
    to: toml::value::Datetime,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Workday {
    date: toml::value::Datetime,
    #[allow(dead_code)]
    name: String,
}

/// One year's official days off and make-up working days.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Year {
    /// Days off (holiday ranges expanded).
    pub holidays: BTreeSet<NaiveDate>,
    /// Make-up working days.
    pub workdays: BTreeSet<NaiveDate>,
}

/// Working days: the years that have a file, and Monday–Friday for the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calendar {
    years: BTreeMap<i32, Year>,
}

fn date_of(d: &toml::value::Datetime, what: &str) -> Result<NaiveDate, String> {
    match (&d.date, &d.time) {
        (Some(date), None) => NaiveDate::from_ymd_opt(date.year as i32, date.month as u32, date.day as u32)
            .ok_or_else(|| format!("{what} {d} 不是有效日期")),
        _ => Err(format!("{what} {d} 应为日期（如 2026-10-01），不带时间")),
    }
}

/// Parses one year's file; errors name the line.
pub fn parse_year(text: &str) -> Result<(i32, Year), String> {
    let f: YearFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut y = Year::default();
    let in_year = |d: NaiveDate| -> Result<NaiveDate, String> {
        if d.year() == f.year { Ok(d) } else { Err(format!("日期 {d} 不在文件所属的 {} 年内", f.year)) }
    };
    for h in &f.holidays {
        let from = in_year(date_of(&h.from, "from")?)?;
        let to = in_year(date_of(&h.to, "to")?)?;
        if to < from {
            return Err(format!("假期 {from} 至 {to}：结束日期早于开始日期"));
        }
        let mut d = from;
        while d <= to {
            y.holidays.insert(d);
            d = d.succ_opt().ok_or("日期溢出")?;
        }
    }
    for w in &f.workdays {
        let d = in_year(date_of(&w.date, "date")?)?;
        if y.holidays.contains(&d) {
            return Err(format!("{d} 同时被列为假日和调休上班日"));
        }
        y.workdays.insert(d);
    }
    Ok((f.year, y))
}

impl Calendar {
    /// The shipped calendar files.
    pub fn shipped() -> Result<Calendar, String> {
        let mut c = Calendar::default();
        for (name, text) in SHIPPED {
            let (year, y) = parse_year(text).map_err(|e| format!("{name}: {e}"))?;
            c.years.insert(year, y);
        }
        Ok(c)
    }

    /// The shipped calendar plus every `*.toml` in `dir` (a year in `dir` replaces the shipped
    /// one).
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Calendar> {
        let mut c = Calendar::shipped().map_err(|e| anyhow::anyhow!(e))?;
        let Some(dir) = dir else { return Ok(c) };
        let entries =
            std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("读取工作日历目录 {} 失败：{e}", dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("读取 {} 失败：{e}", p.display()))?;
            let (year, y) = parse_year(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            c.years.insert(year, y);
        }
        Ok(c)
    }

    /// Years that have a calendar file (the others are Monday–Friday).
    pub fn years(&self) -> Vec<i32> {
        self.years.keys().copied().collect()
    }

    /// Whether `d` is a working day.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if let Some(y) = self.years.get(&d.year()) {
            if y.workdays.contains(&d) {
                return true;
            }
            if y.holidays.contains(&d) {
                return false;
            }
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`-th working day after `start` (`start` itself not counted): "within 20 working
    /// days of issue" ends on `add_working_days(issued_on, 20)`.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut d = start;
        let mut left = n;
        while left > 0 {
            match d.succ_opt() {
                Some(next) => d = next,
                None => return d,
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }
}

/// `d` plus `months` calendar months (clamped to the month's end: 2026-01-31 + 1 = 2026-02-28).
pub fn add_months(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn shipped_2026_has_holidays_and_make_up_days() {
        let c = Calendar::shipped().unwrap();
        assert_eq!(c.years(), vec![2026]);
        assert!(!c.is_working_day(d(2026, 10, 1)));
        assert!(!c.is_working_day(d(2026, 9, 25)), "中秋 falls on a Friday");
        assert!(c.is_working_day(d(2026, 10, 10)), "Saturday make-up day");
        assert!(c.is_working_day(d(2026, 9, 20)), "Sunday make-up day");
        assert!(!c.is_working_day(d(2026, 10, 11)));
        // 2027 has no file: weekends only.
        assert!(c.is_working_day(d(2027, 10, 1)));
        assert!(!c.is_working_day(d(2027, 10, 2)));
    }

    #[test]
    fn twenty_working_days_across_national_day() {
        let c = Calendar::shipped().unwrap();
        // Issued Thu 2026-09-24: 25th–27th 中秋, 1st–7th 国庆, Sat 10th worked.
        assert_eq!(c.add_working_days(d(2026, 9, 24), 20), d(2026, 10, 29));
        // Weekends only, the same issue date would give 2026-10-22.
        assert_eq!(Calendar::default().add_working_days(d(2026, 9, 24), 20), d(2026, 10, 22));
        assert_eq!(c.add_working_days(d(2026, 3, 2), 20), d(2026, 3, 30));
    }

    #[test]
    fn bad_files_are_rejected_with_their_line() {
        let e =
            parse_year("year = 2026\nsource = \"x\"\n[[holidays]]\nname = \"a\"\nfrom = 2025-01-01\nto = 2026-01-02\n")
                .unwrap_err();
        assert!(e.contains("不在"), "{e}");
        let e = parse_year("year = 2026\nsource = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn a_configured_directory_adds_and_replaces_years() {
        let dir = std::env::temp_dir().join(format!("yingji-cal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("2027.toml"),
            "year = 2027\nsource = \"test\"\n[[holidays]]\nname = \"国庆节\"\nfrom = 2027-10-01\nto = 2027-10-07\n",
        )
        .unwrap();
        let c = Calendar::load(Some(&dir)).unwrap();
        assert_eq!(c.years(), vec![2026, 2027]);
        assert!(!c.is_working_day(d(2027, 10, 4)));
        std::fs::write(dir.join("2026.toml"), "year = 2026\nsource = \"x\"\n").unwrap();
        let c = Calendar::load(Some(&dir)).unwrap();
        assert!(c.is_working_day(d(2026, 9, 25)), "the configured 2026 replaces the shipped one");
        std::fs::write(dir.join("bad.toml"), "year = \"x\"\n").unwrap();
        let e = Calendar::load(Some(&dir)).unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn months_clamp_to_month_end() {
        assert_eq!(add_months(d(2026, 1, 31), 1), d(2026, 2, 28));
        assert_eq!(add_months(d(2026, 9, 24), 36), d(2029, 9, 24));
    }
}
