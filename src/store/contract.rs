//! The behaviour every [`Store`] backend must show, written once against `Arc<dyn Store>`.
//!
//! Each property is an async fn that takes a fresh, empty store. A backend runs all of them with
//! one line in its tests, `contract_suite!(constructor())`, where the constructor returns the
//! store and a guard that outlives the test (a temp directory, a scratch database), or an
//! `Option` of them for a backend that may not be there (see [`Opened`]):
//!
//! ```ignore
//! async fn file_store() -> (Arc<dyn Store>, tempfile::TempDir) { … }
//! mod on_file {
//!     crate::store::contract::contract_suite!(super::file_store());
//! }
//! ```
//!
//! What only one backend can show (its files, pragmas, migrations) stays in that backend's tests.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::accounts::AccountName;

use super::{
    AuditFilter, AuditRecord, Claim, Completion, CreateEnd, CreateRequest, DirectoryEntry,
    LedgerChange, MAX_AUDIT_LIMIT, MeetingRecord, Outcome, RouteChange, RouteRecord, Store,
    StoreError, UserDay,
};

/// Expands into one `#[tokio::test]` per property of the contract, each on its own store from
/// `$open`: a future of `(Arc<dyn Store>, guard)`. The store is closed after the property ran.
macro_rules! contract_suite {
    ($open:expr) => {
        $crate::store::contract::contract_suite!(@properties $open;
            ledger_records_reads_upserts_and_forgets,
            timestamps_keep_millisecond_precision,
            append_ignores_the_given_id,
            ids_increase_with_every_append_and_intent,
            audit_is_newest_first_with_ties_broken_by_id,
            every_audit_filter_selects_exactly_the_matching_records,
            consecutive_windows_hold_every_record_once,
            audit_honours_the_limit,
            unknown_outcomes_are_stored_and_selected,
            an_intent_is_written_as_unknown_under_the_returned_id,
            a_completed_change_updates_its_intent_and_the_ledger,
            a_completed_change_forgets_or_keeps_the_meeting,
            a_change_begun_between_milliseconds_completes_in_place,
            completing_a_change_twice_leaves_one_record,
            a_completion_without_its_intent_is_appended_whole,
            a_completion_never_overwrites_another_record_under_its_intent_id,
            a_write_check_succeeds_and_leaves_no_trace,
            pages_after_a_record_hold_every_record_once,
            routes_are_put_replaced_and_deleted_with_their_audit,
            routes_list_in_email_order_page_by_page,
            a_directory_sync_replaces_one_account_and_keeps_the_others,
            a_user_s_daily_calls_stop_at_the_cap_and_start_over_the_next_day,
            a_create_request_is_claimed_once_and_tells_retries_how_it_ended,
            create_claims_expire_and_are_purged,
            [flavor = "multi_thread", worker_threads = 2]
            concurrent_takes_of_a_user_s_calls_never_pass_the_cap,
            [flavor = "multi_thread", worker_threads = 2]
            concurrent_appends_from_many_tasks_all_land,
        );
    };
    (@properties $open:expr; $($([$($runtime:tt)*])? $property:ident,)*) => {
        $(
            #[tokio::test $(($($runtime)*))?]
            async fn $property() {
                let Some((store, _guard)) = $crate::store::contract::Opened::opened($open.await)
                else {
                    return;
                };
                $crate::store::contract::$property(::std::sync::Arc::clone(&store)).await;
                store.close().await;
            }
        )*
    };
}

pub(crate) use contract_suite;

/// What a backend's constructor gives the suite: a store and a guard, or `None` when the
/// backend is not there (a database server that does not answer), which the constructor has
/// reported as skipped.
pub(crate) trait Opened<G> {
    fn opened(self) -> Option<(Arc<dyn Store>, G)>;
}

impl<G> Opened<G> for (Arc<dyn Store>, G) {
    fn opened(self) -> Option<(Arc<dyn Store>, G)> {
        Some(self)
    }
}

impl<G> Opened<G> for Option<(Arc<dyn Store>, G)> {
    fn opened(self) -> Option<(Arc<dyn Store>, G)> {
        self
    }
}

// === fixtures ===

/// Unix millis of an arbitrary fixed instant, so tests never depend on the clock.
pub(crate) const T0: i64 = 1_750_000_000_000;

pub(crate) fn at(offset_millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(T0 + offset_millis).expect("in range")
}

/// An account name for records; test names are valid.
pub(crate) fn account(name: &str) -> AccountName {
    AccountName::parse(name).expect("a valid account name")
}

pub(crate) fn meeting(meeting_id: i64, account_name: &str, created_by: &str) -> MeetingRecord {
    MeetingRecord {
        meeting_id,
        account: account(account_name),
        host_id: format!("host-{meeting_id}"),
        host_email: format!("host-{meeting_id}@example.com"),
        created_by: created_by.into(),
        created_at: at(meeting_id),
    }
}

pub(crate) fn event(
    at_offset: i64,
    caller: &str,
    operation: &str,
    outcome: Outcome,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: at(at_offset),
        caller: caller.into(),
        operation: operation.into(),
        account: None,
        user: None,
        meeting_id: None,
        outcome,
        detail: None,
    }
}

/// A varied audit log: 40 events over 3 callers, 3 operations, 2 accounts, 4 users, 5 meetings,
/// three outcomes, some optional fields missing, timestamps out of insertion order and repeated.
fn fixture() -> Vec<AuditRecord> {
    let callers = ["crm", "lms", "ops"];
    let operations = ["meetings.create", "meetings.get", "meetings.delete"];
    let outcomes = [Outcome::Allowed, Outcome::Denied, Outcome::Failed];
    (0..40i64)
        .map(|i| {
            let i_usize = usize::try_from(i).expect("small");
            let mut record = event(
                (i * 7919) % 23 * 1000,
                callers[i_usize % 3],
                operations[i_usize % 3 / 2 + i_usize % 2],
                outcomes[i_usize / 3 % 3],
            );
            record.account = (i % 4 != 0).then(|| ["sales", "support"][i_usize % 2].into());
            record.user = (i % 5 != 0).then(|| format!("user{}@example.com", i % 4));
            record.meeting_id = (i % 3 != 1).then_some(80_000_000_000 + i % 5);
            record.detail = (i % 6 == 0).then(|| format!("event {i}"));
            record
        })
        .collect()
}

/// Reference semantics of [`AuditFilter`], applied to records in memory.
fn matches(filter: &AuditFilter, record: &AuditRecord) -> bool {
    filter.caller.as_ref().is_none_or(|c| *c == record.caller)
        && filter
            .operation
            .as_ref()
            .is_none_or(|o| *o == record.operation)
        && filter
            .account
            .as_ref()
            .is_none_or(|a| record.account.as_ref() == Some(a))
        && filter
            .user
            .as_ref()
            .is_none_or(|u| record.user.as_ref() == Some(u))
        && filter
            .meeting_id
            .is_none_or(|m| record.meeting_id == Some(m))
        && filter.outcome.is_none_or(|o| record.outcome == o)
        && filter.since.is_none_or(|s| record.at >= s)
        && filter.until.is_none_or(|u| record.at < u)
}

/// Appends `records` and returns them with the ids the store assigned (in append order).
async fn append_all(store: &Arc<dyn Store>, records: &[AuditRecord]) -> Vec<AuditRecord> {
    for record in records {
        store.append_audit(record).await.expect("append");
    }
    let mut stored = store
        .audit(&AuditFilter {
            limit: Some(MAX_AUDIT_LIMIT),
            ..AuditFilter::default()
        })
        .await
        .expect("read back");
    stored.sort_by_key(|r| r.id);
    assert_eq!(stored.len(), records.len());
    stored
}

fn expected(stored: &[AuditRecord], filter: &AuditFilter) -> Vec<i64> {
    let mut hits: Vec<&AuditRecord> = stored.iter().filter(|r| matches(filter, r)).collect();
    hits.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    hits.iter()
        .take(usize::try_from(filter.effective_limit()).expect("fits"))
        .map(|r| r.id)
        .collect()
}

async fn ids(store: &Arc<dyn Store>, filter: &AuditFilter) -> Vec<i64> {
    store
        .audit(filter)
        .await
        .expect("audit query")
        .iter()
        .map(|r| r.id)
        .collect()
}

// === ledger ===

pub(crate) async fn ledger_records_reads_upserts_and_forgets(store: Arc<dyn Store>) {
    let first = meeting(81_234_567_890, "sales", "crm");
    let other = meeting(81_234_567_891, "support", "lms");

    assert_eq!(store.meeting(first.meeting_id).await.unwrap(), None);
    store.record_meeting(&first).await.unwrap();
    store.record_meeting(&other).await.unwrap();
    assert_eq!(
        store.meeting(first.meeting_id).await.unwrap(),
        Some(first.clone())
    );

    let moved = MeetingRecord {
        account: account("support"),
        host_id: "new-host".into(),
        host_email: "new-host@example.com".into(),
        created_by: "ops".into(),
        created_at: at(99_000),
        ..first.clone()
    };
    store.record_meeting(&moved).await.unwrap();
    assert_eq!(store.meeting(first.meeting_id).await.unwrap(), Some(moved));

    store.forget_meeting(first.meeting_id).await.unwrap();
    assert_eq!(store.meeting(first.meeting_id).await.unwrap(), None);
    assert_eq!(
        store.meeting(other.meeting_id).await.unwrap(),
        Some(other),
        "forgetting one meeting keeps the others"
    );
    store
        .forget_meeting(first.meeting_id)
        .await
        .expect("forgetting an unknown meeting is not an error");
}

pub(crate) async fn timestamps_keep_millisecond_precision(store: Arc<dyn Store>) {
    let precise = at(1) + TimeDelta::nanoseconds(456_789);
    let record = MeetingRecord {
        created_at: precise,
        ..meeting(1, "sales", "crm")
    };
    store.record_meeting(&record).await.unwrap();
    let read = store.meeting(1).await.unwrap().expect("recorded");
    assert_eq!(read.created_at, at(1));
}

// === audit ===

pub(crate) async fn append_ignores_the_given_id(store: Arc<dyn Store>) {
    let mut record = event(0, "crm", "meetings.get", Outcome::Denied);
    record.id = 4242;
    record.account = Some("sales".into());
    record.user = Some("ann@example.com".into());
    record.meeting_id = Some(87_000_000_000);
    record.detail = Some("no grant for meetings.get".into());
    store.append_audit(&record).await.unwrap();
    store.append_audit(&record).await.unwrap();

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_ne!(log[0].id, log[1].id);
    for stored in &log {
        assert_ne!(stored.id, 4242);
        assert_eq!(
            *stored,
            AuditRecord {
                id: stored.id,
                ..record.clone()
            }
        );
    }
}

pub(crate) async fn ids_increase_with_every_append_and_intent(store: Arc<dyn Store>) {
    let mut returned = Vec::new();
    for n in 0..6 {
        let mut record = event(0, "crm", "meetings.create", Outcome::Allowed);
        record.meeting_id = Some(n);
        if n % 2 == 0 {
            store.append_audit(&record).await.unwrap();
        } else {
            returned.push(store.begin_change(&record).await.unwrap());
        }
    }

    let mut log = store.audit(&AuditFilter::default()).await.unwrap();
    log.sort_by_key(|r| r.meeting_id);
    let ids: Vec<i64> = log.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        returned,
        [ids[1], ids[3], ids[5]],
        "begin_change returns the record's id"
    );
}

pub(crate) async fn audit_is_newest_first_with_ties_broken_by_id(store: Arc<dyn Store>) {
    let offsets = [30, 10, 30, 20, 10, 30];
    let records: Vec<_> = offsets
        .iter()
        .map(|&o| event(o, "crm", "meetings.get", Outcome::Allowed))
        .collect();
    let stored = append_all(&store, &records).await;

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    let order: Vec<(i64, i64)> = log
        .iter()
        .map(|r| (r.at.timestamp_millis() - T0, r.id))
        .collect();
    let ids: Vec<i64> = stored.iter().map(|r| r.id).collect();
    // Appended ids in order: offsets 30,10,30,20,10,30 -> newest `at` first, then highest id.
    let want = vec![
        (30, ids[5]),
        (30, ids[2]),
        (30, ids[0]),
        (20, ids[3]),
        (10, ids[4]),
        (10, ids[1]),
    ];
    assert_eq!(order, want);
}

pub(crate) async fn every_audit_filter_selects_exactly_the_matching_records(store: Arc<dyn Store>) {
    let stored = append_all(&store, &fixture()).await;
    let all = AuditFilter {
        limit: Some(1000),
        ..AuditFilter::default()
    };
    let filters = [
        AuditFilter {
            caller: Some("lms".into()),
            ..all.clone()
        },
        AuditFilter {
            operation: Some("meetings.delete".into()),
            ..all.clone()
        },
        AuditFilter {
            account: Some("support".into()),
            ..all.clone()
        },
        AuditFilter {
            user: Some("user2@example.com".into()),
            ..all.clone()
        },
        AuditFilter {
            meeting_id: Some(80_000_000_003),
            ..all.clone()
        },
        AuditFilter {
            outcome: Some(Outcome::Denied),
            ..all.clone()
        },
        AuditFilter {
            since: Some(at(11_000)),
            ..all.clone()
        },
        AuditFilter {
            until: Some(at(11_000)),
            ..all.clone()
        },
        AuditFilter {
            since: Some(at(5_000)),
            until: Some(at(15_000)),
            ..all.clone()
        },
        AuditFilter {
            caller: Some("crm".into()),
            outcome: Some(Outcome::Allowed),
            account: Some("support".into()),
            ..all.clone()
        },
        AuditFilter {
            caller: Some("nobody".into()),
            ..all.clone()
        },
    ];
    for filter in &filters {
        let want = expected(&stored, filter);
        assert_eq!(ids(&store, filter).await, want, "{filter:?}");
    }
    // Each single-field filter must narrow the log but still find something, or it tests nothing.
    for filter in &filters[..9] {
        let hits = expected(&stored, filter).len();
        assert!(hits > 0 && hits < stored.len(), "{filter:?} selects {hits}");
    }
}

pub(crate) async fn consecutive_windows_hold_every_record_once(store: Arc<dyn Store>) {
    let stored = append_all(&store, &fixture()).await;
    // The fixture's records lie on whole seconds from 0 to 22s: every inner bound is also a
    // record's time, so a window that took its upper bound in would count those twice.
    let bounds = [0, 5_000, 11_000, 17_000, 23_000];
    let mut seen = Vec::new();
    for window in bounds.windows(2) {
        let filter = AuditFilter {
            since: Some(at(window[0])),
            until: Some(at(window[1])),
            limit: Some(MAX_AUDIT_LIMIT),
            ..AuditFilter::default()
        };
        let page = ids(&store, &filter).await;
        assert_eq!(page, expected(&stored, &filter), "{filter:?}");
        seen.extend(page);
    }
    seen.sort_unstable();
    let all: Vec<i64> = stored.iter().map(|r| r.id).collect();
    assert_eq!(seen, all);
}

pub(crate) async fn audit_honours_the_limit(store: Arc<dyn Store>) {
    let records: Vec<_> = (0..130)
        .map(|i| event(i, "crm", "meetings.get", Outcome::Allowed))
        .collect();
    let stored = append_all(&store, &records).await;

    let default = AuditFilter::default();
    let got = ids(&store, &default).await;
    assert_eq!(got.len(), 100);
    assert_eq!(got, expected(&stored, &default));

    let seven = AuditFilter {
        limit: Some(7),
        ..AuditFilter::default()
    };
    assert_eq!(ids(&store, &seven).await, expected(&stored, &seven));
    assert_eq!(ids(&store, &seven).await.len(), 7);

    let huge = AuditFilter {
        limit: Some(u32::MAX),
        ..AuditFilter::default()
    };
    assert_eq!(ids(&store, &huge).await.len(), 130);

    let none = AuditFilter {
        limit: Some(0),
        ..AuditFilter::default()
    };
    assert!(ids(&store, &none).await.is_empty());

    let filtered = AuditFilter {
        since: Some(at(50)),
        limit: Some(10),
        ..AuditFilter::default()
    };
    assert_eq!(ids(&store, &filtered).await, expected(&stored, &filtered));
}

pub(crate) async fn unknown_outcomes_are_stored_and_selected(store: Arc<dyn Store>) {
    let crashed = store
        .begin_change(&event(1, "crm", "meetings.create", Outcome::Unknown))
        .await
        .unwrap();
    let intent = event(2, "crm", "meetings.update", Outcome::Unknown);
    let completed = store.begin_change(&intent).await.unwrap();
    store
        .complete_change(&Completion {
            intent_id: completed,
            record: AuditRecord {
                outcome: Outcome::Allowed,
                ..intent
            },
            ledger: LedgerChange::None,
        })
        .await
        .unwrap();
    let given_up = event(3, "ops", "meetings.delete", Outcome::Unknown);
    store.append_audit(&given_up).await.unwrap();

    let unknown = store
        .audit(&AuditFilter {
            outcome: Some(Outcome::Unknown),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(unknown.len(), 2, "{unknown:?}");
    assert_eq!(
        unknown[0],
        AuditRecord {
            id: unknown[0].id,
            ..given_up
        }
    );
    assert_eq!(unknown[1].id, crashed);
    let allowed = AuditFilter {
        outcome: Some(Outcome::Allowed),
        ..AuditFilter::default()
    };
    assert_eq!(ids(&store, &allowed).await, [completed]);
}

// === changes ===

pub(crate) async fn an_intent_is_written_as_unknown_under_the_returned_id(store: Arc<dyn Store>) {
    let mut intent = event(1, "crm", "meetings.create", Outcome::Allowed);
    intent.account = Some("sales".into());
    intent.user = Some("ann@example.com".into());

    let id = store.begin_change(&intent).await.unwrap();

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        log,
        [AuditRecord {
            id,
            outcome: Outcome::Unknown,
            ..intent
        }]
    );
}

pub(crate) async fn a_completed_change_updates_its_intent_and_the_ledger(store: Arc<dyn Store>) {
    let created = meeting(82_000_000_001, "sales", "crm");
    let intent = event(1, "crm", "meetings.create", Outcome::Unknown);
    let intent_id = store.begin_change(&intent).await.unwrap();
    let other = store
        .begin_change(&event(2, "lms", "meetings.create", Outcome::Unknown))
        .await
        .unwrap();
    let done = AuditRecord {
        account: Some("sales".into()),
        user: Some(created.host_email.clone()),
        meeting_id: Some(created.meeting_id),
        outcome: Outcome::Allowed,
        detail: Some("created".into()),
        ..intent
    };

    store
        .complete_change(&Completion {
            intent_id,
            record: done.clone(),
            ledger: LedgerChange::Record(created.clone()),
        })
        .await
        .unwrap();

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 2, "completed in place, not appended: {log:?}");
    let completed = log.iter().find(|r| r.id == intent_id).expect("same id");
    assert_eq!(
        *completed,
        AuditRecord {
            id: intent_id,
            ..done
        }
    );
    let untouched = log.iter().find(|r| r.id == other).expect("other intent");
    assert_eq!(untouched.outcome, Outcome::Unknown);
    assert_eq!(
        store.meeting(created.meeting_id).await.unwrap(),
        Some(created)
    );
}

pub(crate) async fn a_completed_change_forgets_or_keeps_the_meeting(store: Arc<dyn Store>) {
    let kept = meeting(82_000_000_002, "sales", "crm");
    let deleted = meeting(82_000_000_003, "sales", "crm");
    store.record_meeting(&kept).await.unwrap();
    store.record_meeting(&deleted).await.unwrap();
    let mut completions = Vec::new();
    for (n, (target, outcome, ledger)) in [
        (&kept, Outcome::Failed, LedgerChange::None),
        (
            &deleted,
            Outcome::Allowed,
            LedgerChange::Forget(deleted.meeting_id),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut intent = event(
            i64::try_from(n).expect("small"),
            "crm",
            "meetings.delete",
            Outcome::Unknown,
        );
        intent.meeting_id = Some(target.meeting_id);
        let intent_id = store.begin_change(&intent).await.unwrap();
        store
            .complete_change(&Completion {
                intent_id,
                record: AuditRecord { outcome, ..intent },
                ledger,
            })
            .await
            .unwrap();
        completions.push(intent_id);
    }

    assert_eq!(store.meeting(kept.meeting_id).await.unwrap(), Some(kept));
    assert_eq!(store.meeting(deleted.meeting_id).await.unwrap(), None);
    let outcome = |outcome| AuditFilter {
        outcome: Some(outcome),
        ..AuditFilter::default()
    };
    assert_eq!(
        ids(&store, &outcome(Outcome::Failed)).await,
        [completions[0]]
    );
    assert_eq!(
        ids(&store, &outcome(Outcome::Allowed)).await,
        [completions[1]]
    );
    assert!(ids(&store, &outcome(Outcome::Unknown)).await.is_empty());
}

pub(crate) async fn a_change_begun_between_milliseconds_completes_in_place(store: Arc<dyn Store>) {
    let intent = AuditRecord {
        at: at(1) + TimeDelta::nanoseconds(456_789),
        ..event(0, "crm", "meetings.create", Outcome::Unknown)
    };
    let intent_id = store.begin_change(&intent).await.unwrap();
    let begun = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(begun[0].at, at(1));

    store
        .complete_change(&Completion {
            intent_id,
            record: AuditRecord {
                outcome: Outcome::Allowed,
                ..intent
            },
            ledger: LedgerChange::None,
        })
        .await
        .unwrap();

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 1, "completed in place, not appended: {log:?}");
    assert_eq!(
        (log[0].id, log[0].outcome, log[0].at),
        (intent_id, Outcome::Allowed, at(1))
    );
}

pub(crate) async fn completing_a_change_twice_leaves_one_record(store: Arc<dyn Store>) {
    let created = meeting(82_000_000_004, "sales", "crm");
    let intent = event(1, "crm", "meetings.create", Outcome::Unknown);
    let intent_id = store.begin_change(&intent).await.unwrap();
    let completion = Completion {
        intent_id,
        record: AuditRecord {
            meeting_id: Some(created.meeting_id),
            outcome: Outcome::Allowed,
            ..intent
        },
        ledger: LedgerChange::Record(created.clone()),
    };

    store.complete_change(&completion).await.unwrap();
    store.complete_change(&completion).await.unwrap();

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        log,
        [AuditRecord {
            id: intent_id,
            ..completion.record
        }]
    );
    assert_eq!(
        store.meeting(created.meeting_id).await.unwrap(),
        Some(created)
    );
}

pub(crate) async fn a_completion_without_its_intent_is_appended_whole(store: Arc<dyn Store>) {
    let deleted = meeting(82_000_000_005, "sales", "crm");
    store.record_meeting(&deleted).await.unwrap();
    let mut done = event(5, "crm", "meetings.delete", Outcome::Allowed);
    done.meeting_id = Some(deleted.meeting_id);

    store
        .complete_change(&Completion {
            intent_id: 999,
            record: done.clone(),
            ledger: LedgerChange::Forget(deleted.meeting_id),
        })
        .await
        .unwrap();

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0],
        AuditRecord {
            id: log[0].id,
            ..done
        }
    );
    assert_eq!(store.meeting(deleted.meeting_id).await.unwrap(), None);
}

pub(crate) async fn a_completion_never_overwrites_another_record_under_its_intent_id(
    store: Arc<dyn Store>,
) {
    let newer = event(9, "crm", "meetings.create", Outcome::Unknown);
    let newer_id = store.begin_change(&newer).await.unwrap();
    let lost = AuditRecord {
        meeting_id: Some(82_000_000_006),
        outcome: Outcome::Allowed,
        ..event(1, "crm", "meetings.create", Outcome::Unknown)
    };

    store
        .complete_change(&Completion {
            intent_id: newer_id,
            record: lost.clone(),
            ledger: LedgerChange::None,
        })
        .await
        .unwrap();

    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[0],
        AuditRecord {
            id: newer_id,
            ..newer
        },
        "the other change keeps its record"
    );
    assert_eq!(
        log[1],
        AuditRecord {
            id: log[1].id,
            ..lost
        }
    );
}

// === write checks ===

pub(crate) async fn a_write_check_succeeds_and_leaves_no_trace(store: Arc<dyn Store>) {
    store
        .check_writable()
        .await
        .expect("an empty store takes writes");
    store.check_writable().await.expect("and takes them again");
    assert!(
        store
            .audit(&AuditFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    store
        .append_audit(&event(1, "crm", "meetings.get", Outcome::Denied))
        .await
        .unwrap();
    store
        .check_writable()
        .await
        .expect("a store with records takes writes");
    assert_eq!(store.audit(&AuditFilter::default()).await.unwrap().len(), 1);
}

// === concurrency ===

pub(crate) async fn concurrent_appends_from_many_tasks_all_land(store: Arc<dyn Store>) {
    const TASKS: i64 = 32;
    const PER_TASK: i64 = 25;

    let appends = async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for n in 0..PER_TASK {
                        let mut record = event(
                            n,
                            &format!("caller-{task}"),
                            "meetings.create",
                            Outcome::Allowed,
                        );
                        record.meeting_id = Some(task * 1000 + n);
                        store.append_audit(&record).await?;
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task ran").expect("append succeeded");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), appends)
        .await
        .expect("appends finish in time");

    let log = store
        .audit(&AuditFilter {
            limit: Some(MAX_AUDIT_LIMIT),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len() as i64, TASKS * PER_TASK);
    let ids: HashSet<i64> = log.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), log.len(), "ids are unique");
    let meetings: HashSet<i64> = log.iter().filter_map(|r| r.meeting_id).collect();
    assert_eq!(meetings.len(), log.len(), "every append landed once");
    let one_caller = store
        .audit(&AuditFilter {
            caller: Some("caller-7".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(one_caller.len() as i64, PER_TASK);
}

// === paging and routes ===

/// Paging with `after` set to the last record of each page visits every record once, in the
/// order of one unlimited listing, even with timestamps repeated.
pub(crate) async fn pages_after_a_record_hold_every_record_once(store: Arc<dyn Store>) {
    for record in fixture() {
        store.append_audit(&record).await.unwrap();
    }
    let everything = store
        .audit(&AuditFilter {
            limit: Some(MAX_AUDIT_LIMIT),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .audit(&AuditFilter {
                limit: Some(7),
                after,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.at, last.id));
        paged.extend(page);
    }
    assert_eq!(paged, everything);
}

fn route(email: &str, account_name: &str, forced: bool) -> RouteRecord {
    RouteRecord {
        email: email.into(),
        account: account(account_name),
        set_by: "platform".into(),
        set_at: at(5),
        forced,
    }
}

pub(crate) async fn routes_are_put_replaced_and_deleted_with_their_audit(store: Arc<dyn Store>) {
    let audit = event(5, "platform", "admin.put_route", Outcome::Allowed);
    let first = route("ann@x.test", "sales", false);
    let before = store
        .change_route(&RouteChange::Put(first.clone()), &audit)
        .await
        .unwrap();
    assert_eq!(before, None);
    assert_eq!(
        store.route("ann@x.test").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.route("bob@x.test").await.unwrap(), None);

    let second = route("ann@x.test", "support", true);
    let before = store
        .change_route(&RouteChange::Put(second.clone()), &audit)
        .await
        .unwrap();
    assert_eq!(before, Some(first));
    assert_eq!(
        store.route("ann@x.test").await.unwrap(),
        Some(second.clone())
    );

    let delete = RouteChange::Delete("ann@x.test".into());
    let deleted = event(6, "platform", "admin.delete_route", Outcome::Allowed);
    assert_eq!(
        store.change_route(&delete, &deleted).await.unwrap(),
        Some(second)
    );
    assert_eq!(store.route("ann@x.test").await.unwrap(), None);
    assert_eq!(store.change_route(&delete, &deleted).await.unwrap(), None);

    let trail = store.audit(&AuditFilter::default()).await.unwrap();
    let operations: Vec<&str> = trail.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        operations,
        [
            "admin.delete_route",
            "admin.delete_route",
            "admin.put_route",
            "admin.put_route"
        ],
        "each change has its audit record, written with it"
    );
}

pub(crate) async fn routes_list_in_email_order_page_by_page(store: Arc<dyn Store>) {
    let audit = event(5, "platform", "admin.put_route", Outcome::Allowed);
    let emails: Vec<String> = (0..25).rev().map(|i| format!("u{i:02}@x.test")).collect();
    for email in &emails {
        let put = RouteChange::Put(route(email, "sales", false));
        store.change_route(&put, &audit).await.unwrap();
    }
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.routes(after.as_deref(), 10).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.email.clone());
        listed.extend(page.into_iter().map(|r| r.email));
    }
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert!(store.routes(None, 0).await.unwrap().is_empty());
}

fn listed(email: &str, account_name: &str, user_id: &str) -> DirectoryEntry {
    DirectoryEntry {
        email: email.into(),
        account: account(account_name),
        user_id: user_id.into(),
        synced_at: at(9),
    }
}

pub(crate) async fn a_directory_sync_replaces_one_account_and_keeps_the_others(
    store: Arc<dyn Store>,
) {
    let sales = [
        listed("ann@x.test", "sales", "u1"),
        listed("bob@x.test", "sales", "u2"),
    ];
    store
        .replace_directory(&account("sales"), &sales)
        .await
        .unwrap();
    // Bob is in support too: a conflict, kept as two entries.
    let support = [listed("bob@x.test", "support", "u9")];
    store
        .replace_directory(&account("support"), &support)
        .await
        .unwrap();
    assert_eq!(
        store.directory().await.unwrap(),
        [sales[0].clone(), sales[1].clone(), support[0].clone()]
    );
    // The next sync of sales no longer finds ann; support is untouched.
    let again = [listed("bob@x.test", "sales", "u2")];
    store
        .replace_directory(&account("sales"), &again)
        .await
        .unwrap();
    assert_eq!(
        store.directory().await.unwrap(),
        [again[0].clone(), support[0].clone()]
    );
    store
        .replace_directory(&account("support"), &[])
        .await
        .unwrap();
    assert_eq!(store.directory().await.unwrap(), [again[0].clone()]);
}

pub(crate) async fn a_user_s_daily_calls_stop_at_the_cap_and_start_over_the_next_day(
    store: Arc<dyn Store>,
) {
    let today = UserDay::new(&account("sales"), "Ann@X.test", 20_000);
    for _ in 0..3 {
        assert!(store.take_user_call(&today, 3).await.unwrap());
    }
    assert!(!store.take_user_call(&today, 3).await.unwrap(), "the cap");
    let other_user = UserDay::new(&account("sales"), "bob@x.test", 20_000);
    let other_account = UserDay::new(&account("support"), "ann@x.test", 20_000);
    assert!(store.take_user_call(&other_user, 3).await.unwrap());
    assert!(store.take_user_call(&other_account, 3).await.unwrap());

    store.give_back_user_call(&today).await.unwrap();
    assert!(store.take_user_call(&today, 3).await.unwrap(), "given back");
    assert!(!store.take_user_call(&today, 3).await.unwrap());

    let tomorrow = UserDay {
        day: 20_001,
        ..today.clone()
    };
    // Giving back a call of another day changes nothing.
    store.give_back_user_call(&tomorrow).await.unwrap();
    assert!(!store.take_user_call(&today, 3).await.unwrap());
    assert!(
        store.take_user_call(&tomorrow, 3).await.unwrap(),
        "a new day"
    );

    store.fill_user_day(&other_user, 3).await.unwrap();
    assert!(
        !store.take_user_call(&other_user, 3).await.unwrap(),
        "filled"
    );
    // An old day's news does not undo a newer day.
    store.fill_user_day(&today, 3).await.unwrap();
    assert!(store.take_user_call(&tomorrow, 3).await.unwrap());
}

pub(crate) async fn concurrent_takes_of_a_user_s_calls_never_pass_the_cap(store: Arc<dyn Store>) {
    let day = UserDay::new(&account("sales"), "ann@x.test", 20_000);
    let takes: Vec<_> = (0..40)
        .map(|_| {
            let (store, day) = (Arc::clone(&store), day.clone());
            tokio::spawn(async move { store.take_user_call(&day, 25).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for take in takes {
        taken += usize::from(take.await.unwrap());
    }
    assert_eq!(taken, 25);
}

fn create_request(caller: &str, id: &str, body: &str, at_millis: i64) -> CreateRequest {
    CreateRequest {
        caller: caller.into(),
        request_id: id.into(),
        body_sha256: body.into(),
        at: DateTime::from_timestamp_millis(at_millis).unwrap(),
    }
}

fn millis(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at).unwrap()
}

pub(crate) async fn a_create_request_is_claimed_once_and_tells_retries_how_it_ended(
    store: Arc<dyn Store>,
) {
    let (expired, stale) = (millis(T0 - 86_400_000), millis(T0 - 60_000));
    let first = create_request("bot", "id-1", "body-a", T0);
    assert_eq!(
        store.claim_create(&first, expired, stale).await.unwrap(),
        Claim::Claimed
    );
    let retry = create_request("bot", "id-1", "body-a", T0 + 1_000);
    assert_eq!(
        store.claim_create(&retry, expired, stale).await.unwrap(),
        Claim::Running { since: millis(T0) }
    );
    let other = create_request("bot", "id-1", "body-b", T0 + 1_000);
    assert_eq!(
        store.claim_create(&other, expired, stale).await.unwrap(),
        Claim::OtherBody
    );
    let other_caller = create_request("other-bot", "id-1", "body-b", T0 + 1_000);
    assert_eq!(
        store
            .claim_create(&other_caller, expired, stale)
            .await
            .unwrap(),
        Claim::Claimed,
        "ids are per caller"
    );
    // A running claim that outlived every request's deadline died with its try.
    let later_stale = millis(T0 + 1);
    assert_eq!(
        store
            .claim_create(&retry, expired, later_stale)
            .await
            .unwrap(),
        Claim::Unknown { since: millis(T0) }
    );

    store
        .finish_create("bot", "id-1", CreateEnd::Unknown)
        .await
        .unwrap();
    assert_eq!(
        store.claim_create(&retry, expired, stale).await.unwrap(),
        Claim::Unknown { since: millis(T0) }
    );
    let done = CreateEnd::Done {
        account: account("sales"),
        meeting_id: 42,
    };
    store.finish_create("bot", "id-1", done).await.unwrap();
    let replay = Claim::Done {
        account: account("sales"),
        meeting_id: 42,
    };
    assert_eq!(
        store.claim_create(&retry, expired, stale).await.unwrap(),
        replay
    );
    // A done create stays done: neither an unknown end nor a failure undoes it.
    store
        .finish_create("bot", "id-1", CreateEnd::Unknown)
        .await
        .unwrap();
    store
        .finish_create("bot", "id-1", CreateEnd::Failed)
        .await
        .unwrap();
    assert_eq!(
        store.claim_create(&retry, expired, stale).await.unwrap(),
        replay
    );

    // A create Zoom refused frees its id.
    store
        .finish_create("other-bot", "id-1", CreateEnd::Failed)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_create(&other_caller, expired, stale)
            .await
            .unwrap(),
        Claim::Claimed
    );
}

pub(crate) async fn create_claims_expire_and_are_purged(store: Arc<dyn Store>) {
    let stale = millis(T0 - 60_000);
    let old = create_request("bot", "id-old", "body", T0 - 10_000);
    let new = create_request("bot", "id-new", "body", T0);
    store.claim_create(&old, millis(0), stale).await.unwrap();
    store.claim_create(&new, millis(0), stale).await.unwrap();
    store
        .finish_create(
            "bot",
            "id-old",
            CreateEnd::Done {
                account: account("sales"),
                meeting_id: 7,
            },
        )
        .await
        .unwrap();
    // Past the retention, the id is claimed anew, with another body if need be.
    let again = create_request("bot", "id-old", "other body", T0 + 1);
    assert_eq!(
        store
            .claim_create(&again, millis(T0 - 5_000), stale)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        store.purge_creates(millis(T0 + 1)).await.unwrap(),
        1,
        "only id-new is older"
    );
    assert_eq!(store.purge_creates(millis(T0 + 2)).await.unwrap(), 1);
    assert_eq!(
        store.claim_create(&new, millis(0), stale).await.unwrap(),
        Claim::Claimed,
        "purged"
    );
}
