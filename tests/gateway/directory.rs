//! The directory sync through the Admin API, against the emulator: what it reads, what it
//! reports, and users who move between accounts.

use tonic::Code;
use zoomgate::proto;
use zoomgate::proto::explanation::Source;

use crate::support::*;

async fn sync(gw: &TestGateway) -> proto::SyncReport {
    gw.admin(PLATFORM_KEY)
        .await
        .sync_directory(proto::SyncDirectoryRequest {})
        .await
        .expect("sync runs")
        .into_inner()
}

async fn explain_user(gw: &TestGateway, caller: &str, email: &str) -> proto::Explanation {
    gw.admin(AUDITOR_KEY)
        .await
        .explain(proto::ExplainRequest {
            caller: caller.into(),
            target: Some(proto::explain_request::Target::UserEmail(email.into())),
            operation: proto::Operation::List.into(),
            probe: false,
        })
        .await
        .expect("explained")
        .into_inner()
}

fn list_of(email: &str) -> proto::ListMeetingsRequest {
    list_for(email)
}

fn lookups(gw: &TestGateway, account: &str) -> u64 {
    gw.zoom
        .requests(account)
        .get("GET /users/{userId}")
        .copied()
        .unwrap_or(0)
}

fn put(email: &str, account: &str, force: bool) -> proto::PutRouteRequest {
    proto::PutRouteRequest {
        user_email: email.into(),
        account: account.into(),
        force,
    }
}

#[tokio::test]
async fn a_sync_reads_every_account_and_routing_asks_it_before_probing() {
    let mut gw = TestGateway::spawn().await;
    let report = sync(&gw).await;
    let accounts: Vec<(&str, u32, bool)> = report
        .accounts
        .iter()
        .map(|a| (a.account.as_str(), a.users, a.error.is_empty()))
        .collect();
    // The limited account's app may not list users: reported, and the others still synced.
    assert_eq!(
        accounts,
        [
            ("acme-limited", 0, false),
            ("acme-sales", 3, true),
            ("acme-support", 3, true)
        ]
    );
    assert!(
        report.accounts[0].error.contains("scope"),
        "{}",
        report.accounts[0].error
    );
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let pages = gw.zoom.requests(SALES_ZOOM_ID).get("GET /users").copied();
    assert_eq!(pages, Some(1));

    let explained = explain_user(&gw, "admin", "erin@partner.test").await;
    assert_eq!(explained.source(), Source::Directory);
    assert_eq!(explained.account, "acme-sales");

    // No probe: the directory placed erin.
    let before = (lookups(&gw, SALES_ZOOM_ID), lookups(&gw, SUPPORT_ZOOM_ID));
    let page = gw
        .client(ADMIN_KEY)
        .await
        .list_meetings(list_of("erin@partner.test"))
        .await
        .expect("listed")
        .into_inner();
    assert!(page.meetings.is_empty());
    let after = (lookups(&gw, SALES_ZOOM_ID), lookups(&gw, SUPPORT_ZOOM_ID));
    assert_eq!(before, after);

    let last = gw
        .admin(AUDITOR_KEY)
        .await
        .get_sync_report(proto::GetSyncReportRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.accounts.len(), 3);

    // The directory is in the store: a restart keeps it.
    gw.restart().await;
    let explained = explain_user(&gw, "admin", "erin@partner.test").await;
    assert_eq!(explained.source(), Source::Directory);
    gw.stop().await;
}

#[tokio::test]
async fn a_sync_reports_rules_and_routes_that_contradict_zoom() {
    let gw = TestGateway::spawn().await;
    // Carol's domain rule says support; in Zoom she is in sales now.
    assert!(gw.zoom.move_user("carol@support.acme.test", SALES_ZOOM_ID));
    let mut admin = gw.admin(PLATFORM_KEY).await;
    // Frank is in support; ghost is nowhere.
    admin
        .put_route(put("frank@partner.test", "acme-sales", true))
        .await
        .unwrap();
    admin
        .put_route(put("ghost@partner.test", "acme-sales", true))
        .await
        .unwrap();
    let report = sync(&gw).await;
    let conflicts: Vec<(&str, &str, &str, Vec<&str>, &str)> = report
        .conflicts
        .iter()
        .map(|c| {
            (
                c.kind.as_str(),
                c.user_email.as_str(),
                c.claimed_account.as_str(),
                c.found_in.iter().map(String::as_str).collect(),
                c.rule.as_str(),
            )
        })
        .collect();
    assert_eq!(
        conflicts,
        [
            (
                "RULE_CONTRADICTS_ZOOM",
                "carol@support.acme.test",
                "acme-support",
                vec!["acme-sales"],
                "accounts[1].domains[0]"
            ),
            (
                "ROUTE_CONTRADICTS_ZOOM",
                "frank@partner.test",
                "acme-sales",
                vec!["acme-support"],
                ""
            ),
            (
                "ROUTE_TO_MISSING_USER",
                "ghost@partner.test",
                "acme-sales",
                vec![],
                ""
            ),
        ]
    );
    for conflict in &report.conflicts {
        assert!(
            conflict.description.contains(&conflict.user_email),
            "{conflict:?}"
        );
    }
    let audited = admin
        .list_audit(proto::ListAuditRequest {
            operation: "admin.sync_directory".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].caller, "platform");
    assert!(
        audited[0].detail.contains("3 conflicts"),
        "{:?}",
        audited[0]
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_user_who_moved_is_found_again_and_the_next_sync_follows() {
    let gw = TestGateway::spawn().await;
    sync(&gw).await;
    let mut client = gw.client(ADMIN_KEY).await;
    // The directory says sales; Zoom moved erin to support since.
    assert!(gw.zoom.move_user("erin@partner.test", SUPPORT_ZOOM_ID));
    let meeting = client
        .create_meeting(create_for("erin@partner.test", "after the move"))
        .await
        .expect("created in the account erin is in now")
        .into_inner();
    assert_eq!(meeting.account, "acme-support");
    let page = client
        .list_meetings(list_of("erin@partner.test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.meetings.len(), 1);
    assert_eq!(page.meetings[0].account, "acme-support");

    let report = sync(&gw).await;
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let explained = explain_user(&gw, "admin", "erin@partner.test").await;
    assert_eq!(
        (explained.source(), explained.account.as_str()),
        (Source::Directory, "acme-support")
    );

    // A route is the platform team's word: the gateway does not look past it, the sync
    // reports it.
    gw.admin(PLATFORM_KEY)
        .await
        .put_route(put("frank@partner.test", "acme-support", false))
        .await
        .unwrap();
    assert!(gw.zoom.move_user("frank@partner.test", SALES_ZOOM_ID));
    let status = client
        .list_meetings(list_of("frank@partner.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let report = sync(&gw).await;
    let kinds: Vec<(&str, &str)> = report
        .conflicts
        .iter()
        .map(|c| (c.kind.as_str(), c.user_email.as_str()))
        .collect();
    assert_eq!(kinds, [("ROUTE_CONTRADICTS_ZOOM", "frank@partner.test")]);
    gw.stop().await;
}
