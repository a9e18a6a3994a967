//! The in-memory side of the meeting ledger: read through from the store, written through to it,
//! and bounded, since the store holds every entry anyway.

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::store::MeetingRecord;

/// Ledger entries kept in memory (about 200 bytes each).
pub(super) const LEDGER_CACHE_ENTRIES: usize = 100_000;

pub(super) struct LedgerCache {
    entries: DashMap<i64, Arc<MeetingRecord>>,
    capacity: usize,
}

impl LedgerCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            capacity,
        }
    }

    pub(super) fn get(&self, meeting_id: i64) -> Option<Arc<MeetingRecord>> {
        self.entries.get(&meeting_id).map(|entry| entry.clone())
    }

    /// Caches what was just written to the store.
    pub(super) fn insert(&self, record: Arc<MeetingRecord>) {
        self.make_room();
        self.entries.insert(record.meeting_id, record);
    }

    /// Caches what was read from the store, unless a newer write got in first; returns the entry
    /// that is cached.
    pub(super) fn insert_read(&self, record: MeetingRecord) -> Arc<MeetingRecord> {
        self.make_room();
        match self.entries.entry(record.meeting_id) {
            Entry::Occupied(newer) => newer.get().clone(),
            Entry::Vacant(slot) => slot.insert(Arc::new(record)).clone(),
        }
    }

    pub(super) fn remove(&self, meeting_id: i64) {
        self.entries.remove(&meeting_id);
    }

    pub(super) fn clear(&self) {
        self.entries.clear();
    }

    /// Drops an eighth of the entries when full: which ones does not matter, since a miss costs
    /// one store read.
    fn make_room(&self) {
        if self.entries.len() < self.capacity {
            return;
        }
        let mut excess = (self.capacity / 8).max(1);
        self.entries.retain(|_, _| {
            let keep = excess == 0;
            excess = excess.saturating_sub(1);
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn record(meeting_id: i64, host_email: &str) -> MeetingRecord {
        MeetingRecord {
            meeting_id,
            account: crate::accounts::AccountName::parse("sales").unwrap(),
            host_id: "u1".into(),
            host_email: host_email.into(),
            created_by: "app".into(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = LedgerCache::new(16);
        for id in 0..100 {
            cache.insert(Arc::new(record(id, "ann@x.test")));
            assert!(cache.entries.len() <= 16);
        }
        assert!(cache.get(99).is_some(), "the newest entry is kept");
        cache.remove(99);
        assert!(cache.get(99).is_none());
    }

    #[test]
    fn a_store_read_never_replaces_a_newer_write() {
        let cache = LedgerCache::new(16);
        cache.insert(Arc::new(record(7, "new@x.test")));
        let kept = cache.insert_read(record(7, "old@x.test"));
        assert_eq!(kept.host_email, "new@x.test");
        assert_eq!(cache.get(7).unwrap().host_email, "new@x.test");
    }
}
