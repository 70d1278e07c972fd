//! What every request handler shares: the application and this
//! instance's fan-out of trade updates to its `/stream` clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::app::App;
use crate::store::trade_updates::TradeUpdateNote;

/// Trade updates buffered per instance for slow stream clients; a client
/// that falls further behind is told so and disconnected.
pub const TRADE_UPDATE_BUFFER: usize = 4096;

#[derive(Debug)]
pub struct AppState {
    pub app: Arc<App>,
    /// Trade updates for this instance's `/stream` clients.
    pub trade_updates: broadcast::Sender<TradeUpdateNote>,
    /// The `/stream` sessions open on this instance.
    pub stream_sessions: StreamSessions,
}

impl AppState {
    pub fn new(app: Arc<App>) -> Arc<Self> {
        let http = &app.settings.http;
        let stream_sessions =
            StreamSessions::new(http.stream_sessions_max, http.stream_sessions_per_account);
        Arc::new(Self {
            app,
            trade_updates: broadcast::channel(TRADE_UPDATE_BUFFER).0,
            stream_sessions,
        })
    }
}

/// Counts of open `/stream` sessions, in all and per account, with their
/// caps: a slot is taken before the work and given back when its guard
/// drops.
#[derive(Debug)]
pub struct StreamSessions {
    max: usize,
    per_account_max: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_account: HashMap<Uuid, usize>,
}

fn lock(open: &Mutex<Open>) -> MutexGuard<'_, Open> {
    match open.lock() {
        Ok(open) => open,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One session's place in the count (in all; and its account's, once
/// authenticated).
#[derive(Debug)]
pub struct SessionSlot {
    open: Arc<Mutex<Open>>,
    account: Option<Uuid>,
}

impl StreamSessions {
    pub fn new(max: usize, per_account_max: usize) -> Self {
        Self {
            max,
            per_account_max,
            open: Arc::new(Mutex::new(Open::default())),
        }
    }

    /// A place for one more session, if this instance has one.
    pub fn connect(&self) -> Option<SessionSlot> {
        let mut open = lock(&self.open);
        if open.total >= self.max {
            return None;
        }
        open.total += 1;
        Some(SessionSlot {
            open: self.open.clone(),
            account: None,
        })
    }

    /// Counts `slot` as `account`'s, if the account has room for one more.
    pub fn authenticate(&self, slot: &mut SessionSlot, account: Uuid) -> bool {
        let mut open = lock(&self.open);
        let count = open.per_account.entry(account).or_insert(0);
        if *count >= self.per_account_max {
            return false;
        }
        *count += 1;
        slot.account = Some(account);
        true
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(account) = self.account
            && let Some(count) = open.per_account.get_mut(&account)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_account.remove(&account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let sessions = StreamSessions::new(2, 1);
        let account = Uuid::nil();
        let mut first = sessions.connect().expect("room");
        let mut second = sessions.connect().expect("room");
        assert!(sessions.connect().is_none(), "in all");
        assert!(sessions.authenticate(&mut first, account));
        assert!(!sessions.authenticate(&mut second, account), "per account");
        drop(first);
        assert!(sessions.authenticate(&mut second, account));
        let third = sessions.connect().expect("a place was given back");
        drop((second, third));
        assert_eq!(lock(&sessions.open).total, 0);
        assert!(lock(&sessions.open).per_account.is_empty());
    }
}
