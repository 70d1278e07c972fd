//! balances simulator.
