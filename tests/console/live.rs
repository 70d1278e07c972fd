//! Live updates: an order submitted while the blotter is open appears,
//! and its status changes, without a reload.
