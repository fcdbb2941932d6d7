//! Whether the real peers a test drives are installed: fail under
//! `ACCORD_REQUIRE_PEERS=1` (CI), otherwise say `SKIPPED` loudly.

pub fn require_peers() -> bool {
    std::env::var("ACCORD_REQUIRE_PEERS").as_deref() == Ok("1")
}

pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// True when every program is installed. Otherwise fails under
/// `ACCORD_REQUIRE_PEERS=1`, or prints `SKIPPED: …` and returns false.
pub fn have(bins: &[&str]) -> bool {
    let missing: Vec<&str> = bins.iter().copied().filter(|b| !on_path(b)).collect();
    if missing.is_empty() {
        return true;
    }
    if require_peers() {
        panic!("ACCORD_REQUIRE_PEERS=1 but not installed: {missing:?} (run scripts/deps.sh test)");
    }
    for b in missing {
        eprintln!("SKIPPED: {b} not installed");
    }
    false
}
