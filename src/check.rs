//! The invariant checker: compares orderd's database with both services'
//! ground truth and reports each invariant (I1–I7, README.md) with the ids that
//! break it. [`collect`] reads the three sources; [`check`] is a pure
//! function over what was read. Run it once the system is quiet: work in
//! flight looks like a violation.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::fills::{Fill, SettlementState, fold};
use crate::domain::ids::{ExecId, VenueClientOrderId, VenueOrderId};
use crate::domain::lifecycle::{Status, VenueStatus};
use crate::domain::order::Side;

pub use crate::store::operator::{FillFacts, OrderFacts};

#[derive(Debug, Clone, Deserialize)]
pub struct VenueFillTruth {
    pub exec_id: ExecId,
    pub qty: Decimal,
    pub price: Decimal,
    #[serde(default)]
    pub transact_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VenueOrderTruth {
    pub id: VenueOrderId,
    pub client_order_id: VenueClientOrderId,
    pub status: String,
    pub filled_qty: Decimal,
    #[serde(default)]
    pub fills: Vec<VenueFillTruth>,
    /// A replacement: the venue order it replaced.
    #[serde(default)]
    pub replaces: Option<VenueOrderId>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExchangeTruth {
    pub orders: Vec<VenueOrderTruth>,
    #[serde(default)]
    pub orders_created: HashMap<VenueClientOrderId, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AssetTruth {
    pub total: Decimal,
    pub held: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AccountTruth {
    pub account_id: String,
    pub balances: BTreeMap<String, AssetTruth>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HoldReferenceTruth {
    #[serde(default)]
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HoldTruth {
    pub id: String,
    pub account_id: String,
    pub remaining: Decimal,
    pub reference: HoldReferenceTruth,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LedgerTruth {
    pub account_id: String,
    #[serde(rename = "type")]
    pub entry_type: String,
    pub asset: String,
    pub amount: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SettlementTruth {
    pub idempotency_key: ExecId,
    pub fee: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BalancesTruth {
    pub accounts: Vec<AccountTruth>,
    pub holds: Vec<HoldTruth>,
    pub ledger: Vec<LedgerTruth>,
    pub settlements: Vec<SettlementTruth>,
}

/// Everything the checker compares.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub orders: Vec<OrderFacts>,
    pub fills: Vec<FillFacts>,
    /// orderd account id → balances account id.
    pub accounts: HashMap<Uuid, String>,
    pub exchange: ExchangeTruth,
    pub balances: BalancesTruth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The offending id (order, exec or account).
    pub id: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvariantResult {
    pub name: &'static str,
    pub description: &'static str,
    /// `false` when this check cannot judge it from a snapshot.
    pub checked: bool,
    pub violations: Vec<Violation>,
}

impl InvariantResult {
    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub orders: usize,
    pub fills: usize,
    pub invariants: Vec<InvariantResult>,
}

impl Report {
    pub fn all_hold(&self) -> bool {
        self.invariants.iter().all(InvariantResult::holds)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0} ground truth: {1}")]
    Truth(&'static str, String),
}

async fn truth<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    what: &'static str,
    url: String,
) -> Result<T, CollectError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| CollectError::Truth(what, e.to_string()))?;
    if !response.status().is_success() {
        return Err(CollectError::Truth(what, response.status().to_string()));
    }
    response
        .json()
        .await
        .map_err(|e| CollectError::Truth(what, e.to_string()))
}

/// Reads orderd's database and both services' `/admin/ground-truth`.
pub async fn collect(
    pool: &PgPool,
    exchange_url: &str,
    balances_url: &str,
) -> Result<Snapshot, CollectError> {
    let (orders, fills, accounts) = crate::store::operator::check_facts(pool).await?;
    let client = reqwest::Client::new();
    let exchange = truth(
        &client,
        "exchange",
        format!("{}/admin/ground-truth", exchange_url.trim_end_matches('/')),
    )
    .await?;
    let balances = truth(
        &client,
        "balances",
        format!("{}/admin/ground-truth", balances_url.trim_end_matches('/')),
    )
    .await?;
    Ok(Snapshot {
        orders,
        fills,
        accounts: accounts.into_iter().collect(),
        exchange,
        balances,
    })
}

fn violation(id: impl ToString, detail: impl Into<String>) -> Violation {
    Violation {
        id: id.to_string(),
        detail: detail.into(),
    }
}

/// The trader's status a terminal venue status means.
fn terminal_status(venue: &str) -> Option<Status> {
    match VenueStatus::parse(venue)? {
        VenueStatus::Filled => Some(Status::Filled),
        VenueStatus::Canceled => Some(Status::Canceled),
        VenueStatus::Expired => Some(Status::Expired),
        VenueStatus::Rejected => Some(Status::Rejected),
        VenueStatus::Replaced => Some(Status::Replaced),
        _ => None,
    }
}

/// The first order of `order`'s replace chain.
fn chain_root(order: &OrderFacts, orders: &HashMap<Uuid, &OrderFacts>) -> Uuid {
    let mut at = order;
    // A chain is acyclic (each replacement is newer); the bound only
    // guards against a corrupt snapshot.
    for _ in 0..orders.len() {
        match at.replaces.and_then(|id| orders.get(&id)) {
            Some(previous) => at = previous,
            None => break,
        }
    }
    at.order_id
}

/// The order whose hold `first`'s hold is now: a replace chain shares the
/// hold of its first order, held for the one the venue last replaced to.
fn chain_holder<'a>(
    first: &'a OrderFacts,
    orders: &HashMap<Uuid, &'a OrderFacts>,
) -> &'a OrderFacts {
    let mut at = first;
    for _ in 0..orders.len() {
        match at
            .replaced_by
            .filter(|_| at.status == Status::Replaced)
            .and_then(|id| orders.get(&id))
        {
            Some(next) => at = next,
            None => break,
        }
    }
    at
}

/// Checks every invariant a snapshot can show.
pub fn check(snapshot: &Snapshot) -> Report {
    let venue_by_client: HashMap<&VenueClientOrderId, Vec<&VenueOrderTruth>> = snapshot
        .exchange
        .orders
        .iter()
        .fold(HashMap::new(), |mut map, o| {
            map.entry(&o.client_order_id).or_default().push(o);
            map
        });
    let fills_by_order: HashMap<Uuid, Vec<&FillFacts>> =
        snapshot.fills.iter().fold(HashMap::new(), |mut map, f| {
            map.entry(f.order_id).or_default().push(f);
            map
        });
    let orders_by_id: HashMap<Uuid, &OrderFacts> =
        snapshot.orders.iter().map(|o| (o.order_id, o)).collect();

    // I1: one venue order per order.
    let mut i1 = Vec::new();
    for order in &snapshot.orders {
        let venue = venue_by_client
            .get(&order.venue_client_order_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let created = snapshot
            .exchange
            .orders_created
            .get(&order.venue_client_order_id)
            .copied()
            .unwrap_or(venue.len() as u64);
        if venue.len() > 1 || created > 1 {
            i1.push(violation(
                order.order_id,
                format!("{} venue orders", venue.len().max(created as usize)),
            ));
        }
        if let (Some(ours), Some(theirs)) = (&order.venue_order_id, venue.first())
            && ours != &theirs.id
        {
            i1.push(violation(
                order.order_id,
                format!("recorded venue order {ours}, venue has {}", theirs.id),
            ));
        }
    }
    // A replace chain works one venue order at a time: whatever the venue
    // still works of a chain is its last order's.
    let mut live_by_chain: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for order in &snapshot.orders {
        let live = venue_by_client
            .get(&order.venue_client_order_id)
            .into_iter()
            .flatten()
            .any(|v| VenueStatus::parse(&v.status).is_some_and(|s| !s.is_terminal()));
        if live {
            live_by_chain
                .entry(chain_root(order, &orders_by_id))
                .or_default()
                .push(order.order_id);
        }
    }
    // And at any time: an order orderd placed as a replacement reached the
    // venue as one (a cancel/replace of the order it replaces, never a
    // second order beside it), and the replaced order executed nothing
    // after its replacement was entered.
    let venue_by_id: HashMap<&VenueOrderId, &VenueOrderTruth> = snapshot
        .exchange
        .orders
        .iter()
        .map(|o| (&o.id, o))
        .collect();
    for order in &snapshot.orders {
        let (Some(original_id), Some(venue_id)) = (order.replaces, &order.venue_order_id) else {
            continue;
        };
        let Some(venue) = venue_by_id.get(venue_id) else {
            continue;
        };
        let original_venue_id = orders_by_id
            .get(&original_id)
            .and_then(|o| o.venue_order_id.as_ref());
        if venue.replaces.as_ref() != original_venue_id {
            i1.push(violation(
                order.order_id,
                format!(
                    "placed as a replacement of {original_id}, but the venue entered it replacing {:?}",
                    venue.replaces
                ),
            ));
        }
    }
    for venue in &snapshot.exchange.orders {
        let (Some(replaced_id), Some(entered)) = (&venue.replaces, venue.created_at) else {
            continue;
        };
        let Some(replaced) = venue_by_id.get(replaced_id) else {
            continue;
        };
        if replaced.status != VenueStatus::Replaced.as_str() {
            i1.push(violation(
                &venue.client_order_id,
                format!(
                    "its replaced venue order {replaced_id} is {}",
                    replaced.status
                ),
            ));
        }
        for fill in &replaced.fills {
            if fill.transact_time.is_some_and(|at| at > entered) {
                i1.push(violation(
                    &venue.client_order_id,
                    format!(
                        "the order it replaced executed {} after it was entered",
                        fill.exec_id
                    ),
                ));
            }
        }
    }
    for (root, live) in live_by_chain {
        if live.len() > 1 {
            i1.push(violation(
                root,
                format!(
                    "{} live venue orders in one replace chain: {live:?}",
                    live.len()
                ),
            ));
        }
    }

    // I2: exactly-once fills, each settled exactly once.
    let mut i2 = Vec::new();
    let settlements: HashMap<&ExecId, usize> =
        snapshot
            .balances
            .settlements
            .iter()
            .fold(HashMap::new(), |mut map, s| {
                *map.entry(&s.idempotency_key).or_default() += 1;
                map
            });
    for order in &snapshot.orders {
        let ours: BTreeSet<&ExecId> = fills_by_order
            .get(&order.order_id)
            .map(|fs| fs.iter().map(|f| &f.exec_id).collect())
            .unwrap_or_default();
        let theirs: BTreeSet<&ExecId> = venue_by_client
            .get(&order.venue_client_order_id)
            .map(|vs| {
                vs.iter()
                    .flat_map(|v| v.fills.iter().map(|f| &f.exec_id))
                    .collect()
            })
            .unwrap_or_default();
        for missing in theirs.difference(&ours) {
            i2.push(violation(
                order.order_id,
                format!("venue fill {missing} not recorded"),
            ));
        }
        for extra in ours.difference(&theirs) {
            i2.push(violation(
                order.order_id,
                format!("recorded fill {extra} unknown to the venue"),
            ));
        }
    }
    for fill in &snapshot.fills {
        if fill.settlement_state != SettlementState::Settled {
            i2.push(violation(
                &fill.exec_id,
                format!("settlement {}", fill.settlement_state),
            ));
        }
        match settlements.get(&fill.exec_id).copied().unwrap_or(0) {
            1 => {}
            n => i2.push(violation(
                &fill.exec_id,
                format!("{n} settlements in the ledger"),
            )),
        }
    }

    // I3: projection = fold of fills; terminal status matches the venue's.
    let mut i3 = Vec::new();
    for order in &snapshot.orders {
        let fills: Vec<Fill> = fills_by_order
            .get(&order.order_id)
            .map(|fs| {
                fs.iter()
                    .map(|f| Fill {
                        exec_id: f.exec_id.to_string(),
                        qty: f.qty,
                        price: f.price,
                    })
                    .collect()
            })
            .unwrap_or_default();
        // A notional order's fills are bounded by its qty once the venue
        // reported it filled (orderd records it then), by any quantity before.
        let bound = match order.notional {
            Some(_) if order.qty.is_zero() => crate::domain::fills::REPORT_QTY_MAX,
            _ => order.qty,
        };
        match fold(bound, &fills) {
            Ok(summary) => {
                if summary.filled_qty != order.filled_qty
                    || summary.avg_price != order.filled_avg_price
                {
                    i3.push(violation(
                        order.order_id,
                        format!(
                            "projection {} @ {:?}, fills fold to {} @ {:?}",
                            order.filled_qty,
                            order.filled_avg_price,
                            summary.filled_qty,
                            summary.avg_price
                        ),
                    ));
                }
            }
            Err(overfill) => i3.push(violation(order.order_id, overfill.to_string())),
        }
        if let Some(venue) = venue_by_client
            .get(&order.venue_client_order_id)
            .and_then(|v| v.first())
            && let Some(venue_status) = terminal_status(&venue.status)
            && venue_status != order.status
        {
            i3.push(violation(
                order.order_id,
                format!("status {}, the venue says {}", order.status, venue.status),
            ));
        }
    }

    // I4: conservation, and nothing held for a terminal order.
    let mut i4 = Vec::new();
    for (account_id, balances_id) in &snapshot.accounts {
        let mut expected: BTreeMap<String, Decimal> = BTreeMap::new();
        for entry in snapshot
            .balances
            .ledger
            .iter()
            .filter(|e| &e.account_id == balances_id && e.entry_type == "adjustment")
        {
            *expected.entry(entry.asset.clone()).or_default() += entry.amount;
        }
        for fill in &snapshot.fills {
            let Some(order) = orders_by_id.get(&fill.order_id) else {
                continue;
            };
            if &order.account_id != account_id {
                continue;
            }
            let cash = fill.qty * fill.price;
            let sign = if order.side == Side::Buy {
                Decimal::ONE
            } else {
                -Decimal::ONE
            };
            *expected.entry(order.symbol.clone()).or_default() += sign * fill.qty;
            *expected.entry("USD".to_string()).or_default() -= sign * cash;
        }
        let fees: Decimal = snapshot
            .balances
            .settlements
            .iter()
            .filter(|s| {
                snapshot.fills.iter().any(|f| {
                    f.exec_id == s.idempotency_key
                        && orders_by_id
                            .get(&f.order_id)
                            .is_some_and(|o| &o.account_id == account_id)
                })
            })
            .map(|s| s.fee)
            .sum();
        *expected.entry("USD".to_string()).or_default() -= fees;
        let Some(actual) = snapshot
            .balances
            .accounts
            .iter()
            .find(|a| &a.account_id == balances_id)
        else {
            continue;
        };
        let assets: BTreeSet<&String> = expected.keys().chain(actual.balances.keys()).collect();
        for asset in assets {
            let want = expected.get(asset).copied().unwrap_or_default();
            let have = actual
                .balances
                .get(asset)
                .map(|b| b.total)
                .unwrap_or_default();
            if want != have {
                i4.push(violation(
                    account_id,
                    format!("{asset}: total {have}, start plus settled fills gives {want}"),
                ));
            }
        }
    }
    for hold in &snapshot.balances.holds {
        if hold.remaining.is_zero() {
            continue;
        }
        let order = hold
            .reference
            .order_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok())
            .and_then(|id| orders_by_id.get(&id))
            .map(|order| chain_holder(order, &orders_by_id));
        match order {
            Some(order) if order.status.is_terminal() => i4.push(violation(
                order.order_id,
                format!(
                    "{} still held by hold {} of a {} order",
                    hold.remaining, hold.id, order.status
                ),
            )),
            Some(_) => {}
            None => i4.push(violation(
                &hold.id,
                format!("{} held for no known order", hold.remaining),
            )),
        }
    }

    // I6: nothing stuck once quiet.
    let mut i6 = Vec::new();
    for order in &snapshot.orders {
        if order.step.is_driven() || order.step == crate::domain::lifecycle::Step::Parked {
            i6.push(violation(
                order.order_id,
                format!("at step {} ({})", order.step, order.status),
            ));
        }
    }

    // S1: no order outlives the session it was for.
    let mut s1 = Vec::new();
    for order in &snapshot.orders {
        if order.session_over && !order.status.is_terminal() {
            s1.push(violation(
                order.order_id,
                format!(
                    "a {} order still {} after its session ended",
                    order.time_in_force, order.status
                ),
            ));
        }
    }

    let result = |name, description, violations| InvariantResult {
        name,
        description,
        checked: true,
        violations,
    };
    Report {
        orders: snapshot.orders.len(),
        fills: snapshot.fills.len(),
        invariants: vec![
            result(
                "I1",
                "one venue order per order; one live per replace chain",
                i1,
            ),
            result("I2", "exactly-once fills, each settled once", i2),
            result(
                "I3",
                "projection = fold of fills; terminal status matches the venue",
                i3,
            ),
            result("I4", "conservation; nothing held for a terminal order", i4),
            InvariantResult {
                name: "I5",
                description: "acknowledged orders survive kill -9 (checked by the crash harness)",
                checked: false,
                violations: Vec::new(),
            },
            result(
                "I6",
                "every order finished or working; every hold resolved",
                i6,
            ),
            InvariantResult {
                name: "I7",
                description: "retried requests get the same outcome (checked by the API tests)",
                checked: false,
                violations: Vec::new(),
            },
            result(
                "S1",
                "no day, ioc, fok, opg or cls order outlives its session",
                s1,
            ),
        ],
    }
}
