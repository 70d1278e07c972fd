//! The trading day in time: phases, sessions and the two clocks.
//!
//! A session is five instants — pre-open, opening auction (cut-off), open
//! (the opening auction executes, continuous trading starts), closing
//! auction (cut-off), close (the closing auction executes) — on one
//! trading day of the [`Calendar`]. The **wall** clock places them at local
//! times of real dates; the **accelerated** clock repeats a compressed day
//! from start-up, each one labelled with the next trading date. Pure: every
//! function takes `now`.

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::config::ClockConfig;

/// Where the trading day stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Orders are queued (`accepted`); OPG and CLS are taken.
    PreOpen,
    /// The last minutes before the open; as pre-open.
    OpeningAuction,
    /// Continuous trading.
    Open,
    /// Continuous trading goes on; CLS orders are no longer taken.
    ClosingAuction,
    /// After the close until the next pre-open (nights, weekends, holidays).
    Closed,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::PreOpen,
        Phase::OpeningAuction,
        Phase::Open,
        Phase::ClosingAuction,
        Phase::Closed,
    ];

    /// Continuous trading: `open` or `closing_auction`.
    pub fn is_open(self) -> bool {
        matches!(self, Phase::Open | Phase::ClosingAuction)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::PreOpen => "pre_open",
            Phase::OpeningAuction => "opening_auction",
            Phase::Open => "open",
            Phase::ClosingAuction => "closing_auction",
            Phase::Closed => "closed",
        }
    }

    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The session event that starts this phase.
    pub fn starting_event(self) -> SessionEvent {
        match self {
            Phase::PreOpen => SessionEvent::PreOpen,
            Phase::OpeningAuction => SessionEvent::OpeningAuction,
            Phase::Open => SessionEvent::Open,
            Phase::ClosingAuction => SessionEvent::ClosingAuction,
            Phase::Closed => SessionEvent::Close,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    /// A compressed day, repeating from start-up.
    #[default]
    Accelerated,
    /// Real time on the real calendar.
    Wall,
}

/// The five instants of a session, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionEvent {
    PreOpen,
    OpeningAuction,
    /// The opening auction executes; continuous trading starts.
    Open,
    ClosingAuction,
    /// The closing auction executes; the session ends.
    Close,
}

impl SessionEvent {
    pub const ALL: [SessionEvent; 5] = [
        SessionEvent::PreOpen,
        SessionEvent::OpeningAuction,
        SessionEvent::Open,
        SessionEvent::ClosingAuction,
        SessionEvent::Close,
    ];

    /// The next event of the same session (None after the close).
    pub fn next(self) -> Option<SessionEvent> {
        match self {
            SessionEvent::PreOpen => Some(SessionEvent::OpeningAuction),
            SessionEvent::OpeningAuction => Some(SessionEvent::Open),
            SessionEvent::Open => Some(SessionEvent::ClosingAuction),
            SessionEvent::ClosingAuction => Some(SessionEvent::Close),
            SessionEvent::Close => None,
        }
    }

    /// The phase this event starts.
    pub fn phase(self) -> Phase {
        match self {
            SessionEvent::PreOpen => Phase::PreOpen,
            SessionEvent::OpeningAuction => Phase::OpeningAuction,
            SessionEvent::Open => Phase::Open,
            SessionEvent::ClosingAuction => Phase::ClosingAuction,
            SessionEvent::Close => Phase::Closed,
        }
    }
}

/// One trading session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Identifies the session within one venue run: the compressed day's
    /// number (accelerated; day 0 is start-up's), or the date's day number
    /// since the common era (wall).
    pub ordinal: i64,
    /// The trading date (accelerated: the label of the compressed day).
    pub date: NaiveDate,
    pub pre_open: DateTime<Utc>,
    pub opening_auction: DateTime<Utc>,
    pub open: DateTime<Utc>,
    pub closing_auction: DateTime<Utc>,
    pub close: DateTime<Utc>,
    pub early_close: bool,
}

impl Session {
    pub fn at(&self, event: SessionEvent) -> DateTime<Utc> {
        match event {
            SessionEvent::PreOpen => self.pre_open,
            SessionEvent::OpeningAuction => self.opening_auction,
            SessionEvent::Open => self.open,
            SessionEvent::ClosingAuction => self.closing_auction,
            SessionEvent::Close => self.close,
        }
    }

    /// Replaces the instant of one event (the accelerated calendar shows
    /// when events really happened).
    pub fn set(&mut self, event: SessionEvent, at: DateTime<Utc>) {
        match event {
            SessionEvent::PreOpen => self.pre_open = at,
            SessionEvent::OpeningAuction => self.opening_auction = at,
            SessionEvent::Open => self.open = at,
            SessionEvent::ClosingAuction => self.closing_auction = at,
            SessionEvent::Close => self.close = at,
        }
    }

    /// The phase at `now`, for a session that has not closed by then (any
    /// time before its pre-open is `closed`). Zero-length phases never show.
    pub fn phase_at(&self, now: DateTime<Utc>) -> Phase {
        if now < self.pre_open {
            Phase::Closed
        } else if now < self.opening_auction {
            Phase::PreOpen
        } else if now < self.open {
            Phase::OpeningAuction
        } else if now < self.closing_auction {
            Phase::Open
        } else if now < self.close {
            Phase::ClosingAuction
        } else {
            Phase::Closed
        }
    }
}

/// What `GET /v1/clock` tells, apart from the mode and `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockView {
    pub phase: Phase,
    /// The session in progress (pre-open to closing auction) or the next one.
    pub session_date: NaiveDate,
    /// The next start of continuous trading strictly after now.
    pub next_open: DateTime<Utc>,
    /// The close of the session in progress, else of the next session.
    pub next_close: DateTime<Utc>,
}

/// Validated clock settings (times parsed, timezone resolved).
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    calendar: Calendar,
    timezone: Tz,
    kind: SpecKind,
}

#[derive(Debug, Clone)]
enum SpecKind {
    Accelerated {
        /// Lengths of pre_open, opening_auction, open, closing_auction, closed.
        phase_ms: [i64; 5],
        start_phase: Phase,
    },
    Wall {
        pre_open: NaiveTime,
        open: NaiveTime,
        close: NaiveTime,
        early_close: NaiveTime,
        opening_auction: Duration,
        closing_auction: Duration,
    },
}

fn parse_time(field: &str, text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| format!("clock.{field} must be a local time HH:MM, not {text:?}"))
}

fn secs_to_ms(field: &str, secs: u64) -> Result<i64, String> {
    // A year per phase is more than any test needs and keeps sums far from overflow.
    const MAX_PHASE_SECS: u64 = 366 * 24 * 3600;
    if secs > MAX_PHASE_SECS {
        return Err(format!("{field} must be at most {MAX_PHASE_SECS}"));
    }
    Ok(i64::try_from(secs * 1000).unwrap_or(i64::MAX))
}

impl ScheduleSpec {
    /// Checks and resolves the `[clock]` settings; `session_secs` is the
    /// length of the accelerated `open` phase.
    pub fn new(
        config: &ClockConfig,
        session_secs: u64,
        calendar: Calendar,
    ) -> Result<ScheduleSpec, String> {
        let timezone: Tz = config.timezone.parse().map_err(|_| {
            format!(
                "clock.timezone {:?} is not an IANA time zone",
                config.timezone
            )
        })?;
        let kind = match config.mode {
            ClockMode::Accelerated => {
                if session_secs == 0 {
                    return Err("session_secs must be >= 1".into());
                }
                SpecKind::Accelerated {
                    phase_ms: [
                        secs_to_ms("clock.pre_open_secs", config.pre_open_secs)?,
                        secs_to_ms("clock.opening_auction_secs", config.opening_auction_secs)?,
                        secs_to_ms("session_secs", session_secs)?,
                        secs_to_ms("clock.closing_auction_secs", config.closing_auction_secs)?,
                        secs_to_ms("clock.closed_secs", config.closed_secs)?,
                    ],
                    start_phase: config.start_phase,
                }
            }
            ClockMode::Wall => {
                let pre_open = parse_time("pre_open_time", &config.pre_open_time)?;
                let open = parse_time("open_time", &config.open_time)?;
                let close = parse_time("close_time", &config.close_time)?;
                let early_close = parse_time("early_close_time", &config.early_close_time)?;
                let minute = |m: u64| i64::try_from(m.saturating_mul(60)).unwrap_or(i64::MAX);
                let opening_auction = minute(config.opening_auction_mins);
                let closing_auction = minute(config.closing_auction_mins);
                let secs = |t: NaiveTime| i64::from(t.num_seconds_from_midnight());
                if secs(pre_open) > secs(open) - opening_auction {
                    return Err(
                        "clock.pre_open_time must be at or before the opening auction".into(),
                    );
                }
                for (field, end) in [("close_time", close), ("early_close_time", early_close)] {
                    if secs(open) >= secs(end) - closing_auction {
                        return Err(format!(
                            "clock.{field} must leave continuous trading between open_time and the closing auction"
                        ));
                    }
                }
                SpecKind::Wall {
                    pre_open,
                    open,
                    close,
                    early_close,
                    opening_auction: Duration::seconds(opening_auction),
                    closing_auction: Duration::seconds(closing_auction),
                }
            }
        };
        Ok(ScheduleSpec {
            calendar,
            timezone,
            kind,
        })
    }
}

/// The clock of one venue run: a spec started at a given instant.
#[derive(Debug, Clone)]
pub struct Schedule {
    spec: ScheduleSpec,
    /// Accelerated: the instant day 0's pre-open starts (moves earlier when
    /// the clock is advanced), in ms since the epoch.
    base_ms: i64,
    /// Accelerated: the date label of day 0.
    day0: NaiveDate,
}

impl Schedule {
    /// The clock as it stands at start-up. Accelerated: start-up is the
    /// start of `start_phase` of day 0, labelled with the first trading day
    /// on or after start-up's local date.
    pub fn start(spec: ScheduleSpec, startup: DateTime<Utc>) -> Schedule {
        let local_date = startup.with_timezone(&spec.timezone).date_naive();
        let day0 = spec.calendar.trading_day_on_or_after(local_date);
        let base_ms = match &spec.kind {
            SpecKind::Accelerated {
                phase_ms,
                start_phase,
            } => {
                let offset: i64 = match start_phase {
                    Phase::PreOpen => 0,
                    Phase::OpeningAuction => phase_ms[0],
                    Phase::Open => phase_ms[0] + phase_ms[1],
                    Phase::ClosingAuction => phase_ms[0] + phase_ms[1] + phase_ms[2],
                    Phase::Closed => phase_ms[0] + phase_ms[1] + phase_ms[2] + phase_ms[3],
                };
                startup.timestamp_millis() - offset
            }
            SpecKind::Wall { .. } => 0,
        };
        Schedule {
            spec,
            base_ms,
            day0,
        }
    }

    pub fn mode(&self) -> ClockMode {
        match self.spec.kind {
            SpecKind::Accelerated { .. } => ClockMode::Accelerated,
            SpecKind::Wall { .. } => ClockMode::Wall,
        }
    }

    pub fn calendar(&self) -> &Calendar {
        &self.spec.calendar
    }

    /// The session with this ordinal (see [`Session::ordinal`]).
    pub fn session(&self, ordinal: i64) -> Session {
        match &self.spec.kind {
            SpecKind::Accelerated { .. } => {
                let day = u64::try_from(ordinal).unwrap_or(0);
                let date = self.spec.calendar.add_trading_days(self.day0, day);
                self.accelerated_session(ordinal.max(0), date)
            }
            SpecKind::Wall { .. } => {
                let date = i32::try_from(ordinal)
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .unwrap_or(self.day0);
                self.wall_session(date)
            }
        }
    }

    /// The session after `session`.
    pub fn session_after(&self, session: &Session) -> Session {
        let date = self.spec.calendar.trading_day_after(session.date);
        match &self.spec.kind {
            SpecKind::Accelerated { .. } => self.accelerated_session(session.ordinal + 1, date),
            SpecKind::Wall { .. } => self.wall_session(date),
        }
    }

    /// The first session whose close is after `now`: the one in progress, or
    /// the next one.
    pub fn current_or_next(&self, now: DateTime<Utc>) -> Session {
        match &self.spec.kind {
            SpecKind::Accelerated { phase_ms, .. } => {
                let cycle: i64 = phase_ms.iter().sum();
                let close_offset: i64 = phase_ms[..4].iter().sum();
                let since = now.timestamp_millis() - self.base_ms - close_offset;
                let day = (since.div_euclid(cycle) + 1).max(0);
                self.session(day)
            }
            SpecKind::Wall { .. } => {
                let local_date = now.with_timezone(&self.spec.timezone).date_naive();
                let first = self.spec.calendar.trading_day_on_or_after(local_date);
                let session = self.wall_session(first);
                if session.close > now {
                    session
                } else {
                    self.session_after(&session)
                }
            }
        }
    }

    pub fn phase_at(&self, now: DateTime<Utc>) -> Phase {
        self.current_or_next(now).phase_at(now)
    }

    pub fn clock(&self, now: DateTime<Utc>) -> ClockView {
        let session = self.current_or_next(now);
        let next_open = if session.open > now {
            session.open
        } else {
            self.session_after(&session).open
        };
        ClockView {
            phase: session.phase_at(now),
            session_date: session.date,
            next_open,
            next_close: session.close,
        }
    }

    /// Sessions whose date is in `[start, end]`, in date order (accelerated:
    /// only days from day 0 on).
    pub fn sessions_in(&self, start: NaiveDate, end: NaiveDate) -> Vec<Session> {
        let calendar = &self.spec.calendar;
        let mut sessions = Vec::new();
        let (mut ordinal, mut date) = match &self.spec.kind {
            SpecKind::Accelerated { .. } if start <= self.day0 => (0, self.day0),
            SpecKind::Accelerated { .. } => {
                let before = start.pred_opt().unwrap_or(start);
                let day = calendar.trading_days_in(self.day0, before) + 1;
                (
                    i64::try_from(day).unwrap_or(i64::MAX),
                    calendar.trading_day_on_or_after(start),
                )
            }
            SpecKind::Wall { .. } => (0, calendar.trading_day_on_or_after(start)),
        };
        while date <= end {
            sessions.push(match &self.spec.kind {
                SpecKind::Accelerated { .. } => self.accelerated_session(ordinal, date),
                SpecKind::Wall { .. } => self.wall_session(date),
            });
            ordinal += 1;
            date = calendar.trading_day_after(date);
        }
        sessions
    }

    /// Accelerated: the next instant strictly after `now` at which `phase`
    /// starts. None on the wall clock, which cannot be moved.
    pub fn next_phase_start(&self, phase: Phase, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.mode() == ClockMode::Wall {
            return None;
        }
        let event = phase.starting_event();
        let session = self.current_or_next(now);
        let at = session.at(event);
        Some(if at > now {
            at
        } else {
            self.session_after(&session).at(event)
        })
    }

    /// Accelerated: moves the whole cycle `ms` earlier (what was due `ms`
    /// from now is due now). No effect on the wall clock.
    pub fn shift_earlier(&mut self, ms: i64) {
        if self.mode() == ClockMode::Accelerated {
            self.base_ms -= ms;
        }
    }

    fn accelerated_session(&self, day: i64, date: NaiveDate) -> Session {
        let SpecKind::Accelerated { phase_ms, .. } = &self.spec.kind else {
            unreachable!("accelerated session of a wall clock");
        };
        let cycle: i64 = phase_ms.iter().sum();
        let start = self.base_ms + day * cycle;
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut offset = start;
        let mut instants = [at(start); 5];
        for (i, length) in phase_ms[..4].iter().enumerate() {
            offset += length;
            instants[i + 1] = at(offset);
        }
        Session {
            ordinal: day,
            date,
            pre_open: instants[0],
            opening_auction: instants[1],
            open: instants[2],
            closing_auction: instants[3],
            close: instants[4],
            early_close: false,
        }
    }

    fn wall_session(&self, date: NaiveDate) -> Session {
        let SpecKind::Wall {
            pre_open,
            open,
            close,
            early_close,
            opening_auction,
            closing_auction,
        } = &self.spec.kind
        else {
            unreachable!("wall session of an accelerated clock");
        };
        let early = self.spec.calendar.is_early_close(date);
        let open_at = self.local(date, *open);
        let close_at = self.local(date, if early { *early_close } else { *close });
        Session {
            ordinal: i64::from(date.num_days_from_ce()),
            date,
            pre_open: self.local(date, *pre_open),
            opening_auction: open_at - *opening_auction,
            open: open_at,
            closing_auction: close_at - *closing_auction,
            close: close_at,
            early_close: early,
        }
    }

    /// A local time of a date as an instant: the earlier one when the
    /// time occurs twice (DST ends), the first instant after the gap when it
    /// does not occur (DST starts).
    fn local(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let naive = date.and_time(time);
        let tz = &self.spec.timezone;
        tz.from_local_datetime(&naive)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(naive + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| naive.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn wall() -> Schedule {
        let config = ClockConfig {
            mode: ClockMode::Wall,
            ..ClockConfig::default()
        };
        let spec = ScheduleSpec::new(&config, 23_400, Calendar::builtin()).expect("spec");
        Schedule::start(spec, at("2026-11-30T12:00:00Z"))
    }

    fn accelerated(config: ClockConfig, session_secs: u64, startup: DateTime<Utc>) -> Schedule {
        let spec = ScheduleSpec::new(&config, session_secs, Calendar::builtin()).expect("spec");
        Schedule::start(spec, startup)
    }

    #[test]
    fn wall_sessions_follow_new_york_time_across_daylight_saving() {
        let s = wall();
        // Winter (EST, UTC-5).
        let session = s.current_or_next(at("2026-12-01T12:00:00Z"));
        assert_eq!(session.date, d("2026-12-01"));
        assert_eq!(session.pre_open, at("2026-12-01T09:00:00Z"));
        assert_eq!(session.opening_auction, at("2026-12-01T14:28:00Z"));
        assert_eq!(session.open, at("2026-12-01T14:30:00Z"));
        assert_eq!(session.closing_auction, at("2026-12-01T20:50:00Z"));
        assert_eq!(session.close, at("2026-12-01T21:00:00Z"));
        // Summer (EDT, UTC-4).
        let session = s.current_or_next(at("2026-07-01T12:00:00Z"));
        assert_eq!(session.open, at("2026-07-01T13:30:00Z"));
        assert_eq!(session.close, at("2026-07-01T20:00:00Z"));
    }

    #[test]
    fn wall_clock_phases_through_a_day() {
        let s = wall();
        let phase = |t: &str| s.phase_at(at(t));
        assert_eq!(phase("2026-12-01T08:59:59Z"), Phase::Closed);
        assert_eq!(phase("2026-12-01T09:00:00Z"), Phase::PreOpen);
        assert_eq!(phase("2026-12-01T14:28:00Z"), Phase::OpeningAuction);
        assert_eq!(phase("2026-12-01T14:30:00Z"), Phase::Open);
        assert_eq!(phase("2026-12-01T20:50:00Z"), Phase::ClosingAuction);
        assert_eq!(phase("2026-12-01T21:00:00Z"), Phase::Closed);
    }

    #[test]
    fn wall_clock_skips_holidays_and_weekends_and_closes_early() {
        let s = wall();
        // Wednesday before Thanksgiving, after the close.
        let view = s.clock(at("2026-11-25T22:00:00Z"));
        assert_eq!(view.phase, Phase::Closed);
        assert_eq!(
            view.session_date,
            d("2026-11-27"),
            "Thanksgiving is skipped"
        );
        assert_eq!(view.next_open, at("2026-11-27T14:30:00Z"));
        assert_eq!(view.next_close, at("2026-11-27T18:00:00Z"), "1 p.m. close");
        // Friday after the early close: the next session is Monday.
        let view = s.clock(at("2026-11-27T18:00:00Z"));
        assert_eq!(view.session_date, d("2026-11-30"));
        assert_eq!(view.next_open, at("2026-11-30T14:30:00Z"));
        // During open: next_open is tomorrow's, next_close today's.
        let view = s.clock(at("2026-11-30T15:00:00Z"));
        assert_eq!(
            (view.phase, view.session_date),
            (Phase::Open, d("2026-11-30"))
        );
        assert_eq!(view.next_open, at("2026-12-01T14:30:00Z"));
        assert_eq!(view.next_close, at("2026-11-30T21:00:00Z"));
        // Christmas Eve 2026 closes early, Christmas Day is closed.
        let days = s.sessions_in(d("2026-12-23"), d("2026-12-29"));
        let dates: Vec<_> = days.iter().map(|x| (x.date, x.early_close)).collect();
        assert_eq!(
            dates,
            [
                (d("2026-12-23"), false),
                (d("2026-12-24"), true),
                (d("2026-12-28"), false),
                (d("2026-12-29"), false)
            ]
        );
        assert_eq!(days[1].close, at("2026-12-24T18:00:00Z"));
        assert_eq!(days[1].closing_auction, at("2026-12-24T17:50:00Z"));
    }

    #[test]
    fn wall_calendar_2027_has_its_holidays_and_early_close() {
        let s = wall();
        let year: Vec<_> = s
            .sessions_in(d("2027-01-01"), d("2027-12-31"))
            .into_iter()
            .collect();
        assert_eq!(year.len(), 251, "trading days in 2027");
        for holiday in [
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
        ] {
            assert!(year.iter().all(|x| x.date != d(holiday)), "{holiday}");
        }
        let early: Vec<_> = year
            .iter()
            .filter(|x| x.early_close)
            .map(|x| x.date)
            .collect();
        assert_eq!(early, [d("2027-11-26")]);
        let y2026 = s.sessions_in(d("2026-01-01"), d("2026-12-31"));
        assert_eq!(y2026.len(), 251, "trading days in 2026");
        let early: Vec<_> = y2026
            .iter()
            .filter(|x| x.early_close)
            .map(|x| x.date)
            .collect();
        assert_eq!(early, [d("2026-11-27"), d("2026-12-24")]);
    }

    #[test]
    fn accelerated_default_starts_open_and_cycles() {
        let t0 = at("2026-11-28T10:00:00Z"); // a Saturday
        let s = accelerated(ClockConfig::default(), 10, t0);
        let view = s.clock(t0);
        assert_eq!(view.phase, Phase::Open);
        assert_eq!(view.session_date, d("2026-11-30"), "next trading day");
        assert_eq!(view.next_close, t0 + Duration::seconds(11));
        // pre 1 + auction 1 + open 10 + closing 1 + closed 1 = 14 s a day.
        assert_eq!(view.next_open, t0 + Duration::seconds(14));
        let later = t0 + Duration::milliseconds(10_500);
        assert_eq!(s.phase_at(later), Phase::ClosingAuction);
        assert_eq!(s.phase_at(t0 + Duration::seconds(11)), Phase::Closed);
        assert_eq!(s.phase_at(t0 + Duration::seconds(12)), Phase::PreOpen);
        assert_eq!(
            s.phase_at(t0 + Duration::seconds(13)),
            Phase::OpeningAuction
        );
        let next = s.clock(t0 + Duration::seconds(12));
        assert_eq!(next.session_date, d("2026-12-01"));
        let days = s.sessions_in(d("2026-11-01"), d("2026-12-02"));
        assert_eq!(days.len(), 3, "day 0 is the first");
        assert_eq!(days[0].open, t0);
        assert_eq!(days[2].date, d("2026-12-02"));
        assert_eq!(days[2].open, t0 + Duration::seconds(28));
    }

    #[test]
    fn accelerated_zero_length_phases_are_back_to_back_sessions() {
        let config = ClockConfig {
            pre_open_secs: 0,
            opening_auction_secs: 0,
            closing_auction_secs: 0,
            closed_secs: 0,
            ..ClockConfig::default()
        };
        let t0 = at("2026-12-01T10:00:00Z");
        let s = accelerated(config, 5, t0);
        for ms in [0, 1, 4_999, 5_000, 5_001, 12_345] {
            assert_eq!(
                s.phase_at(t0 + Duration::milliseconds(ms)),
                Phase::Open,
                "{ms}"
            );
        }
        assert_eq!(
            s.clock(t0 + Duration::seconds(5)).next_close,
            t0 + Duration::seconds(10)
        );
    }

    #[test]
    fn advancing_moves_the_cycle_so_the_phase_starts_now() {
        let t0 = at("2026-12-01T10:00:00Z");
        let mut s = accelerated(ClockConfig::default(), 100, t0);
        let now = t0 + Duration::seconds(5);
        let target = s.next_phase_start(Phase::Closed, now).expect("accelerated");
        assert_eq!(target, t0 + Duration::seconds(101));
        s.shift_earlier((target - now).num_milliseconds());
        assert_eq!(s.phase_at(now), Phase::Closed);
        // The phase in progress moves to its next occurrence.
        let target = s.next_phase_start(Phase::Closed, now).expect("accelerated");
        assert_eq!(target, now + Duration::seconds(104));
        assert!(wall().next_phase_start(Phase::Open, now).is_none());
    }

    #[test]
    fn bad_clock_settings_are_refused() {
        let bad = |config: ClockConfig| ScheduleSpec::new(&config, 100, Calendar::builtin());
        let wall = |f: fn(&mut ClockConfig)| {
            let mut c = ClockConfig {
                mode: ClockMode::Wall,
                ..ClockConfig::default()
            };
            f(&mut c);
            c
        };
        assert!(bad(wall(|c| c.timezone = "Mars/Olympus".into())).is_err());
        assert!(bad(wall(|c| c.open_time = "9h30".into())).is_err());
        assert!(bad(wall(|c| c.pre_open_time = "09:29".into())).is_err());
        assert!(bad(wall(|c| c.early_close_time = "09:35".into())).is_err());
        assert!(
            bad(ClockConfig {
                closed_secs: u64::MAX,
                ..ClockConfig::default()
            })
            .is_err()
        );
        assert!(Config::from_toml("[clock]\nmode = \"wall\"\nclose_time = \"25:00\"").is_err());
        assert!(Config::from_toml("[clock]\nmode = \"lunar\"").is_err());
    }
}
