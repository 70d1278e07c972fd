//! The trading day, as far as an order's expiry needs it: the exchange's
//! timezone, the close of the regular session, weekdays, and the horizon
//! of a good-till-canceled order. Pure: `now` is an argument.
//!
//! Holidays and early closes belong to the trading calendar; until it
//! exists every weekday is a session.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::order::TimeInForce;

/// How orderd's trading day is shaped (`[market]` in the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    /// The exchange's timezone (America/New_York).
    pub timezone: Tz,
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
        close: match NaiveTime::from_hms_opt(16, 0, 0) {
            Some(close) => close,
            None => NaiveTime::MIN,
        },
        gtc_horizon_days: 90,
    };

    /// The first session close strictly after `now`.
    pub fn next_close(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut day = now.with_timezone(&self.timezone).date_naive();
        // A week always holds a weekday whose close is after `now`; the
        // bound only keeps a malformed timezone from looping.
        for _ in 0..8 {
            if let Some(close) = self.close_on(day)
                && close > now
            {
                return close;
            }
            day = day + Days::new(1);
        }
        now + chrono::Duration::days(1)
    }

    /// The close of `day` in UTC, or `None` on a weekend.
    fn close_on(&self, day: NaiveDate) -> Option<DateTime<Utc>> {
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            return None;
        }
        // A close inside a DST gap or overlap takes the earliest instant.
        self.timezone
            .from_local_datetime(&day.and_time(self.close))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// When an order entered at `now` with `time_in_force` expires: the
    /// session's close for day orders (and for IOC and FOK, which end
    /// sooner), the close after the horizon for GTC.
    pub fn expires_at(&self, time_in_force: TimeInForce, now: DateTime<Utc>) -> DateTime<Utc> {
        match time_in_force {
            TimeInForce::Day | TimeInForce::Ioc | TimeInForce::Fok => self.next_close(now),
            TimeInForce::Gtc => {
                let horizon = chrono::Duration::days(i64::from(self.gtc_horizon_days));
                self.next_close(now + horizon - chrono::Duration::days(1))
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
