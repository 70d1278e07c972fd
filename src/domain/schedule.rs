//! Which cron tick is due. A tick is identified by its scheduled time, so
//! "this tick runs once across all instances" is a unique row per (job,
//! tick), and "missed ticks after downtime run once, not once each" is
//! taking only the latest tick that is due.

use chrono::{DateTime, Utc};

/// The latest tick of `schedule` in `(after, now]`, if any.
pub fn latest_due(
    schedule: &cron::Schedule,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    schedule
        .after(&after)
        .take_while(|tick| *tick <= now)
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn only_the_latest_missed_tick_is_due() {
        let every_ten = cron::Schedule::from_str("*/10 * * * * *").unwrap();
        // Down from :05 to :47: ticks :10 .. :40 were missed; one runs.
        let due = latest_due(
            &every_ten,
            at("2026-01-01T00:00:05Z"),
            at("2026-01-01T00:00:47Z"),
        );
        assert_eq!(due, Some(at("2026-01-01T00:00:40Z")));
    }

    #[test]
    fn nothing_is_due_before_the_next_tick() {
        let every_ten = cron::Schedule::from_str("*/10 * * * * *").unwrap();
        assert_eq!(
            latest_due(
                &every_ten,
                at("2026-01-01T00:00:40Z"),
                at("2026-01-01T00:00:49Z")
            ),
            None
        );
        // A tick exactly at `now` is due; one exactly at `after` is not again.
        assert_eq!(
            latest_due(
                &every_ten,
                at("2026-01-01T00:00:40Z"),
                at("2026-01-01T00:00:50Z")
            ),
            Some(at("2026-01-01T00:00:50Z"))
        );
    }
}
