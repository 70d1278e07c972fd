//! The trading calendar: which dates trade (weekdays that are not holidays)
//! and which close early. Pure: dates in, dates out.
//!
//! The NYSE calendar for 2026–2027 is compiled in from
//! `data/nyse_calendar.toml`; a file of the same format can replace it
//! (`[clock] calendar_file`). Outside the dates the data covers, only
//! weekends are closed.

use std::collections::BTreeSet;
use std::ops::Bound::{Excluded, Included};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;

/// The compiled-in calendar (NYSE, 2026 and 2027).
pub const BUILTIN_CALENDAR_TOML: &str = include_str!("../data/nyse_calendar.toml");

/// Longest run of consecutive non-trading days a calendar may describe.
/// Every search for "the next trading day" is bounded by it.
pub const MAX_NON_TRADING_RUN_DAYS: u64 = 31;

/// Holidays and early-close days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    holidays: BTreeSet<NaiveDate>,
    early_closes: BTreeSet<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    early_closes: Vec<String>,
}

impl Calendar {
    /// The compiled-in NYSE calendar for 2026–2027.
    pub fn builtin() -> Calendar {
        // The file is part of the source and held to this by a unit test.
        Calendar::parse(BUILTIN_CALENDAR_TOML).expect("the built-in calendar is valid")
    }

    /// A calendar with no holidays and no early closes (weekends only).
    pub fn weekends_only() -> Calendar {
        Calendar {
            holidays: BTreeSet::new(),
            early_closes: BTreeSet::new(),
        }
    }

    /// Parses `holidays = ["YYYY-MM-DD", ...]` and `early_closes = [...]`.
    pub fn parse(text: &str) -> Result<Calendar, String> {
        let file: CalendarFile =
            toml::from_str(text).map_err(|e| format!("calendar is not valid: {e}"))?;
        let dates = |list: &[String], what: &str| -> Result<BTreeSet<NaiveDate>, String> {
            list.iter()
                .map(|s| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map_err(|_| format!("{what}: {s:?} is not a YYYY-MM-DD date"))
                })
                .collect()
        };
        let calendar = Calendar {
            holidays: dates(&file.holidays, "holidays")?,
            early_closes: dates(&file.early_closes, "early_closes")?,
        };
        calendar.check_runs()?;
        Ok(calendar)
    }

    /// Refuses a calendar with more than `MAX_NON_TRADING_RUN_DAYS`
    /// consecutive non-trading days (which would stall the clock).
    fn check_runs(&self) -> Result<(), String> {
        let (Some(&first), Some(&last)) = (self.holidays.first(), self.holidays.last()) else {
            return Ok(());
        };
        let mut run = 0;
        let mut date = first;
        while date <= last {
            if self.is_trading_day(date) {
                run = 0;
            } else {
                run += 1;
                if run > MAX_NON_TRADING_RUN_DAYS {
                    return Err(format!(
                        "calendar closes more than {MAX_NON_TRADING_RUN_DAYS} days in a row (around {date})"
                    ));
                }
            }
            date = next_day(date);
        }
        Ok(())
    }

    pub fn holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied()
    }

    /// A weekday that is not a holiday.
    pub fn is_trading_day(&self, date: NaiveDate) -> bool {
        is_weekday(date) && !self.holidays.contains(&date)
    }

    /// A trading day listed as an early close (a listed date that does not
    /// trade is simply closed).
    pub fn is_early_close(&self, date: NaiveDate) -> bool {
        self.early_closes.contains(&date) && self.is_trading_day(date)
    }

    /// `date` if it trades, else the first trading day after it.
    pub fn trading_day_on_or_after(&self, date: NaiveDate) -> NaiveDate {
        let mut day = date;
        // A checked run may extend past the holidays by a weekend each side.
        for _ in 0..=MAX_NON_TRADING_RUN_DAYS + 4 {
            if self.is_trading_day(day) {
                return day;
            }
            day = next_day(day);
        }
        unreachable!("calendars are checked for runs of closed days (from {date})")
    }

    /// The first trading day strictly after `date`.
    pub fn trading_day_after(&self, date: NaiveDate) -> NaiveDate {
        self.trading_day_on_or_after(next_day(date))
    }

    /// Trading days in `(after, through]`; 0 when `through <= after`.
    pub fn trading_days_in(&self, after: NaiveDate, through: NaiveDate) -> u64 {
        if through <= after {
            return 0;
        }
        let span = u64::try_from((through - after).num_days()).unwrap_or(0);
        let weeks = span / 7;
        let mut weekdays = weeks * 5;
        // The remainder: fewer than 7 days after the whole weeks.
        let mut day = after + Days::new(weeks * 7);
        while day < through {
            day = next_day(day);
            if is_weekday(day) {
                weekdays += 1;
            }
        }
        let holidays = self
            .holidays
            .range((Excluded(after), Included(through)))
            .filter(|d| is_weekday(**d))
            .count() as u64;
        weekdays - holidays
    }

    /// The `n`-th trading day after `from` (`from` itself for 0).
    pub fn add_trading_days(&self, from: NaiveDate, n: u64) -> NaiveDate {
        let mut date = from;
        let mut left = n;
        // Whole weeks first: `(date, date + 7w]` holds 5w weekdays, minus
        // the holidays among them; never overshoots because 5w <= left - 5.
        while left > 10 {
            let weeks = (left - 5) / 5;
            let target = date + Days::new(weeks * 7);
            let trading = self.trading_days_in(date, target);
            if trading == 0 {
                break;
            }
            left -= trading;
            date = target;
        }
        while left > 0 {
            date = self.trading_day_after(date);
            left -= 1;
        }
        date
    }
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn next_day(date: NaiveDate) -> NaiveDate {
    date.succ_opt().unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    /// The n-th `weekday` of a month (1-based), or the last one for n = 0.
    fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> NaiveDate {
        if n == 0 {
            let next_month = if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 1)
            }
            .expect("date");
            let mut day = next_month.pred_opt().expect("date");
            while day.weekday() != weekday {
                day = day.pred_opt().expect("date");
            }
            return day;
        }
        NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).expect("date")
    }

    /// A fixed holiday moved to Friday when on Saturday, Monday when on Sunday.
    fn observed(year: i32, month: u32, day: u32) -> NaiveDate {
        let date = NaiveDate::from_ymd_opt(year, month, day).expect("date");
        match date.weekday() {
            Weekday::Sat => date.pred_opt().expect("date"),
            Weekday::Sun => date.succ_opt().expect("date"),
            _ => date,
        }
    }

    #[test]
    fn the_builtin_calendar_follows_the_nyse_rules_for_2026_and_2027() {
        let calendar = Calendar::builtin();
        // Good Friday from the Easter dates (April 5, 2026; March 28, 2027).
        let good_friday = [d("2026-04-03"), d("2027-03-26")];
        for (year, good_friday) in [2026, 2027].into_iter().zip(good_friday) {
            let mut expected = BTreeSet::from([
                nth_weekday(year, 1, Weekday::Mon, 3),
                nth_weekday(year, 2, Weekday::Mon, 3),
                good_friday,
                nth_weekday(year, 5, Weekday::Mon, 0),
                observed(year, 6, 19),
                observed(year, 7, 4),
                nth_weekday(year, 9, Weekday::Mon, 1),
                nth_weekday(year, 11, Weekday::Thu, 4),
                observed(year, 12, 25),
            ]);
            // New Year's Day on a Saturday is not observed on the Friday before.
            let new_year = NaiveDate::from_ymd_opt(year, 1, 1).expect("date");
            if new_year.weekday() != Weekday::Sat {
                expected.insert(observed(year, 1, 1));
            }
            let actual: BTreeSet<_> = calendar.holidays().filter(|h| h.year() == year).collect();
            assert_eq!(actual, expected, "{year}");
        }
        let brief = [
            "2026-01-01",
            "2026-01-19",
            "2026-02-16",
            "2026-04-03",
            "2026-05-25",
            "2026-06-19",
            "2026-07-03",
            "2026-09-07",
            "2026-11-26",
            "2026-12-25",
            "2027-01-01",
            "2027-01-18",
            "2027-02-15",
            "2027-03-26",
            "2027-05-31",
            "2027-06-18",
            "2027-07-05",
            "2027-09-06",
            "2027-11-25",
            "2027-12-24",
        ];
        for holiday in brief {
            assert!(!calendar.is_trading_day(d(holiday)), "{holiday}");
        }
        for early in ["2026-11-27", "2026-12-24", "2027-11-26"] {
            assert!(calendar.is_early_close(d(early)), "{early}");
        }
        assert!(!calendar.is_early_close(d("2026-07-02")));
        assert!(
            calendar.is_trading_day(d("2027-12-31")),
            "no observed New Year 2028"
        );
        assert!(!calendar.is_trading_day(d("2026-11-28")), "Saturday");
        assert!(calendar.is_trading_day(d("2026-11-30")));
    }

    #[test]
    fn an_early_close_applies_only_to_a_trading_day() {
        let calendar = Calendar::parse(
            "holidays = [\"2026-07-03\"]\nearly_closes = [\"2026-07-03\", \"2026-07-04\", \"2026-07-02\"]",
        )
        .expect("calendar");
        assert!(!calendar.is_early_close(d("2026-07-03")), "a holiday");
        assert!(!calendar.is_early_close(d("2026-07-04")), "a Saturday");
        assert!(calendar.is_early_close(d("2026-07-02")));
    }

    #[test]
    fn bad_calendars_are_refused() {
        assert!(Calendar::parse("holidays = [\"2026-13-01\"]").is_err());
        assert!(Calendar::parse("holiday = []").is_err());
        let month: Vec<String> = (1..=31)
            .map(|day| format!("\"2026-01-{day:02}\""))
            .collect();
        let long = format!("holidays = [{}, \"2026-02-02\"]", month.join(", "));
        assert!(Calendar::parse(&long).is_err(), "a closed month and more");
        assert_eq!(
            Calendar::parse("").expect("empty"),
            Calendar::weekends_only()
        );
    }

    #[test]
    fn next_trading_days_skip_weekends_and_holidays() {
        let calendar = Calendar::builtin();
        assert_eq!(
            calendar.trading_day_on_or_after(d("2026-11-26")),
            d("2026-11-27")
        );
        assert_eq!(calendar.trading_day_after(d("2026-11-27")), d("2026-11-30"));
        assert_eq!(calendar.trading_day_after(d("2026-12-24")), d("2026-12-28"));
        assert_eq!(
            calendar.trading_day_on_or_after(d("2027-01-01")),
            d("2027-01-04")
        );
    }

    #[test]
    fn counting_and_adding_trading_days_agree_with_stepping() {
        let calendar = Calendar::builtin();
        let from = d("2025-12-29");
        let mut date = from;
        for n in 0..600u64 {
            assert_eq!(calendar.add_trading_days(from, n), date, "n = {n}");
            assert_eq!(calendar.trading_days_in(from, date), n, "through {date}");
            date = calendar.trading_day_after(date);
        }
        assert_eq!(
            calendar.trading_days_in(d("2026-01-05"), d("2026-01-05")),
            0
        );
        assert_eq!(
            calendar.trading_days_in(d("2026-01-05"), d("2026-01-01")),
            0
        );
    }
}
