//! The short chaos run CI does: two seeds, every simulator fault on at
//! random rates, orderd killed with SIGKILL at random moments and at
//! failpoints, then every invariant checked (`orderd chaos`). The long
//! version runs on demand: `orderd chaos --seeds 20 --duration 60`.

use std::process::Command;

#[test]
fn two_seeded_chaos_runs_keep_every_invariant() {
    let orderd = std::path::Path::new(env!("CARGO_BIN_EXE_orderd"));
    let bin_dir = orderd.parent().expect("binary directory");
    for sim in ["exchange-sim", "balances-sim"] {
        assert!(
            bin_dir.join(sim).is_file(),
            "{sim} is not built beside orderd; run the suite with scripts/test (it builds every workspace binary)"
        );
    }
    let work_dir =
        std::env::temp_dir().join(format!("orderd-chaos-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new(orderd)
        .args(["chaos", "--seeds", "2", "--duration", "8", "--work-dir"])
        .arg(&work_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run orderd chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let _ = std::fs::remove_dir_all(&work_dir);
    assert!(
        output.status.success(),
        "chaos failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all runs kept every invariant"), "{stdout}");
    let rows = stdout
        .lines()
        .filter(|l| l.trim_end().ends_with(" ok"))
        .count();
    assert_eq!(rows, 2, "{stdout}");
}
