//! Directory listings handed from the read-ahead (`crate::prefetch`) to the walk
//! (`walk.rs`), so that an entry is `lstat`ed once, not by both: the read-ahead lists and
//! `lstat`s directories on several threads ahead of the walk; the walk takes a directory's
//! listing when it gets there, and lists the directory itself when there is none.
//!
//! Bounded: at most [`MAX_ENTRIES`] entries wait. A listing that does not fit, or that comes
//! for a directory the walk has reached already, is dropped (the walk lists that directory
//! itself). The walk enters directories in the order of their paths' components (pre-order
//! with byte-wise sorted names), so a listing that sorts before the walk's directory will
//! never be taken; each `take` drops those.
//!
//! A listing holds what the directory held when the read-ahead listed it, moments before the
//! walk would have: what a backup records of an entry is its state at some moment during
//! the backup, whoever looked. Only complete listings are offered (the read-ahead offers
//! none for a directory in which listing or any `lstat` failed, so that the walk reports
//! those itself). It is not a cache: nothing is ever taken twice.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::sync::Mutex;

/// Entries of all the listings waiting, at most: each about 200 bytes.
pub(crate) const MAX_ENTRIES: usize = 16_384;

/// A directory's entries (names without a path) with their `lstat` data, in any order.
pub type Listing = Vec<(OsString, Metadata)>;

/// A directory's path below the root as components; the root's is empty. Ordered as the
/// walk enters directories.
type Key = Vec<Vec<u8>>;

/// Listings waiting for the walk; shared by the read-ahead's threads and the walk.
#[derive(Debug, Default)]
pub struct Listings {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    /// Entries of the listings in `dirs`.
    entries: usize,
    /// The directory the walk took last: listings at or before it come too late.
    reached: Option<Key>,
    dirs: BTreeMap<Key, Listing>,
    /// Entries handed to the walk so far.
    handed: u64,
}

impl Listings {
    /// Offers the listing of the directory at `rel`, its archive path below the root (empty
    /// for the root itself).
    pub fn offer(&self, rel: &[u8], listing: Listing) {
        let key = key(rel);
        let mut state = self.lock();
        let late = state
            .reached
            .as_ref()
            .is_some_and(|reached| key <= *reached);
        if state.closed || late || state.entries + listing.len() > MAX_ENTRIES {
            return;
        }
        state.entries += listing.len();
        if let Some(old) = state.dirs.insert(key, listing) {
            state.entries -= old.len();
        }
    }

    /// Whether offers are still taken.
    pub fn is_open(&self) -> bool {
        !self.lock().closed
    }

    /// Drops the listings waiting and takes no more.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.dirs.clear();
        state.entries = 0;
    }

    /// Entries handed to the walk so far.
    pub fn handed(&self) -> u64 {
        self.lock().handed
    }

    /// The listing of the directory at `rel` (see [`Listings::offer`]), if there is one; the
    /// walk enters that directory now, so the listings of directories before it are dropped.
    pub(crate) fn take(&self, rel: &[u8]) -> Option<Listing> {
        let key = key(rel);
        let mut state = self.lock();
        let ahead = state.dirs.split_off(&key);
        let passed = std::mem::replace(&mut state.dirs, ahead);
        state.entries -= passed.values().map(Vec::len).sum::<usize>();
        let listing = state.dirs.remove(&key);
        if let Some(listing) = &listing {
            state.entries -= listing.len();
            state.handed += listing.len() as u64;
        }
        state.reached = Some(key);
        listing
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(rel: &[u8]) -> Key {
    if rel.is_empty() {
        return Vec::new();
    }
    rel.split(|&b| b == b'/').map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(n: usize) -> Listing {
        let meta = std::fs::symlink_metadata("/").unwrap();
        (0..n)
            .map(|i| (OsString::from(format!("f{i}")), meta.clone()))
            .collect()
    }

    #[test]
    fn a_listing_is_taken_once_where_it_was_offered() {
        let listings = Listings::default();
        listings.offer(b"", listing(2));
        listings.offer(b"a", listing(3));
        assert_eq!(listings.take(b"").map(|l| l.len()), Some(2));
        assert!(listings.take(b"").is_none());
        assert_eq!(listings.take(b"a").map(|l| l.len()), Some(3));
        assert_eq!(listings.handed(), 5);
        assert_eq!(listings.lock().entries, 0);
    }

    /// Pre-order with sorted names: `a` < `a/b` < `a-c` (by component, not by byte string,
    /// where `/` sorts after `-`).
    #[test]
    fn directories_the_walk_passed_are_dropped_and_later_offers_refused() {
        let listings = Listings::default();
        listings.offer(b"a/b", listing(1));
        listings.offer(b"a-c", listing(1));
        listings.offer(b"a/b/x", listing(1));
        // The walk lists `a` itself (nothing offered), then reaches `a-c`: `a/b` and
        // `a/b/x` lie behind it.
        assert!(listings.take(b"a").is_none());
        assert!(listings.take(b"a-c").is_some());
        assert_eq!(listings.lock().entries, 0);
        assert!(listings.lock().dirs.is_empty());
        listings.offer(b"a/b/y", listing(1));
        listings.offer(b"a-c", listing(1));
        assert!(listings.lock().dirs.is_empty());
        listings.offer(b"b", listing(1));
        assert!(listings.take(b"b").is_some());
    }

    #[test]
    fn offers_beyond_the_bound_and_after_close_are_dropped() {
        let listings = Listings::default();
        listings.offer(b"a", listing(MAX_ENTRIES - 1));
        listings.offer(b"b", listing(2));
        listings.offer(b"c", listing(1));
        assert!(listings.lock().dirs.contains_key(&key(b"c")));
        assert!(!listings.lock().dirs.contains_key(&key(b"b")));
        listings.close();
        assert_eq!(listings.lock().entries, 0);
        listings.offer(b"d", listing(1));
        assert!(listings.take(b"d").is_none());
    }
}
