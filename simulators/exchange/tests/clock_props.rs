//! Property tests of the clock: for any instant, on the wall clock and on
//! any accelerated day, `next_open` and `next_close` lie ahead, the phase
//! agrees with the session's instants, and the session is a trading day.

use chrono::{DateTime, Duration, TimeZone, Utc};
use exchange_sim::ClockConfig;
use exchange_sim::calendar::Calendar;
use exchange_sim::clock::{ClockMode, Phase, Schedule, ScheduleSpec, Session};
use proptest::prelude::*;

fn instant(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("instant")
}

/// 2025-06-01 .. 2028-06-01, to the millisecond.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_748_736_000_000i64..1_843_430_400_000)
        .prop_map(|ms| DateTime::from_timestamp_millis(ms).expect("instant"))
}

fn wall() -> Schedule {
    let config = ClockConfig {
        mode: ClockMode::Wall,
        ..ClockConfig::default()
    };
    let spec = ScheduleSpec::new(&config, 23_400, Calendar::builtin()).expect("spec");
    Schedule::start(spec, instant(1_780_000_000))
}

/// The clock's answers against the session they come from.
fn consistent(schedule: &Schedule, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let view = schedule.clock(now);
    prop_assert!(
        view.next_open > now,
        "next_open {} <= now {}",
        view.next_open,
        now
    );
    prop_assert!(
        view.next_close > now,
        "next_close {} <= now {}",
        view.next_close,
        now
    );
    prop_assert!(schedule.calendar().is_trading_day(view.session_date));
    let session: Session = schedule.current_or_next(now);
    prop_assert_eq!(session.date, view.session_date);
    prop_assert_eq!(session.close, view.next_close);
    prop_assert!(session.pre_open <= session.opening_auction);
    prop_assert!(session.opening_auction <= session.open);
    prop_assert!(session.open < session.closing_auction);
    prop_assert!(session.closing_auction <= session.close);
    let expected = if now < session.pre_open {
        Phase::Closed
    } else if now < session.opening_auction {
        Phase::PreOpen
    } else if now < session.open {
        Phase::OpeningAuction
    } else if now < session.closing_auction {
        Phase::Open
    } else {
        Phase::ClosingAuction
    };
    prop_assert_eq!(view.phase, expected);
    if view.phase.is_open() {
        // In continuous trading: today's close comes before the next open.
        prop_assert!(view.next_close < view.next_open);
        prop_assert_eq!(view.next_open, schedule.session_after(&session).open);
    } else {
        prop_assert!(view.next_open < view.next_close);
        prop_assert_eq!(view.next_open, session.open);
    }
    // The session is the calendar's entry for its date.
    let listed = schedule.sessions_in(session.date, session.date);
    prop_assert_eq!(listed.len(), 1);
    prop_assert_eq!(listed[0], session);
    // And the one before it has closed.
    let before = session.date - chrono::Days::new(10);
    let previous: Vec<Session> = schedule
        .sessions_in(before, session.date)
        .into_iter()
        .filter(|s| s.date < session.date)
        .collect();
    if let Some(previous) = previous.last() {
        prop_assert!(previous.close <= now);
        prop_assert!(previous.close <= session.pre_open);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_wall_clock_is_consistent_at_any_instant(now in any_instant()) {
        consistent(&wall(), now)?;
    }

    #[test]
    fn an_accelerated_clock_is_consistent_at_any_instant_after_start_up(
        startup in any_instant(),
        after_ms in 0i64..400_000_000,
        lengths in proptest::collection::vec(0u64..4000, 4),
        session_secs in 1u64..30_000,
        start_phase in 0..5usize,
        advances in proptest::collection::vec((0..5usize, 0i64..100_000), 0..6),
    ) {
        let config = ClockConfig {
            pre_open_secs: lengths[0],
            opening_auction_secs: lengths[1],
            closing_auction_secs: lengths[2],
            closed_secs: lengths[3],
            start_phase: Phase::ALL[start_phase],
            ..ClockConfig::default()
        };
        let spec = ScheduleSpec::new(&config, session_secs, Calendar::builtin()).expect("spec");
        let mut schedule = Schedule::start(spec, startup);
        // Start-up is the start of the start phase (unless that phase is empty).
        prop_assert_eq!(
            schedule.next_phase_start(Phase::ALL[start_phase], startup - Duration::milliseconds(1)),
            Some(startup)
        );
        let phase_at_start = schedule.phase_at(startup);
        prop_assert!(
            phase_at_start == Phase::ALL[start_phase]
                || lengths_of(&config, session_secs)[start_phase] == 0
        );
        let mut now = startup + Duration::milliseconds(after_ms);
        consistent(&schedule, now)?;
        for (phase, wait_ms) in advances {
            now += Duration::milliseconds(wait_ms);
            let phase = Phase::ALL[phase];
            let target = schedule.next_phase_start(phase, now).expect("accelerated");
            prop_assert!(target > now);
            schedule.shift_earlier(target.timestamp_millis() - now.timestamp_millis());
            let here = schedule.phase_at(now);
            prop_assert!(here == phase || lengths_of(&config, session_secs)[phase as usize] == 0);
            consistent(&schedule, now)?;
        }
    }
}

fn lengths_of(config: &ClockConfig, session_secs: u64) -> [u64; 5] {
    [
        config.pre_open_secs,
        config.opening_auction_secs,
        session_secs,
        config.closing_auction_secs,
        config.closed_secs,
    ]
}
