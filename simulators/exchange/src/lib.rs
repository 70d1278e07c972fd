//! exchange simulator.
