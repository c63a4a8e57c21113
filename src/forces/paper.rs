//! Dates that happened on paper: a team filing received on paper three weeks ago is entered with
//! the day it was submitted, so its review clock (TEAM_FILING_PENDING) starts then, not when it
//! was typed in. Who entered it and when is the audit row of the create, import or resubmit.

use chrono::NaiveDate;

use crate::time::{LOCAL_TZ, Timestamp};

/// The instant a filing counts as submitted: the start of `submitted_on` (Asia/Shanghai) when
/// given, else `now`. A date after today is refused (it has not happened yet).
pub fn submitted_at(submitted_on: Option<NaiveDate>, now: Timestamp) -> Result<Timestamp, String> {
    let Some(day) = submitted_on else { return Ok(now) };
    let today = now.0.with_timezone(&LOCAL_TZ).date_naive();
    if day > today {
        return Err(format!("备案提交日期 {day} 晚于今天 {today}，不能填写未来的日期"));
    }
    let start = day
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(LOCAL_TZ).earliest())
        .ok_or_else(|| format!("备案提交日期 {day} 无效"))?;
    Ok(Timestamp(start.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_paper_date_starts_at_local_midnight_and_is_never_in_the_future() {
        let now = Timestamp(chrono::Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap()); // 08:00 in Shanghai
        let d = |s: &str| Some(s.parse::<NaiveDate>().unwrap());
        assert_eq!(submitted_at(None, now).unwrap(), now);
        assert_eq!(
            submitted_at(d("2026-11-06"), now).unwrap().0,
            chrono::Utc.with_ymd_and_hms(2026, 11, 5, 16, 0, 0).unwrap()
        );
        assert!(submitted_at(d("2026-11-27"), now).is_ok(), "today is allowed");
        assert!(submitted_at(d("2026-11-28"), now).is_err());
    }
}
