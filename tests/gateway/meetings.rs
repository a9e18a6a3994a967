//! Every Meetings RPC lands in the Zoom account that owns the user.

use tonic::Code;
use zoomgate::proto;

use crate::support::*;

fn ids_in(gateway: &TestGateway, zoom_account: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = gateway
        .zoom
        .meetings(zoom_account)
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn each_operation_lands_in_the_owning_account() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;

    // Create: one meeting per account, routed by domain rule.
    let sales = client
        .create_meeting(create_for("alice@sales.acme.test", "Pipeline review"))
        .await
        .expect("create in sales")
        .into_inner();
    let support = client
        .create_meeting(create_for("carol@support.acme.test", "Escalations"))
        .await
        .expect("create in support")
        .into_inner();
    assert_eq!(sales.account, "acme-sales");
    assert_eq!(support.account, "acme-support");
    assert_eq!(sales.host_email, "alice@sales.acme.test");
    assert!(sales.id > 0 && sales.join_url.starts_with("http"));
    assert_eq!(ids_in(&gateway, SALES_ZOOM_ID), vec![sales.id]);
    assert_eq!(ids_in(&gateway, SUPPORT_ZOOM_ID), vec![support.id]);

    // Get.
    let got = client
        .get_meeting(get(support.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.id, got.account.as_str(), got.topic.as_str()),
        (support.id, "acme-support", "Escalations")
    );

    // Update: only the masked field changes, in the owning account.
    let updated = client
        .update_meeting(proto::UpdateMeetingRequest {
            meeting_id: sales.id,
            meeting: Some(proto::Meeting {
                topic: "Pipeline review (moved)".into(),
                agenda: "not in the mask".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["topic".into()],
            }),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.topic, "Pipeline review (moved)");
    assert_eq!(updated.account, "acme-sales");
    let in_zoom = gateway.zoom.meetings(SALES_ZOOM_ID);
    assert_eq!(in_zoom[0]["topic"], "Pipeline review (moved)");
    assert_ne!(in_zoom[0]["agenda"], "not in the mask");

    // List: each user's list comes from their own account.
    let listed = client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.meetings.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![sales.id]
    );
    assert!(listed.meetings.iter().all(|m| m.account == "acme-sales"));
    assert!(
        listed
            .meetings
            .iter()
            .all(|m| m.host_email == "alice@sales.acme.test"),
        "list items name their host"
    );
    let listed = client
        .list_meetings(list_for("carol@support.acme.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.meetings.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![support.id]
    );

    // End: the host starts the meeting in Zoom, then the gateway ends it.
    assert!(gateway.zoom.start_meeting(support.id));
    client
        .end_meeting(proto::EndMeetingRequest {
            meeting_id: support.id,
        })
        .await
        .expect("end");
    let ended = client
        .get_meeting(get(support.id))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(ended.status, "started");

    // Delete: gone from its account only.
    client
        .delete_meeting(proto::DeleteMeetingRequest {
            meeting_id: sales.id,
            occurrence_id: String::new(),
        })
        .await
        .expect("delete");
    assert!(ids_in(&gateway, SALES_ZOOM_ID).is_empty());
    assert_eq!(ids_in(&gateway, SUPPORT_ZOOM_ID), vec![support.id]);
    let gone = client.get_meeting(get(sales.id)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    gateway.stop().await;
}

#[tokio::test]
async fn a_meeting_deleted_behind_the_gateway_leaves_the_ledger() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;
    let meeting = client
        .create_meeting(create_for("alice@sales.acme.test", "Doomed"))
        .await
        .expect("create")
        .into_inner();
    assert!(gateway.store.meeting(meeting.id).await.unwrap().is_some());

    gateway.delete_in_sales_zoom(meeting.id).await;
    let gone = client.get_meeting(get(meeting.id)).await.unwrap_err();

    assert_eq!(gone.code(), Code::NotFound);
    assert!(
        gateway.store.meeting(meeting.id).await.unwrap().is_none(),
        "the stale ledger entry is dropped"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn users_without_a_rule_are_found_by_probing_and_cached() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;

    let meeting = client
        .create_meeting(create_for("frank@partner.test", "Partner sync"))
        .await
        .expect("create for a probed user")
        .into_inner();
    assert_eq!(meeting.account, "acme-support");
    assert_eq!(ids_in(&gateway, SUPPORT_ZOOM_ID), vec![meeting.id]);

    // The second request for the same user needs no new probe.
    let probes = |g: &TestGateway, zoom_id: &str| {
        g.zoom
            .requests(zoom_id)
            .get("GET /users/{userId}")
            .copied()
            .unwrap_or(0)
    };
    let before = (
        probes(&gateway, SALES_ZOOM_ID),
        probes(&gateway, SUPPORT_ZOOM_ID),
    );
    client
        .list_meetings(list_for("frank@partner.test"))
        .await
        .expect("list for a cached user");
    let after = (
        probes(&gateway, SALES_ZOOM_ID),
        probes(&gateway, SUPPORT_ZOOM_ID),
    );
    assert_eq!(before, after);

    // A user by Zoom id is found the same way.
    let by_id = client
        .list_meetings(proto::ListMeetingsRequest {
            user: Some(proto::list_meetings_request::User::UserId("u-erin".into())),
            ..Default::default()
        })
        .await
        .expect("list by user id")
        .into_inner();
    assert!(by_id.meetings.is_empty());

    gateway.stop().await;
}

#[tokio::test]
async fn recurring_meetings_have_occurrences_and_one_can_go() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;
    let mut meeting = scheduled("Weekly");
    meeting.r#type = proto::MeetingType::RecurringFixedTime as i32;
    meeting.recurrence = Some(proto::Recurrence {
        r#type: proto::recurrence::Type::Weekly as i32,
        repeat_interval: 1,
        weekly_days: vec![2],
        end_times: 4,
        ..Default::default()
    });
    let created = client
        .create_meeting(proto::CreateMeetingRequest {
            user: Some(proto::create_meeting_request::User::UserEmail(
                "bob@sales.acme.test".into(),
            )),
            meeting: Some(meeting),
            ..Default::default()
        })
        .await
        .expect("create recurring")
        .into_inner();
    assert_eq!(created.occurrences.len(), 4);
    assert_eq!(created.recurrence.as_ref().map(|r| r.end_times), Some(4));

    let first = created.occurrences[0].occurrence_id.clone();
    client
        .delete_meeting(proto::DeleteMeetingRequest {
            meeting_id: created.id,
            occurrence_id: first.clone(),
        })
        .await
        .expect("delete one occurrence");
    let after = client
        .get_meeting(get(created.id))
        .await
        .unwrap()
        .into_inner();
    let remaining: Vec<_> = after
        .occurrences
        .iter()
        .filter(|o| o.status != "deleted" && o.occurrence_id != first)
        .collect();
    assert_eq!(remaining.len(), 3);

    gateway.stop().await;
}
