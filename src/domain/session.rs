//! The trading day: the calendar of sessions the venue publishes (synced
//! into orderd), and the rules that stand in for it where it has no word
//! (before the first sync, or past its horizon): the exchange's timezone,
//! the regular session's open and close on weekdays. From them: whether
//! the market is open, the next open and close, and when an order expires.
//! Pure: `now` is an argument.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::order::TimeInForce;

/// How orderd's trading day is shaped (`[market]` in the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    /// The exchange's timezone (America/New_York).
    pub timezone: Tz,
    /// Local time the regular session opens (09:30).
    pub open: NaiveTime,
    /// Local time the regular session closes (16:00).
    pub close: NaiveTime,
    /// Days a GTC order lives before it expires at that day's close (90,
    /// as at Alpaca).
    pub gtc_horizon_days: u32,
}

impl SessionRules {
    /// New York's regular session: closes 16:00 local, GTC for 90 days.
    pub const NEW_YORK: SessionRules = SessionRules {
        timezone: chrono_tz::America::New_York,
        open: match NaiveTime::from_hms_opt(9, 30, 0) {
            Some(open) => open,
            None => NaiveTime::MIN,
        },
        close: match NaiveTime::from_hms_opt(16, 0, 0) {
            Some(close) => close,
            None => NaiveTime::MIN,
        },
        gtc_horizon_days: 90,
    };

    /// The first session close strictly after `now`.
    pub fn next_close(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.next_at(self.close, now)
    }

    /// The first session open strictly after `now`.
    pub fn next_open(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.next_at(self.open, now)
    }

    /// Whether a weekday's regular session is in progress at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let day = now.with_timezone(&self.timezone).date_naive();
        match (self.at(day, self.open), self.at(day, self.close)) {
            (Some(open), Some(close)) => open <= now && now < close,
            _ => false,
        }
    }

    /// The first weekday instant at local time `time` strictly after `now`.
    fn next_at(&self, time: NaiveTime, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut day = now.with_timezone(&self.timezone).date_naive();
        // A week always holds a weekday whose instant is after `now`; the
        // bound only keeps a malformed timezone from looping.
        for _ in 0..8 {
            if let Some(at) = self.at(day, time)
                && at > now
            {
                return at;
            }
            day = day + Days::new(1);
        }
        now + chrono::Duration::days(1)
    }

    /// Local `time` on `day` in UTC, or `None` on a weekend.
    fn at(&self, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            return None;
        }
        // An instant inside a DST gap or overlap takes the earliest one.
        self.timezone
            .from_local_datetime(&day.and_time(time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// When an order entered at `now` with `time_in_force` expires: the
    /// session's close for day orders (and for IOC and FOK, which end
    /// sooner, and CLS, which executes at it), the open for OPG (which
    /// executes in the opening auction or not at all), the close after the
    /// horizon for GTC.
    pub fn expires_at(&self, time_in_force: TimeInForce, now: DateTime<Utc>) -> DateTime<Utc> {
        match time_in_force {
            TimeInForce::Day | TimeInForce::Ioc | TimeInForce::Fok | TimeInForce::Cls => {
                self.next_close(now)
            }
            TimeInForce::Opg => self.next_open(now),
            TimeInForce::Gtc => {
                let horizon = chrono::Duration::days(i64::from(self.gtc_horizon_days));
                self.next_close(now + horizon - chrono::Duration::days(1))
            }
        }
    }
}

/// One trading day as the venue publishes it: when trading opens (the
/// opening auction executes), when the closing auction starts taking no
/// more CLS orders, and when it executes and the session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDay {
    pub date: NaiveDate,
    pub pre_open: DateTime<Utc>,
    pub open: DateTime<Utc>,
    pub closing_auction: DateTime<Utc>,
    pub close: DateTime<Utc>,
    pub early_close: bool,
}

/// What `GET /v2/clock` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub timestamp: DateTime<Utc>,
    pub is_open: bool,
    pub next_open: DateTime<Utc>,
    pub next_close: DateTime<Utc>,
}

/// The calendar orderd knows, in date order, with the rules that answer
/// where it has no session (before the first sync, or past its end).
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    days: Vec<SessionDay>,
    rules: SessionRules,
}

impl Calendar {
    /// `days` in any order; sorted here by their open.
    pub fn new(mut days: Vec<SessionDay>, rules: SessionRules) -> Self {
        days.sort_by_key(|d| d.open);
        Self { days, rules }
    }

    pub fn days(&self) -> &[SessionDay] {
        &self.days
    }

    pub fn rules(&self) -> &SessionRules {
        &self.rules
    }

    /// The latest session that closed at least `grace` before `now`.
    pub fn last_closed(&self, now: DateTime<Utc>, grace: chrono::Duration) -> Option<&SessionDay> {
        self.days.iter().rev().find(|d| d.close + grace <= now)
    }

    /// The session in progress at `now`, or the next one.
    pub fn current_or_next(&self, now: DateTime<Utc>) -> Option<&SessionDay> {
        self.days.iter().find(|d| d.close > now)
    }

    /// Whether continuous trading is on at `now` (between a session's open
    /// and its close).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        match self.current_or_next(now) {
            Some(day) => day.open <= now,
            None => self.rules.is_open(now),
        }
    }

    /// The first open strictly after `now`.
    pub fn next_open(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.days
            .iter()
            .map(|d| d.open)
            .find(|open| *open > now)
            .unwrap_or_else(|| self.rules.next_open(now))
    }

    /// The close of the session in progress, or of the next one.
    pub fn next_close(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.current_or_next(now)
            .map(|d| d.close)
            .unwrap_or_else(|| self.rules.next_close(now))
    }

    pub fn clock(&self, now: DateTime<Utc>) -> Clock {
        Clock {
            timestamp: now,
            is_open: self.is_open(now),
            next_open: self.next_open(now),
            next_close: self.next_close(now),
        }
    }

    /// The sessions whose date is in `[start, end]`.
    pub fn between(&self, start: NaiveDate, end: NaiveDate) -> impl Iterator<Item = &SessionDay> {
        self.days
            .iter()
            .filter(move |d| start <= d.date && d.date <= end)
    }

    /// When an order entered at `now` expires (see
    /// [`SessionRules::expires_at`]), by the calendar where it has the
    /// session: a GTC order at the close of the first session dated at
    /// least the horizon after today's.
    pub fn expires_at(&self, time_in_force: TimeInForce, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(today) = self.current_or_next(now) else {
            return self.rules.expires_at(time_in_force, now);
        };
        match time_in_force {
            TimeInForce::Day | TimeInForce::Ioc | TimeInForce::Fok | TimeInForce::Cls => {
                today.close
            }
            TimeInForce::Opg => self.next_open(now),
            TimeInForce::Gtc => {
                let horizon = Days::new(u64::from(self.rules.gtc_horizon_days));
                let target = today.date + horizon;
                self.days
                    .iter()
                    .find(|d| d.date >= target)
                    .map(|d| d.close)
                    .unwrap_or_else(|| self.rules.expires_at(time_in_force, now))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    const NY: SessionRules = SessionRules::NEW_YORK;

    #[test]
    fn a_day_order_expires_at_the_close_in_new_york_time() {
        // Winter (EST, UTC-5): 16:00 is 21:00 UTC.
        assert_eq!(
            NY.expires_at(TimeInForce::Day, utc("2026-11-30T15:00:00Z")),
            utc("2026-11-30T21:00:00Z")
        );
        // Summer (EDT, UTC-4): 20:00 UTC.
        assert_eq!(
            NY.expires_at(TimeInForce::Day, utc("2026-07-01T13:00:00Z")),
            utc("2026-07-01T20:00:00Z")
        );
    }

    #[test]
    fn after_the_close_and_at_weekends_it_is_the_next_weekday() {
        // Monday 21:00 UTC is the close itself: the next one is Tuesday's.
        assert_eq!(
            NY.next_close(utc("2026-11-30T21:00:00Z")),
            utc("2026-12-01T21:00:00Z")
        );
        // Friday evening: Monday.
        assert_eq!(
            NY.next_close(utc("2026-12-04T22:00:00Z")),
            utc("2026-12-07T21:00:00Z")
        );
        // Saturday, 01:00 UTC is still Friday 20:00 in New York: Monday.
        assert_eq!(
            NY.next_close(utc("2026-12-05T01:00:00Z")),
            utc("2026-12-07T21:00:00Z")
        );
    }

    #[test]
    fn the_clock_change_moves_the_close_in_utc() {
        // DST ends Sunday 2026-11-01: Friday closes at 20:00 UTC, Monday at 21:00.
        assert_eq!(
            NY.next_close(utc("2026-10-30T12:00:00Z")),
            utc("2026-10-30T20:00:00Z")
        );
        assert_eq!(
            NY.next_close(utc("2026-10-31T12:00:00Z")),
            utc("2026-11-02T21:00:00Z")
        );
    }

    #[test]
    fn a_gtc_order_lives_for_the_horizon() {
        assert_eq!(
            NY.expires_at(TimeInForce::Gtc, utc("2026-11-30T15:00:00Z")),
            // 89 days on is Saturday 2027-02-27: the close is Monday's.
            utc("2027-03-01T21:00:00Z")
        );
    }

    fn day(date: &str, open: &str, close: &str) -> SessionDay {
        SessionDay {
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            pre_open: utc(open) - chrono::Duration::hours(5),
            open: utc(open),
            closing_auction: utc(close) - chrono::Duration::minutes(10),
            close: utc(close),
            early_close: false,
        }
    }

    #[test]
    fn the_calendar_answers_the_clock_and_expiry_from_its_sessions() {
        // A holiday (Thursday 2026-11-26) is simply absent; Friday closes early.
        let calendar = Calendar::new(
            vec![
                day("2026-11-27", "2026-11-27T14:30:00Z", "2026-11-27T18:00:00Z"),
                day("2026-11-25", "2026-11-25T14:30:00Z", "2026-11-25T21:00:00Z"),
            ],
            NY,
        );
        let wednesday_noon = utc("2026-11-25T17:00:00Z");
        assert!(calendar.is_open(wednesday_noon));
        assert_eq!(
            calendar.next_close(wednesday_noon),
            utc("2026-11-25T21:00:00Z")
        );
        assert_eq!(
            calendar.next_open(wednesday_noon),
            utc("2026-11-27T14:30:00Z")
        );
        let grace = chrono::Duration::seconds(2);
        assert_eq!(calendar.last_closed(wednesday_noon, grace), None);
        let thursday = utc("2026-11-26T17:00:00Z");
        assert_eq!(
            calendar
                .last_closed(thursday, grace)
                .map(|d| d.date.to_string()),
            Some("2026-11-25".to_string())
        );
        assert_eq!(
            calendar
                .last_closed(utc("2026-11-27T18:00:01Z"), grace)
                .map(|d| d.date.to_string()),
            Some("2026-11-25".to_string()),
            "within the grace after Friday's close"
        );
        let thanksgiving = utc("2026-11-26T17:00:00Z");
        assert!(
            !calendar.is_open(thanksgiving),
            "the rules alone would say open"
        );
        assert!(NY.is_open(thanksgiving));
        assert_eq!(
            calendar.expires_at(TimeInForce::Day, thanksgiving),
            utc("2026-11-27T18:00:00Z"),
            "a day order entered on the holiday lives through Friday's early close"
        );
        assert_eq!(
            calendar.expires_at(TimeInForce::Opg, thanksgiving),
            utc("2026-11-27T14:30:00Z")
        );
        // Past the calendar's end, the rules answer.
        let later = utc("2026-12-01T15:00:00Z");
        assert_eq!(
            calendar.expires_at(TimeInForce::Day, later),
            NY.expires_at(TimeInForce::Day, later)
        );
        assert_eq!(calendar.clock(later).next_close, NY.next_close(later));
        // A GTC order's horizon is counted in the calendar's dates.
        let short = Calendar::new(
            vec![
                day("2026-11-25", "2026-11-25T14:30:00Z", "2026-11-25T21:00:00Z"),
                day("2027-02-23", "2027-02-23T14:30:00Z", "2027-02-23T21:00:00Z"),
            ],
            NY,
        );
        assert_eq!(
            short.expires_at(TimeInForce::Gtc, wednesday_noon),
            utc("2027-02-23T21:00:00Z")
        );
    }

    #[test]
    fn an_accelerated_calendar_of_short_days_works_the_same() {
        let base = utc("2026-11-30T15:00:00Z");
        let at = |secs: i64| base + chrono::Duration::seconds(secs);
        let days: Vec<SessionDay> = (0..3)
            .map(|i| SessionDay {
                date: NaiveDate::from_ymd_opt(2026, 12, 1 + i as u32).unwrap(),
                pre_open: at(i * 10),
                open: at(i * 10 + 2),
                closing_auction: at(i * 10 + 6),
                close: at(i * 10 + 7),
                early_close: false,
            })
            .collect();
        let calendar = Calendar::new(days, NY);
        assert!(!calendar.is_open(at(1)), "pre-open");
        assert!(calendar.is_open(at(3)));
        assert_eq!(calendar.expires_at(TimeInForce::Day, at(3)), at(7));
        assert_eq!(
            calendar.expires_at(TimeInForce::Day, at(8)),
            at(17),
            "after the close: the next day's"
        );
        assert_eq!(calendar.next_open(at(3)), at(12));
    }

    proptest! {
        #[test]
        fn the_expiry_is_a_weekday_close_after_now(secs in 0i64..4_000_000_000, gtc: bool) {
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let tif = if gtc { TimeInForce::Gtc } else { TimeInForce::Day };
            let expiry = NY.expires_at(tif, now);
            prop_assert!(expiry > now);
            let local = expiry.with_timezone(&NY.timezone);
            prop_assert_eq!(local.time(), NY.close);
            prop_assert!(!matches!(local.weekday(), Weekday::Sat | Weekday::Sun));
            let most = if gtc { 90 + 4 } else { 4 };
            prop_assert!(expiry - now <= chrono::Duration::days(most));
        }
    }
}
