//! Idempotency-key records (IETF Idempotency-Key draft, Stripe semantics).
//!
//! A key is scoped by operation (hold, release, settlement). Its fingerprint is the
//! parsed request, compared by value (so `"100"` and `"100.0"` are the same amount).
//! A key is reserved as in flight before any injected latency and completed with the
//! exact response (status and body bytes) in the same critical section as the ledger
//! change, so a replay is byte-identical and can never observe a half-done state.
//! Validation failures and injected faults are not recorded: the key stays free.

use std::collections::HashMap;

use axum::body::Bytes;

use crate::ledger::{IncreaseHold, NewHold, NewSettlement, ReleaseHold};

/// The parsed request a key was first used with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    Hold(NewHold),
    Release(ReleaseHold),
    Increase(IncreaseHold),
    Settlement(NewSettlement),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Hold,
    Release,
    Increase,
    Settlement,
}

impl Fingerprint {
    pub fn operation(&self) -> Operation {
        match self {
            Fingerprint::Hold(_) => Operation::Hold,
            Fingerprint::Release(_) => Operation::Release,
            Fingerprint::Increase(_) => Operation::Increase,
            Fingerprint::Settlement(_) => Operation::Settlement,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Fingerprint::Hold(r) => &r.idempotency_key,
            Fingerprint::Release(r) => &r.idempotency_key,
            Fingerprint::Increase(r) => &r.idempotency_key,
            Fingerprint::Settlement(r) => &r.idempotency_key,
        }
    }
}

enum Record {
    InFlight,
    Done {
        /// Boxed: requests are large next to the in-flight marker.
        fingerprint: Box<Fingerprint>,
        status: u16,
        body: Bytes,
    },
}

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// The key is now reserved for this request: process it, then `complete` or `abandon`.
    Proceed,
    /// Same key, same request, already answered: send this again.
    Replay { status: u16, body: Bytes },
    /// Same key while the first request is still being processed.
    InFlight,
    /// Same key, different request.
    Reused,
}

#[derive(Default)]
pub struct IdempotencyStore {
    records: HashMap<(Operation, String), Record>,
    pub replayed: u64,
    pub in_flight_conflicts: u64,
    pub key_reused: u64,
}

impl IdempotencyStore {
    pub fn begin(&mut self, fingerprint: &Fingerprint) -> Begin {
        let scope = (fingerprint.operation(), fingerprint.key().to_owned());
        match self.records.get(&scope) {
            None => {
                self.records.insert(scope, Record::InFlight);
                Begin::Proceed
            }
            Some(Record::InFlight) => {
                self.in_flight_conflicts += 1;
                Begin::InFlight
            }
            Some(Record::Done {
                fingerprint: first,
                status,
                body,
            }) => {
                if **first == *fingerprint {
                    self.replayed += 1;
                    Begin::Replay {
                        status: *status,
                        body: body.clone(),
                    }
                } else {
                    self.key_reused += 1;
                    Begin::Reused
                }
            }
        }
    }

    pub fn complete(&mut self, fingerprint: Fingerprint, status: u16, body: Bytes) {
        let scope = (fingerprint.operation(), fingerprint.key().to_owned());
        self.records.insert(
            scope,
            Record::Done {
                fingerprint: Box::new(fingerprint),
                status,
                body,
            },
        );
    }

    /// Frees a key whose request ended without an outcome (the client went away).
    pub fn abandon(&mut self, operation: Operation, key: &str) {
        let scope = (operation, key.to_owned());
        if matches!(self.records.get(&scope), Some(Record::InFlight)) {
            self.records.remove(&scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::HoldReference;

    fn hold(key: &str, amount: &str) -> Fingerprint {
        Fingerprint::Hold(NewHold {
            idempotency_key: key.to_owned(),
            account_id: "a".to_owned(),
            asset: "USD".to_owned(),
            amount: amount.parse().unwrap(),
            reference: HoldReference::default(),
        })
    }

    #[test]
    fn lifecycle() {
        let mut store = IdempotencyStore::default();
        assert_eq!(store.begin(&hold("k", "1")), Begin::Proceed);
        assert_eq!(store.begin(&hold("k", "1")), Begin::InFlight);
        store.complete(hold("k", "1"), 201, Bytes::from_static(b"{}"));
        assert_eq!(
            store.begin(&hold("k", "1.00")),
            Begin::Replay {
                status: 201,
                body: Bytes::from_static(b"{}")
            }
        );
        assert_eq!(store.begin(&hold("k", "2")), Begin::Reused);
        assert_eq!(store.begin(&hold("j", "1")), Begin::Proceed);
        store.abandon(Operation::Hold, "j");
        assert_eq!(store.begin(&hold("j", "1")), Begin::Proceed);
    }
}
