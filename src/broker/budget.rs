//! The audit volume of refusals (T11 without a full disk): how many
//! `request_rejected` records one origin may cause per minute. Each
//! technician (by certificate) and each anonymous source has its own budget,
//! so junk from one place neither fills the disk nor hides another's
//! refusals; anonymous sources together have a ceiling too. What is over
//! budget is counted into the next record of the same origin, so the log
//! still says how many there were.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rejections recorded per minute for one class (one technician, one
/// anonymous source) before they are only counted.
pub const REJECT_RECORDS_PER_CLASS_PER_MINUTE: u32 = 10;
/// Rejections of anonymous sources recorded per minute in all: many sources
/// together must not fill the disk either.
pub const ANONYMOUS_REJECT_RECORDS_PER_MINUTE: u32 = 60;

/// The unit a flood is counted by: an IPv4 address, or an IPv6 /64 (what one
/// host usually has, so a host cannot pose as many by changing addresses).
pub(crate) fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = a.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Whose rejections share a budget.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RejectClass {
    /// An identified technician (by certificate fingerprint).
    Technician(String),
    /// Anyone without a verified certificate, by source.
    Anonymous(IpAddr),
    /// A local user whose session helper broke the helper protocol
    /// (`helper_rejected`): reconnecting in a loop must not fill the log.
    LocalUser(u32),
}

/// Rejection records per class per minute; beyond the budget they go to
/// `tracing` only and are counted into the class's next record.
#[derive(Default)]
pub(crate) struct RejectLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    window: Option<Instant>,
    recorded: HashMap<RejectClass, u32>,
    anonymous_recorded: u32,
    /// Rejections not recorded, per class, since that class's last record.
    not_recorded: HashMap<RejectClass, u64>,
}

/// Most classes remembered with a pending count: a flood from many sources
/// must not grow this map without bound (the oldest counts are then only in
/// the service's own log).
const MAX_COUNTED_CLASSES: usize = 4096;

impl RejectLimiter {
    /// Whether this rejection is recorded; if so, how many of its class were
    /// not recorded since its last record.
    pub(crate) fn admit(&self, class: &RejectClass, now: Instant) -> Option<u64> {
        let Ok(mut st) = self.state.lock() else {
            return None;
        };
        if st
            .window
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
        {
            st.window = Some(now);
            st.recorded.clear();
            st.anonymous_recorded = 0;
        }
        let anonymous = matches!(class, RejectClass::Anonymous(_));
        let n = st.recorded.get(class).copied().unwrap_or(0);
        let over = n >= REJECT_RECORDS_PER_CLASS_PER_MINUTE
            || (anonymous && st.anonymous_recorded >= ANONYMOUS_REJECT_RECORDS_PER_MINUTE);
        if over {
            if st.not_recorded.len() < MAX_COUNTED_CLASSES || st.not_recorded.contains_key(class) {
                *st.not_recorded.entry(class.clone()).or_insert(0) += 1;
            }
            return None;
        }
        st.recorded.insert(class.clone(), n + 1);
        if anonymous {
            st.anonymous_recorded += 1;
        }
        Some(st.not_recorded.remove(class).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(source_of(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
    #[test]
    fn rejection_budget_is_per_class_and_counts_the_rest() {
        let l = RejectLimiter::default();
        let t0 = Instant::now();
        let junk = RejectClass::Anonymous("10.0.0.1".parse().unwrap());
        let tech = RejectClass::Technician("sha256:ab".into());
        for _ in 0..REJECT_RECORDS_PER_CLASS_PER_MINUTE {
            assert_eq!(l.admit(&junk, t0), Some(0));
        }
        for _ in 0..500 {
            assert_eq!(l.admit(&junk, t0), None);
        }
        // Junk does not hide a technician's refusal.
        assert_eq!(l.admit(&tech, t0), Some(0));
        // Next minute: the first record of the class carries the count.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(l.admit(&junk, t1), Some(500));
        assert_eq!(l.admit(&junk, t1), Some(0));
    }

    #[test]
    fn many_anonymous_sources_share_one_ceiling() {
        let l = RejectLimiter::default();
        let t0 = Instant::now();
        let recorded = (0..1000u32)
            .filter(|i| {
                let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                l.admit(&RejectClass::Anonymous(ip), t0).is_some()
            })
            .count();
        assert_eq!(recorded, ANONYMOUS_REJECT_RECORDS_PER_MINUTE as usize);
    }
}
