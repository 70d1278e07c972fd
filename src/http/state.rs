//! What every request handler shares: the application and this
//! instance's fan-out of trade updates to its `/stream` clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::app::App;
use crate::store::accounts::Account;
use crate::store::console::{AttentionCounts, BlotterRow};
use crate::store::trade_updates::TradeUpdateNote;

/// Trade updates buffered per instance: announced and waiting to be
/// rendered (past it they are dropped and counted), and rendered for slow
/// stream clients (a client that falls further behind is disconnected).
pub const TRADE_UPDATE_BUFFER: usize = 4096;

/// Batches of changed rows buffered for a slow console (past it, the
/// console is told it lagged).
pub const CONSOLE_ROW_BATCHES: usize = 64;

/// One trade update, rendered once for every `/stream` session of its
/// account on this instance: the frame is sent as is.
#[derive(Debug, Clone)]
pub struct RenderedUpdate {
    pub account_id: Uuid,
    pub frame: Utf8Bytes,
}

#[derive(Debug)]
pub struct AppState {
    pub app: Arc<App>,
    /// Rendered trade updates for this instance's `/stream` clients.
    pub trade_updates: broadcast::Sender<RenderedUpdate>,
    /// The `/stream` sessions open on this instance.
    pub stream_sessions: StreamSessions,
    /// Trade-update notes for the console's live hub (`console::live`),
    /// handed over by the relay while a console watches.
    pub console_notes: broadcast::Sender<TradeUpdateNote>,
    /// Blotter rows of changed orders, read once by the hub, for every
    /// console watching on this instance.
    pub console_rows: broadcast::Sender<Arc<Vec<BlotterRow>>>,
    /// How many orders are parked, unknown or stuck, as the hub last read
    /// it while a console watched.
    pub console_counts: tokio::sync::watch::Sender<AttentionCounts>,
    /// Turns true when the server starts to stop: responses that never
    /// end by themselves (the console's live streams) end then, so the
    /// drain does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
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
            console_notes: broadcast::channel(TRADE_UPDATE_BUFFER).0,
            console_rows: broadcast::channel(CONSOLE_ROW_BATCHES).0,
            console_counts: tokio::sync::watch::channel(AttentionCounts::default()).0,
            stopping: tokio::sync::watch::channel(false).0,
        })
    }
}

/// Counts of open `/stream` sessions, in all and per account, with their
/// caps: a slot is taken before the work and given back when its guard
/// drops. The accounts with an authenticated session are the ones whose
/// trade updates this instance renders.
#[derive(Debug)]
pub struct StreamSessions {
    max: usize,
    per_account_max: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_account: HashMap<Uuid, AccountSessions>,
}

/// An account's authenticated sessions: how many, and the account (as the
/// first of them authenticated it).
#[derive(Debug)]
struct AccountSessions {
    count: usize,
    account: Arc<Account>,
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
    pub fn authenticate(&self, slot: &mut SessionSlot, account: &Account) -> bool {
        let mut open = lock(&self.open);
        let sessions = open
            .per_account
            .entry(account.account_id)
            .or_insert_with(|| AccountSessions {
                count: 0,
                account: Arc::new(account.clone()),
            });
        if sessions.count >= self.per_account_max {
            return false;
        }
        sessions.count += 1;
        slot.account = Some(account.account_id);
        true
    }

    /// The account, if a session of it is authenticated on this instance
    /// (otherwise its trade updates are nobody's here).
    pub fn connected(&self, account_id: Uuid) -> Option<Arc<Account>> {
        lock(&self.open)
            .per_account
            .get(&account_id)
            .map(|sessions| sessions.account.clone())
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(account) = self.account
            && let Some(sessions) = open.per_account.get_mut(&account)
        {
            sessions.count = sessions.count.saturating_sub(1);
            if sessions.count == 0 {
                open.per_account.remove(&account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            account_id: Uuid::nil(),
            name: "a".to_string(),
            balances_account_id: "ledger-a".to_string(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn slots_are_counted_and_given_back() {
        let sessions = StreamSessions::new(2, 1);
        let account = account();
        let mut first = sessions.connect().expect("room");
        let mut second = sessions.connect().expect("room");
        assert!(sessions.connect().is_none(), "in all");
        assert!(sessions.authenticate(&mut first, &account));
        assert!(!sessions.authenticate(&mut second, &account), "per account");
        drop(first);
        assert!(sessions.authenticate(&mut second, &account));
        let third = sessions.connect().expect("a place was given back");
        drop((second, third));
        assert_eq!(lock(&sessions.open).total, 0);
        assert!(lock(&sessions.open).per_account.is_empty());
    }

    #[test]
    fn an_account_is_connected_while_a_session_of_it_is_authenticated() {
        let sessions = StreamSessions::new(3, 2);
        let account = account();
        let anonymous = sessions.connect().expect("room");
        assert!(
            sessions.connected(account.account_id).is_none(),
            "not authenticated"
        );
        let mut first = sessions.connect().expect("room");
        let mut second = sessions.connect().expect("room");
        assert!(sessions.authenticate(&mut first, &account));
        assert!(sessions.authenticate(&mut second, &account));
        let connected = sessions.connected(account.account_id).expect("connected");
        assert_eq!(connected.balances_account_id, "ledger-a");
        drop(first);
        assert!(sessions.connected(account.account_id).is_some(), "one left");
        drop(second);
        assert!(
            sessions.connected(account.account_id).is_none(),
            "none left"
        );
        drop(anonymous);
    }
}
