//! Reconciliation: a job run from the page, and its run listed.
