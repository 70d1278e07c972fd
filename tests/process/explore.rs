//! The schedule explorer's CI subset: a fixed core (the crash right after
//! a placement is sent followed by the trader's cancel or retry, every
//! actor once, every crash point once, a replace chain crashed around the
//! venue's cancel/replace and in a marketable replacement's fills) and a
//! sample of the rest that
//! rotates day by day. Each schedule runs on real processes and is checked
//! against both simulators' ground truth. The whole matrix is one command:
//! `orderd chaos --explore`.

use std::process::Command;

/// Schedules drawn beyond the fixed core.
const SAMPLE: &str = "24";

#[test]
fn the_ci_subset_of_schedules_keeps_every_invariant() {
    let orderd = std::path::Path::new(env!("CARGO_BIN_EXE_orderd"));
    let work_dir =
        std::env::temp_dir().join(format!("orderd-explore-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new(orderd)
        .args([
            "chaos",
            "--explore",
            "--ci",
            "--sample",
            SAMPLE,
            "--lanes",
            "2",
            "--work-dir",
        ])
        .arg(&work_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run orderd chaos --explore");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let _ = std::fs::remove_dir_all(&work_dir);
    assert!(
        output.status.success(),
        "schedules failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" 0 did not"), "{stdout}");
    // The schedule ran and crashed where it should, and so did a
    // replace chain's at the venue's cancel/replace, needing more hold and
    // less.
    for schedule in [
        "after_place_call/cancel/fills-at-once",
        "after_place_call/none/replace-up",
        "after_place_call/none/replace-down",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(schedule))
            .unwrap_or_else(|| panic!("the core schedule {schedule} is missing:\n{stdout}"));
        assert!(
            row.contains("crashed") && row.trim_end().ends_with("ok"),
            "{row}"
        );
    }
    // A marketable replacement's fills ran and kept every invariant (its
    // fills may reach orderd by a look-up instead of the stream, so its
    // crash point is not always reached).
    for schedule in [
        "after_fill_applied/none/replace-fills",
        "after_settle_call/none/replace-fills-carried",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(schedule))
            .unwrap_or_else(|| panic!("the core schedule {schedule} is missing:\n{stdout}"));
        assert!(row.trim_end().ends_with("ok"), "{row}");
    }
}
