//! When a rate-limited technician may ask again: the
//! refusal says so (`retry_after_s`) instead of leaving them to guess
//! within the hour.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The rate limit's window (`max_prompts_per_technician_per_hour`); the
/// same hour the consent core's rate limit slides.
pub(super) const WINDOW: Duration = Duration::from_secs(3600);

/// Time until the oldest prompt in the window leaves it, which frees one
/// place; `None` when the window is empty (nothing to wait for).
pub(super) fn retry_after(times: &VecDeque<Instant>, now: Instant) -> Option<Duration> {
    let oldest = times
        .iter()
        .copied()
        .find(|t| now.saturating_duration_since(*t) < WINDOW)?;
    Some(WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_prompt_in_the_window_says_when() {
        let now = Instant::now() + Duration::from_secs(7200);
        let times: VecDeque<Instant> = [
            now - Duration::from_secs(4000), // already out of the window
            now - Duration::from_secs(3000),
            now - Duration::from_secs(10),
        ]
        .into();
        assert_eq!(retry_after(&times, now), Some(Duration::from_secs(600)));
        assert_eq!(retry_after(&VecDeque::new(), now), None);
        let old: VecDeque<Instant> = [now - Duration::from_secs(3600)].into();
        assert_eq!(retry_after(&old, now), None);
        let fresh: VecDeque<Instant> = [now].into();
        assert_eq!(retry_after(&fresh, now), Some(WINDOW));
    }
}
