//! The warm map: access tokens served by user name, answered with no lock,
//! no allocation and no system call.
//!
//! It is the path of every request a warm Lambda serves, so it holds one
//! map per thread ([`ThreadLocal`]): a hit borrows the calling thread's own
//! map and clones the thread's own copy of the token (an `Arc` no other
//! thread touches), so threads never contend on a lock or a reference count.
//! Forgetting entries bumps an epoch that every hit compares, so it reaches
//! every thread's map at once without visiting them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use thread_local::ThreadLocal;

use super::access_token::AccessToken;

/// At most this many user names are kept in one thread's map (it is emptied
/// when full: the next calls ask the store again).
const CAPACITY: usize = 10_000;

/// How far the coarse clock ([`coarse_now`]) may lag the real one, with
/// room to spare (the kernel ticks at 100 to 1000 Hz): entries stop being
/// served this much before their time.
pub(super) const COARSE_CLOCK_SLACK_MS: i64 = 20;

/// The hasher of the maps: foldhash, seeded at random per map.
type Hasher = foldhash::fast::RandomState;

/// One thread's entries.
type Entries = RefCell<HashMap<Box<str>, Entry, Hasher>>;

/// An access token served by user name, servable again until `until`
/// (Unix ms), unless the map's epoch moved on since it was inserted.
struct Entry {
    token: AccessToken,
    until: i64,
    epoch: u64,
}

/// Access tokens served by user name, per thread.
#[derive(Default)]
pub(super) struct WarmMap {
    threads: ThreadLocal<Entries>,
    /// Bumped by [`WarmMap::forget_all`]: older entries are not served.
    epoch: AtomicU64,
}

impl WarmMap {
    /// The token served for `user` if it is still servable at `now` (Unix ms).
    #[inline]
    pub(super) fn hit(&self, user: &str, now: i64) -> Option<AccessToken> {
        let entries = self.threads.get()?.borrow();
        let entry = entries.get(user)?;
        // Acquire, against `forget_all`'s release: a forget that happened
        // before this call is seen.
        (entry.until > now && entry.epoch == self.epoch.load(Ordering::Acquire))
            .then(|| entry.token.clone())
    }

    /// The epoch now: read it before the lookup whose token
    /// [`insert`](Self::insert) will remember.
    #[inline]
    pub(super) fn epoch(&self) -> u64 {
        // Acquire, against `forget_all`'s release: what the forget followed
        // (a token marked invalidated) is seen by the lookup after this.
        self.epoch.load(Ordering::Acquire)
    }

    /// Remembers `token` as served for `user` on this thread until `until`
    /// (Unix ms), as a copy of its own, at `epoch`: the [`epoch`](Self::epoch)
    /// read before the lookup that found it began, so that a forget during
    /// the lookup keeps the entry from ever being served.
    pub(super) fn insert(&self, user: &str, token: &AccessToken, until: i64, epoch: u64) {
        let entries = self
            .threads
            .get_or(|| RefCell::new(HashMap::with_hasher(Hasher::default())));
        let mut entries = entries.borrow_mut();
        if entries.len() >= CAPACITY && !entries.contains_key(user) {
            entries.clear();
        }
        let entry = Entry {
            token: token.private_copy(),
            until,
            epoch,
        };
        entries.insert(user.into(), entry);
    }

    /// Stops serving every entry, on every thread (a token was refreshed,
    /// replaced or rejected: the next call asks the store).
    pub(super) fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for WarmMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmMap").finish_non_exhaustive()
    }
}

/// The time of day from the kernel's coarse clock (`CLOCK_REALTIME_COARSE`,
/// read in user space through the vDSO: no system call), which lags the
/// precise clock by at most a tick. Elsewhere than Linux, [`SystemTime::now`].
pub(super) fn coarse_now() -> SystemTime {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        let since_epoch = std::time::Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        );
        SystemTime::UNIX_EPOCH + since_epoch
    }
    #[cfg(not(target_os = "linux"))]
    {
        SystemTime::now()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::access_token::Parts;

    fn token(bearer: &str) -> AccessToken {
        AccessToken(Arc::new(Parts {
            bearer: Arc::from(bearer),
            expiry_time: 10_000,
            id: Arc::from("id"),
            api_domain: None,
        }))
    }

    #[test]
    fn serves_until_its_time_then_not() {
        let map = WarmMap::default();
        assert!(map.hit("u", 0).is_none());
        map.insert("u", &token("a"), 100, map.epoch());
        assert_eq!(map.hit("u", 99).unwrap().as_str(), "a");
        assert!(map.hit("u", 100).is_none());
        assert!(map.hit("v", 0).is_none());
    }

    #[test]
    fn forget_all_reaches_every_thread() {
        let map = Arc::new(WarmMap::default());
        map.insert("u", &token("a"), 100, map.epoch());
        let other = Arc::clone(&map);
        std::thread::spawn(move || {
            other.insert("u", &token("b"), 100, other.epoch());
            assert_eq!(other.hit("u", 0).unwrap().as_str(), "b");
            other.forget_all();
        })
        .join()
        .unwrap();
        assert!(map.hit("u", 0).is_none(), "this thread's entry survived");
        map.insert("u", &token("c"), 100, map.epoch());
        assert_eq!(map.hit("u", 0).unwrap().as_str(), "c");
    }

    #[test]
    fn an_entry_from_before_a_forget_is_never_served() {
        let map = WarmMap::default();
        let before = map.epoch();
        map.forget_all();
        map.insert("u", &token("a"), 100, before);
        assert!(map.hit("u", 0).is_none());
    }

    #[test]
    fn each_thread_serves_its_own_copy() {
        let map = WarmMap::default();
        let shared = token("a");
        map.insert("u", &shared, 100, map.epoch());
        let served = map.hit("u", 0).unwrap();
        assert_eq!(served, shared);
        assert!(!Arc::ptr_eq(&served.0, &shared.0));
    }

    #[test]
    fn the_coarse_clock_is_the_time_of_day() {
        let precise = SystemTime::now();
        let coarse = coarse_now();
        let apart = precise
            .duration_since(coarse)
            .unwrap_or_else(|e| e.duration());
        assert!(apart.as_millis() < 1_000, "{apart:?}");
    }
}
