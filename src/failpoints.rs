//! Crash failpoints for tests: `ORDERD_FAILPOINTS=name[,name...]` makes the
//! process kill itself with SIGKILL the first time it reaches a named
//! point, so crash tests can stop orderd exactly between an external call
//! and the record of its outcome. Unset (always, outside tests), a
//! failpoint costs one atomic load.

use std::sync::OnceLock;

/// Environment variable naming the armed failpoints.
pub const FAILPOINTS_VAR: &str = "ORDERD_FAILPOINTS";

/// Every failpoint, named where it sits.
pub const AFTER_ACCEPT_COMMIT: &str = "after_accept_commit";
pub const AFTER_HOLD_CREATED: &str = "after_hold_created";
pub const AFTER_PLACE_SENT: &str = "after_place_sent";
pub const AFTER_RELEASE_SENT: &str = "after_release_sent";

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(FAILPOINTS_VAR)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Dies with SIGKILL if `name` is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|armed| armed == name) {
        eprintln!("failpoint {name}: killing this process with SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
