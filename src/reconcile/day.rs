//! The trading day's jobs: `reference` (the venue's instruments and
//! calendar, synced) and `session_close` (what should have ended with a
//! closed session, and each account's equity at that close).

use chrono::Utc;

use super::jobs::{local_view, lookup_at_venue, venue_view};
use super::{Reconciler, Tally};
use crate::domain::reconcile::{Classification, Finding, Repair, diff_session_end};
use crate::engine::valuation;
use crate::store::{accounts, scans};

/// The venue's instruments and calendar, synced; each instrument listed,
/// changed or gone is a finding (the calendar is replaced for its range).
pub(super) async fn reference(r: &Reconciler, tally: &mut Tally) -> Result<(), sqlx::Error> {
    let report = match r.reference.sync().await {
        Ok(report) => report,
        Err(error) => {
            tally
                .errors
                .push(format!("syncing reference data: {error}"));
            return Ok(());
        }
    };
    tally.examined += report.examined;
    if let Some(skew) = report.clock_skew {
        let finding = Finding {
            kind: "venue_clock_skew",
            classification: Classification::Unresolvable,
            repair: Repair::None,
            detail: format!(
                "the venue's clock is {} ms from this instance's, more than exchange.clock_skew_ms allows: placements' receive windows prove less than they claim",
                skew.num_milliseconds()
            ),
        };
        r.act(tally, finding, None, Some("clock".to_string())).await;
    }
    for change in report.asset_changes {
        let after = change.after();
        let detail = match &change {
            crate::domain::asset::AssetChange::Listed(a) => {
                format!("{} ({}) listed on {}", a.symbol, a.status, a.exchange)
            }
            crate::domain::asset::AssetChange::Changed { before, after } => format!(
                "status {}→{}, tradable {}→{}, halted {}→{}",
                before.status,
                after.status,
                before.tradable,
                after.tradable,
                before.halted,
                after.halted
            ),
            crate::domain::asset::AssetChange::Unlisted { .. } => {
                "no longer listed by the venue: now inactive".to_string()
            }
        };
        let finding = Finding {
            kind: change.kind(),
            classification: Classification::Resolvable,
            repair: Repair::None,
            detail,
        };
        r.act(tally, finding, None, Some(after.symbol.clone()))
            .await;
    }
    Ok(())
}

/// Orders that should have ended with a session that is over and that
/// orderd still shows working: the venue's view decides the repair.
pub(super) async fn session_close(r: &Reconciler, tally: &mut Tally) -> Result<(), sqlx::Error> {
    let orders = scans::past_their_session(
        &r.engine.pool,
        r.settings.session_close_grace_ms,
        r.settings.batch,
    )
    .await?;
    for order in orders {
        tally.examined += 1;
        let Some(venue) = lookup_at_venue(r, &order, tally).await else {
            continue;
        };
        let Some(local) = local_view(&order) else {
            continue;
        };
        let finding = diff_session_end(&local, venue.as_ref().map(venue_view).as_ref());
        let subject = venue.map(|v| v.id.to_string());
        r.act(tally, finding, Some(&order), subject).await;
    }
    snapshot_equity(r, tally).await
}

/// Each account's equity at the latest close, once per session (Alpaca's
/// `last_equity`): taken by the first run after the close's grace (later,
/// at later prices, if orderd was down), every account in pages of the
/// batch size; an account the ledger or the venue cannot value exactly now
/// is tried again by the next run, never stored with a position missing.
async fn snapshot_equity(r: &Reconciler, tally: &mut Tally) -> Result<(), sqlx::Error> {
    let grace = chrono::Duration::milliseconds(
        i64::try_from(r.settings.session_close_grace_ms).unwrap_or(0),
    );
    let reference = r.reference.snapshot();
    let Some(session) = reference.calendar.last_closed(Utc::now(), grace) else {
        return Ok(());
    };
    let pool = &r.engine.pool;
    let mut after = uuid::Uuid::nil();
    loop {
        let page =
            accounts::without_snapshot(pool, session.date, after, i64::from(r.settings.batch))
                .await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = *last;
        for (account_id, balances_account_id) in page {
            tally.examined += 1;
            match valuation::value_exactly(&r.engine, &balances_account_id).await {
                Ok(value) => {
                    accounts::insert_snapshot(pool, account_id, session.date, value.equity).await?
                }
                Err(error) => tally.errors.push(format!(
                    "valuing account {account_id} at the {} close: {error}",
                    session.date
                )),
            }
        }
    }
}
