//! Per-caller grants: each caller does exactly what it was granted, and learns nothing else.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use tonic::Code;
use zoomgate::proto;

use crate::support::*;

fn total_zoom_requests(gateway: &TestGateway) -> u64 {
    [SALES_ZOOM_ID, SUPPORT_ZOOM_ID, LIMITED_ZOOM_ID]
        .iter()
        .map(|id| gateway.zoom.total_requests(id))
        .sum()
}

/// Creates one meeting per user through the admin caller; returns email -> meeting.
async fn seed(gateway: &TestGateway) -> HashMap<&'static str, proto::Meeting> {
    let mut admin = gateway.client(ADMIN_KEY).await;
    let mut meetings = HashMap::new();
    for email in [
        "alice@sales.acme.test",
        "bob@sales.acme.test",
        "carol@support.acme.test",
        "dave@support.acme.test",
        "frank@partner.test",
    ] {
        let meeting = admin
            .create_meeting(create_for(email, &format!("{email}'s meeting")))
            .await
            .expect("admin creates")
            .into_inner();
        meetings.insert(email, meeting);
    }
    meetings
}

/// Creates a meeting for carol (support) as admin; routed by rule, so no probe is involved.
async fn carols_meeting(gateway: &TestGateway) -> i64 {
    gateway
        .client(ADMIN_KEY)
        .await
        .create_meeting(create_for("carol@support.acme.test", "Support sync"))
        .await
        .expect("admin creates")
        .into_inner()
        .id
}

/// Asserts the call is refused with `code` and that Zoom saw nothing of it.
async fn refused<T: std::fmt::Debug>(
    gateway: &TestGateway,
    code: Code,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> tonic::Status {
    let before = total_zoom_requests(gateway);
    let status = call.await.expect_err("the call is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(
        total_zoom_requests(gateway),
        before,
        "a refused call reached Zoom"
    );
    status
}

#[tokio::test]
async fn a_probed_meeting_outside_the_grants_is_looked_up_once() {
    let gateway = TestGateway::spawn().await;
    // erin lives in the sales account but outside sales-bot's `@sales.acme.test` grant, and the
    // gateway has never seen this meeting: only a probe can find its owner.
    let hidden = gateway.create_in_sales_zoom("u-erin", "Partner call").await;
    let mut sales = gateway.client(SALES_KEY).await;

    let before = total_zoom_requests(&gateway);
    let first = sales.get_meeting(get(hidden)).await.unwrap_err();
    assert_eq!(total_zoom_requests(&gateway), before + 1, "one probe");
    let again = refused(&gateway, Code::NotFound, sales.get_meeting(get(hidden))).await;
    let missing = sales.get_meeting(get(1)).await.unwrap_err();

    assert_eq!(first.code(), Code::NotFound);
    assert_eq!(shape(&first, hidden), shape(&again, hidden));
    assert_eq!(shape(&first, hidden), shape(&missing, 1));

    // One the bot may read but not delete: the same PERMISSION_DENIED whether the gateway had
    // seen it before or not.
    let readable = gateway
        .create_in_sales_zoom("u-alice", "Alice's call")
        .await;
    let delete = |meeting_id| proto::DeleteMeetingRequest {
        meeting_id,
        occurrence_id: String::new(),
    };
    let unknown = sales.delete_meeting(delete(readable)).await.unwrap_err();
    let known = refused(
        &gateway,
        Code::PermissionDenied,
        sales.delete_meeting(delete(readable)),
    )
    .await;
    assert_eq!(shape(&unknown, readable), shape(&known, readable));
    assert_eq!(
        gateway.zoom.meetings(SALES_ZOOM_ID).len(),
        2,
        "nothing was deleted"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_host_transfer_behind_the_gateway_is_decided_on_the_new_host() {
    let gateway = TestGateway::spawn().await;
    // The meeting is erin's in Zoom, but the ledger still says alice hosts it: as if an admin
    // had moved it from alice to erin in Zoom's web portal.
    let moved = gateway.create_in_sales_zoom("u-erin", "Moved away").await;
    gateway
        .store
        .record_meeting(&zoomgate::store::MeetingRecord {
            meeting_id: moved,
            account: zoomgate::accounts::AccountName::parse("acme-sales").unwrap(),
            host_id: "u-alice".into(),
            host_email: "alice@sales.acme.test".into(),
            created_by: "sales-bot".into(),
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let mut sales = gateway.client(SALES_KEY).await;

    let update = sales
        .update_meeting(update_topic(moved, "Hijacked"))
        .await
        .unwrap_err();
    let read = sales.get_meeting(get(moved)).await.unwrap_err();

    assert_eq!(update.code(), Code::NotFound, "{update:?}");
    assert_eq!(read.code(), Code::NotFound, "{read:?}");
    let requests = gateway.zoom.requests(SALES_ZOOM_ID);
    assert_eq!(
        requests.get("PATCH /meetings/{meetingId}"),
        None,
        "{requests:?}"
    );
    let ledger = gateway.store.meeting(moved).await.unwrap().unwrap();
    assert_eq!(
        ledger.host_email, "erin@partner.test",
        "the ledger learnt the new host"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn not_yours_takes_as_long_as_does_not_exist() {
    let gateway = TestGateway::spawn().await;
    // Routed by rule: the gateway has not timed any probe yet.
    let carols = carols_meeting(&gateway).await;
    // Every answer of the sales account takes 100 ms, like a distant Zoom.
    let slow = zoomgate::emulator::Faults {
        latency_ms: 100,
        ..Default::default()
    };
    gateway.zoom.set_faults(SALES_ZOOM_ID, slow);
    let sales = gateway.client(SALES_KEY).await;
    let timed = |id: i64| {
        let mut sales = sales.clone();
        async move {
            let started = std::time::Instant::now();
            let status = sales.get_meeting(get(id)).await.unwrap_err();
            (status, started.elapsed())
        }
    };

    // A meeting that does not exist costs sales-bot a probe of its one account.
    let (missing, probe_time) = timed(5_555_555_555).await;
    assert!(probe_time >= Duration::from_millis(100), "{probe_time:?}");
    // Carol's meeting is in the ledger, outside sales-bot's grants: no probe is needed, and yet
    // the answer takes as long as one.
    let (hidden, took) = timed(carols).await;
    let (again, took_again) = timed(5_555_555_555).await;

    assert_eq!(shape(&hidden, carols), shape(&missing, 5_555_555_555));
    assert_eq!(shape(&again, 5_555_555_555), shape(&missing, 5_555_555_555));
    assert!(
        took >= Duration::from_millis(90),
        "not yours answered in {took:?}"
    );
    assert!(
        took_again >= Duration::from_millis(90),
        "a cached miss answered in {took_again:?}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn while_its_account_fails_not_yours_fails_the_same_way() {
    let gateway = TestGateway::spawn().await;
    let carols = carols_meeting(&gateway).await;
    let mut sales = gateway.client(SALES_KEY).await;
    let missing = 6_666_666_666;
    let throttled = zoomgate::emulator::Faults {
        force_429: true,
        ..Default::default()
    };
    gateway.zoom.set_faults(SALES_ZOOM_ID, throttled);

    // sales-bot's only account answers 429: an unknown id cannot be looked up...
    let unknown = sales.get_meeting(get(missing)).await.unwrap_err();
    // ...and a meeting the ledger knows, outside its grants, must not answer differently.
    let known = sales.get_meeting(get(carols)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::ResourceExhausted, "{unknown:?}");
    assert_eq!(shape(&known, carols), shape(&unknown, missing));

    // Zoom recovers; once the failure mark of the account expires, both answer NOT_FOUND again.
    gateway.zoom.set_faults(SALES_ZOOM_ID, Default::default());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let unknown = sales.get_meeting(get(missing)).await.unwrap_err();
    let known = sales.get_meeting(get(carols)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert_eq!(shape(&known, carols), shape(&unknown, missing));
    gateway.stop().await;
}

fn update_topic(id: i64, topic: &str) -> proto::UpdateMeetingRequest {
    proto::UpdateMeetingRequest {
        meeting_id: id,
        meeting: Some(proto::Meeting {
            topic: topic.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["topic".into()],
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn each_caller_does_exactly_what_its_grants_allow() {
    let gateway = TestGateway::spawn().await;
    let seeded = seed(&gateway).await;
    let id = |email: &str| seeded[email].id;

    // admin: everything, including start links and passcodes.
    let mut admin = gateway.client(ADMIN_KEY).await;
    let full = admin
        .get_meeting(get(id("carol@support.acme.test")))
        .await
        .unwrap()
        .into_inner();
    assert!(!full.start_url.is_empty());
    assert_eq!(full.password, "abc123");
    let has_extra = |m: &proto::Meeting, key: &str| {
        m.extra.as_ref().is_some_and(|e| e.fields.contains_key(key))
    };
    assert!(has_extra(&full, "dynamic_host_key"));

    // sales-bot: sales users; read, list, create, update; no sensitive fields.
    let mut sales = gateway.client(SALES_KEY).await;
    let own = sales
        .get_meeting(get(id("alice@sales.acme.test")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.account, "acme-sales");
    assert!(own.start_url.is_empty() && own.password.is_empty());
    assert!(
        !has_extra(&own, "dynamic_host_key"),
        "the host key starts meetings too"
    );
    assert!(!own.join_url.contains("pwd="), "{}", own.join_url);
    assert!(
        own.extra
            .as_ref()
            .is_none_or(|e| !e.fields.keys().any(|k| k.contains("password")))
    );
    let created = sales
        .create_meeting(create_for("bob@sales.acme.test", "Bot meeting"))
        .await
        .expect("sales-bot creates for a sales user")
        .into_inner();
    assert!(created.start_url.is_empty() && created.password.is_empty());
    sales
        .update_meeting(update_topic(id("alice@sales.acme.test"), "Renamed by bot"))
        .await
        .expect("sales-bot updates a sales meeting");
    sales
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .expect("sales-bot lists");
    refused(
        &gateway,
        Code::PermissionDenied,
        sales.delete_meeting(proto::DeleteMeetingRequest {
            meeting_id: id("alice@sales.acme.test"),
            occurrence_id: String::new(),
        }),
    )
    .await;
    refused(
        &gateway,
        Code::PermissionDenied,
        sales.end_meeting(proto::EndMeetingRequest {
            meeting_id: id("alice@sales.acme.test"),
        }),
    )
    .await;
    refused(
        &gateway,
        Code::NotFound,
        sales.get_meeting(get(id("carol@support.acme.test"))),
    )
    .await;
    refused(
        &gateway,
        Code::NotFound,
        sales.update_meeting(update_topic(id("dave@support.acme.test"), "x")),
    )
    .await;
    refused(
        &gateway,
        Code::NotFound,
        sales.create_meeting(create_for("carol@support.acme.test", "x")),
    )
    .await;
    refused(
        &gateway,
        Code::NotFound,
        sales.list_meetings(list_for("dave@support.acme.test")),
    )
    .await;

    // support-reader: carol (via group) and frank; read and list; passcodes but no start links.
    let mut support = gateway.client(SUPPORT_KEY).await;
    let carol = support
        .get_meeting(get(id("carol@support.acme.test")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(carol.password, "abc123");
    assert!(carol.start_url.is_empty());
    support
        .get_meeting(get(id("frank@partner.test")))
        .await
        .expect("frank is granted by email");
    support
        .list_meetings(list_for("carol@support.acme.test"))
        .await
        .expect("lists carol");
    refused(
        &gateway,
        Code::NotFound,
        support.get_meeting(get(id("dave@support.acme.test"))),
    )
    .await;
    refused(
        &gateway,
        Code::NotFound,
        support.get_meeting(get(id("alice@sales.acme.test"))),
    )
    .await;
    refused(
        &gateway,
        Code::NotFound,
        support.list_meetings(list_for("dave@support.acme.test")),
    )
    .await;
    refused(
        &gateway,
        Code::PermissionDenied,
        support.create_meeting(create_for("carol@support.acme.test", "x")),
    )
    .await;
    refused(
        &gateway,
        Code::PermissionDenied,
        support.update_meeting(update_topic(id("carol@support.acme.test"), "x")),
    )
    .await;

    // What the denied calls touched in Zoom: nothing. What they changed: nothing.
    let dave = admin
        .get_meeting(get(id("dave@support.acme.test")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dave.topic, "dave@support.acme.test's meeting");
    gateway.stop().await;
}

/// What a caller may do, mirrored from the test config.
#[derive(Clone, Copy, Debug)]
enum TestCaller {
    Admin,
    SalesBot,
    SupportReader,
}

impl TestCaller {
    fn key(self) -> &'static str {
        match self {
            TestCaller::Admin => ADMIN_KEY,
            TestCaller::SalesBot => SALES_KEY,
            TestCaller::SupportReader => SUPPORT_KEY,
        }
    }

    fn may_read(self, host: &str) -> bool {
        match self {
            TestCaller::Admin => true,
            TestCaller::SalesBot => host.ends_with("@sales.acme.test"),
            TestCaller::SupportReader => {
                host == "carol@support.acme.test" || host == "frank@partner.test"
            }
        }
    }

    fn may_update(self, host: &str) -> bool {
        match self {
            TestCaller::Admin => true,
            TestCaller::SalesBot => host.ends_with("@sales.acme.test"),
            TestCaller::SupportReader => false,
        }
    }

    fn sees_start_url(self) -> bool {
        matches!(self, TestCaller::Admin)
    }

    fn sees_password(self) -> bool {
        matches!(self, TestCaller::Admin | TestCaller::SupportReader)
    }
}

#[derive(Clone, Debug)]
enum Target {
    Seeded(usize),
    Missing(usize),
}

/// Ids of meetings that do not exist. A small pool, so that probes are remembered as misses
/// and the run stays within Zoom's per-second budget, as a real client's would.
const MISSING: [i64; 4] = [1_111_111_111, 2_222_222_222, 3_333_333_333, 4_444_444_444];

/// Replaces the meeting id in a status message, so two messages can be compared by shape.
fn shape(status: &tonic::Status, id: i64) -> (Code, String, String) {
    (
        status.code(),
        status.message().replace(&id.to_string(), "{id}"),
        reason(status),
    )
}

#[test]
fn random_callers_never_see_or_touch_what_they_were_not_granted() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (gateway, seeded) = runtime.block_on(async {
        // 64 cases in a burst would trip Zoom's per-second limits, which this test is not about.
        let gateway = TestGateway::spawn_unthrottled().await;
        let seeded: Vec<(String, proto::Meeting)> = seed(&gateway)
            .await
            .into_iter()
            .map(|(e, m)| (e.to_owned(), m))
            .collect();
        (gateway, seeded)
    });
    let callers = [
        TestCaller::Admin,
        TestCaller::SalesBot,
        TestCaller::SupportReader,
    ];
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let seeded_count = seeded.len();
    proptest!(config, |(
        caller in prop::sample::select(callers.to_vec()),
        target in prop_oneof![
            (0..seeded_count).prop_map(Target::Seeded),
            (0..MISSING.len()).prop_map(Target::Missing),
        ],
        update in any::<bool>(),
        twin in prop::sample::select(MISSING.to_vec()),
    )| {
        runtime.block_on(async {
            let mut client = gateway.client(caller.key()).await;
            let (id, host) = match &target {
                Target::Seeded(i) => (seeded[*i].1.id, Some(seeded[*i].0.clone())),
                Target::Missing(i) => (MISSING[*i], None),
            };
            let allowed = host.as_deref().is_some_and(|h| if update { caller.may_update(h) } else { caller.may_read(h) });
            let visible = host.as_deref().is_some_and(|h| caller.may_read(h));
            let before: Vec<u64> = [SALES_ZOOM_ID, SUPPORT_ZOOM_ID, LIMITED_ZOOM_ID]
                .iter().map(|a| gateway.zoom.total_requests(a)).collect();
            let result = if update {
                client.update_meeting(update_topic(id, "proptest")).await
            } else {
                client.get_meeting(get(id)).await
            };
            let after: Vec<u64> = [SALES_ZOOM_ID, SUPPORT_ZOOM_ID, LIMITED_ZOOM_ID]
                .iter().map(|a| gateway.zoom.total_requests(a)).collect();
            match result {
                Ok(response) => {
                    let meeting = response.into_inner();
                    prop_assert!(allowed, "{caller:?} got {id}");
                    prop_assert_eq!(Some(meeting.host_email.as_str()), host.as_deref());
                    prop_assert!(caller.sees_start_url() || meeting.start_url.is_empty());
                    prop_assert!(caller.sees_password() || (meeting.password.is_empty() && !meeting.join_url.contains("pwd=")));
                }
                Err(status) => {
                    prop_assert!(!allowed, "{caller:?} was refused {id}: {status:?}");
                    if host.is_some() {
                        // Exists but not granted: no Zoom call at all.
                        prop_assert_eq!(&before, &after, "a denied request reached Zoom");
                    }
                    if !visible {
                        // Indistinguishable from a meeting that does not exist.
                        let mut client = gateway.client(caller.key()).await;
                        let missing = if update {
                            client.update_meeting(update_topic(twin, "proptest")).await.unwrap_err()
                        } else {
                            client.get_meeting(get(twin)).await.unwrap_err()
                        };
                        prop_assert_eq!(shape(&status, id), shape(&missing, twin));
                    }
                }
            }
            Ok(())
        })?;
    });
    runtime.block_on(gateway.stop());
}
