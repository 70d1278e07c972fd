//! The order page: the timeline of an order that went through an unknown
//! outcome, and resuming a parked order.
