//! Idempotency keys and venue ids, all derived from the order id, so every
//! retry of a call sends the same ones.

use uuid::Uuid;

use crate::domain::ids::VenueClientOrderId;

/// Every client_order_id orderd sends to the venue starts with this; a
/// venue order with it that orderd does not know is an orphan.
pub const VENUE_CLIENT_ORDER_ID_PREFIX: &str = "od-";

/// The order's client order id at the venue: the placement's key.
pub fn venue_client_order_id(order_id: Uuid) -> VenueClientOrderId {
    VenueClientOrderId::new(format!(
        "{VENUE_CLIENT_ORDER_ID_PREFIX}{}",
        order_id.simple()
    ))
}

/// The hold's key at the balances service.
pub fn hold(order_id: Uuid) -> String {
    format!("hold-{order_id}")
}

/// The key of a replacement's raise of the hold it takes over.
pub fn raise(order_id: Uuid) -> String {
    format!("raise-{order_id}")
}

/// The release's key at the balances service.
pub fn release(order_id: Uuid) -> String {
    format!("release-{order_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venue_ids_sort_like_order_ids() {
        // Appliers lock orders by venue client order id and everything else
        // locks them by order id: the two orders must agree.
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(
            a.cmp(&b),
            venue_client_order_id(a).cmp(&venue_client_order_id(b))
        );
    }
}
