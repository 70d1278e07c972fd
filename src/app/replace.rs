//! Replacing an order (`PATCH /v2/orders/{id}`, Alpaca's semantics): the
//! replacement is a new order with its own id, accepted together with the
//! mark on the order it replaces (`pending_replace`, `replaced_by`) and
//! driven like any order; its placement is the venue's cancel/replace
//! (`engine::replace`). Success does not mean replaced: if the original
//! fills first, the venue refuses the replace and the replacement ends
//! rejected while the original's replace is undone
//! (`order_replace_rejected`).
//!
//! `qty` is the total wanted, what the chain filled included (FIX
//! semantics): the replacement's own quantity is the rest, estimated from
//! the fills orderd knows of and confirmed by the venue.

use std::sync::Arc;

use uuid::Uuid;

use super::App;
use super::intake::{self, Answer, Render, Reply, ReplyBody, SubmitError};
use crate::domain::order::{Amount, NewOrder, Qty};
use crate::domain::replace::{NotReplaceable, ReplaceFacts, replaceable};
use crate::store::accounts::Account;
use crate::store::orders::{self as order_store, OrderRecord, Replacing};

/// What decides whether `order` can be replaced.
fn facts(order: &OrderRecord) -> ReplaceFacts {
    ReplaceFacts {
        status: order.status,
        step: order.step,
        order_type: order.order_type,
        time_in_force: order.time_in_force,
        notional: order.notional.is_some(),
        cancel_requested: order.cancel_requested_at.is_some(),
        replaced_by: order.replaced_by.is_some(),
    }
}

/// Replaces `original_id` with `order`: the original's terms with the
/// trader's changes, `qty` being the total wanted. Answers as a submit
/// does, with the replacement.
pub async fn replace(
    app: Arc<App>,
    account: Account,
    original_id: Uuid,
    order: NewOrder,
    render: Render,
    request_id: Option<&str>,
) -> Result<Reply, SubmitError> {
    if !app.settings.lifecycle.replace_orders {
        return Err(NotReplaceable(
            "replaces are not enabled here (lifecycle.replace_orders)".to_string(),
        )
        .into());
    }
    let original = order_store::load_for_account(&app.pool, account.account_id, original_id)
        .await?
        .ok_or(SubmitError::NotFound(original_id))?;
    let digest = format!("replace|v1|{original_id}|{}", order.fingerprint());
    if let Some(reply) = replayed(&app, &original, &digest).await? {
        return Ok(reply);
    }
    replaceable(facts(&original))?;
    if !original.qty_confirmed {
        return Err(NotReplaceable(
            "the venue has not confirmed this order's own replace yet; retry shortly".to_string(),
        )
        .into());
    }
    let carried = original.carried_qty + original.filled_qty;
    let total = order.amount.qty().map(Qty::value).unwrap_or_default();
    let own = Qty::parse(total - carried).map_err(|_| {
        NotReplaceable(format!(
            "qty must be more than the {} already filled",
            carried.normalize()
        ))
    })?;
    let order = NewOrder {
        amount: Amount::Qty(own),
        request_digest: Some(digest),
        ..order
    };
    intake::admit(&app, &account, &order, None).await?;
    intake::accept_in_task(
        app,
        account,
        order,
        None,
        render,
        request_id,
        Some(Replacing {
            original: original_id,
            carried_qty: carried,
        }),
    )
    .await
}

/// The same replace again (its answer was lost, or the trader retried):
/// the replacement it made, resumed if nobody drives it.
async fn replayed(
    app: &App,
    original: &OrderRecord,
    digest: &str,
) -> Result<Option<Reply>, SubmitError> {
    let Some(replacement_id) = original.replaced_by else {
        return Ok(None);
    };
    let Some(replacement) = order_store::load(&app.pool, replacement_id).await? else {
        return Ok(None);
    };
    if replacement.request_fingerprint != digest {
        return Ok(None);
    }
    let replacement = super::idempotency::resume(app, replacement_id)
        .await?
        .unwrap_or(replacement);
    Ok(Some(Reply {
        body: ReplyBody::Fresh(Answer::of(replacement)),
        replayed: true,
    }))
}

/// Why the accept could not mark `original_id` (it changed meanwhile).
pub(super) async fn refusal(app: &App, account_id: Uuid, original_id: Uuid) -> SubmitError {
    match order_store::load_for_account(&app.pool, account_id, original_id).await {
        Ok(Some(original)) => match replaceable(facts(&original)) {
            Err(refused) => refused.into(),
            Ok(()) => NotReplaceable(
                "the order changed while it was being replaced; try again".to_string(),
            )
            .into(),
        },
        Ok(None) => SubmitError::NotFound(original_id),
        Err(error) => error.into(),
    }
}
