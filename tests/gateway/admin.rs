//! The Admin API through gRPC: roles, accounts, route overrides, explain and the audit trail.

use tonic::Code;
use zoomgate::emulator::Faults;
use zoomgate::proto;
use zoomgate::proto::explanation::Source;

use crate::support::*;

fn explain(caller: &str, email: &str, op: proto::Operation) -> proto::ExplainRequest {
    proto::ExplainRequest {
        caller: caller.into(),
        target: Some(proto::explain_request::Target::UserEmail(email.into())),
        operation: op.into(),
        probe: false,
    }
}

fn put(email: &str, account: &str, force: bool) -> proto::PutRouteRequest {
    proto::PutRouteRequest {
        user_email: email.into(),
        account: account.into(),
        force,
    }
}

/// Calls every Admin RPC once with `admin`; returns the status of each failing call by name.
async fn every_rpc(admin: &mut Admin) -> Vec<(&'static str, Result<(), tonic::Status>)> {
    fn done<T>(result: Result<T, tonic::Status>) -> Result<(), tonic::Status> {
        result.map(drop)
    }
    vec![
        (
            "ListAccounts",
            done(admin.list_accounts(proto::ListAccountsRequest {}).await),
        ),
        (
            "GetAccount",
            done(
                admin
                    .get_account(proto::GetAccountRequest {
                        name: "acme-sales".into(),
                    })
                    .await,
            ),
        ),
        (
            "ListRoutes",
            done(admin.list_routes(proto::ListRoutesRequest::default()).await),
        ),
        (
            "GetRoute",
            done(
                admin
                    .get_route(proto::GetRouteRequest {
                        user_email: "frank@partner.test".into(),
                    })
                    .await,
            ),
        ),
        (
            "PutRoute",
            done(
                admin
                    .put_route(put("frank@partner.test", "acme-support", true))
                    .await,
            ),
        ),
        (
            "DeleteRoute",
            done(
                admin
                    .delete_route(proto::DeleteRouteRequest {
                        user_email: "frank@partner.test".into(),
                    })
                    .await,
            ),
        ),
        (
            "Explain",
            done(
                admin
                    .explain(explain(
                        "sales-bot",
                        "alice@sales.acme.test",
                        proto::Operation::Read,
                    ))
                    .await,
            ),
        ),
        (
            "ListAudit",
            done(admin.list_audit(proto::ListAuditRequest::default()).await),
        ),
        (
            "SyncDirectory",
            done(admin.sync_directory(proto::SyncDirectoryRequest {}).await),
        ),
        (
            "GetSyncReport",
            done(admin.get_sync_report(proto::GetSyncReportRequest {}).await),
        ),
    ]
}

#[tokio::test]
async fn callers_without_the_admin_role_are_denied_every_rpc() {
    let gw = TestGateway::spawn().await;
    // The admin caller of the meetings API holds every meeting grant, but no admin role.
    for key in [SALES_KEY, ADMIN_KEY] {
        let mut admin = gw.admin(key).await;
        for (rpc, result) in every_rpc(&mut admin).await {
            let status = result.expect_err(rpc);
            assert_eq!(status.code(), Code::PermissionDenied, "{rpc}");
            assert_eq!(reason(&status), "ADMIN_ROLE_REQUIRED", "{rpc}");
        }
    }
    let status = gw
        .admin("not-a-key")
        .await
        .list_accounts(proto::ListAccountsRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    gw.stop().await;
}

#[tokio::test]
async fn a_read_admin_is_denied_every_change_and_the_denial_is_audited() {
    let gw = TestGateway::spawn().await;
    let mut auditor = gw.admin(AUDITOR_KEY).await;
    for (rpc, result) in every_rpc(&mut auditor).await {
        match rpc {
            "PutRoute" | "DeleteRoute" | "SyncDirectory" => {
                let status = result.expect_err(rpc);
                assert_eq!(status.code(), Code::PermissionDenied, "{rpc}");
                assert_eq!(reason(&status), "ADMIN_ROLE_REQUIRED", "{rpc}");
            }
            // A read admin reads; the route it asks for does not exist, no sync ran.
            "GetRoute" | "GetSyncReport" => {
                assert_eq!(result.unwrap_err().code(), Code::NotFound, "{rpc}")
            }
            _ => result.unwrap_or_else(|status| panic!("{rpc}: {status:?}")),
        }
    }
    let routes = auditor
        .list_routes(proto::ListRoutesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(routes.routes.is_empty(), "nothing changed");
    let denied = auditor
        .list_audit(proto::ListAuditRequest {
            caller: "auditor".into(),
            outcome: "denied".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let operations: Vec<&str> = denied.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        operations,
        [
            "admin.sync_directory",
            "admin.delete_route",
            "admin.put_route"
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn accounts_show_token_state_and_request_counts_without_secrets() {
    let gw = TestGateway::spawn().await;
    let mut sales = gw.client(SALES_KEY).await;
    sales
        .create_meeting(create_for("alice@sales.acme.test", "counted"))
        .await
        .unwrap();
    let mut admin = gw.admin(PLATFORM_KEY).await;
    let accounts = admin
        .list_accounts(proto::ListAccountsRequest {})
        .await
        .unwrap()
        .into_inner()
        .accounts;
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["acme-limited", "acme-sales", "acme-support"]);

    let sales_account = &accounts[1];
    assert_eq!(sales_account.zoom_account_id, SALES_ZOOM_ID);
    assert_eq!(sales_account.plan, "pro");
    let token = sales_account.token.clone().unwrap();
    assert!(token.valid_until.is_some() && token.last_fetch.is_some());
    assert_eq!(token.fetches, 1);
    assert!(token.last_error.is_empty() && token.cooldown.is_none());
    assert_eq!(sales_account.requests.unwrap().allowed, 1);
    // Tokens are fetched on first use: an account nobody called has none yet.
    let limited = accounts[0].token.clone().unwrap();
    assert!(limited.valid_until.is_none() && limited.fetches == 0);

    let one = admin
        .get_account(proto::GetAccountRequest {
            name: "acme-sales".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.name, "acme-sales");
    let missing = admin
        .get_account(proto::GetAccountRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(reason(&missing), "ACCOUNT_NOT_FOUND");

    let shown = format!("{accounts:?}");
    for secret in [
        SALES_SECRET,
        SUPPORT_SECRET,
        LIMITED_SECRET,
        SALES_KEY,
        PLATFORM_KEY,
    ] {
        assert!(!shown.contains(secret), "the accounts view shows {secret}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn accounts_show_their_budget_its_pauses_and_their_circuit() {
    let gw = TestGateway::spawn().await;
    let mut meetings = gw.client(ADMIN_KEY).await;
    let meeting = meetings
        .create_meeting(create_for("alice@sales.acme.test", "budget"))
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut admin = gw.admin(AUDITOR_KEY).await;
    let budget = async |admin: &mut Admin, name: &str| {
        admin
            .get_account(proto::GetAccountRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner()
            .budget
            .unwrap()
    };
    let sales = budget(&mut admin, "acme-sales").await;
    assert_eq!(sales.circuit, "closed");
    let shown: Vec<(&str, f64, u64)> = sales
        .categories
        .iter()
        .map(|c| (c.category.as_str(), c.per_second, c.daily))
        .collect();
    assert_eq!(
        shown,
        [
            ("light", 30.0, 0),
            ("medium", 20.0, 0),
            ("heavy", 10.0, 30_000)
        ],
        "Zoom's Pro table"
    );
    assert_eq!(
        budget(&mut admin, "acme-support").await.categories[0].per_second,
        80.0
    );

    // A 429 pauses the category; it shows.
    gw.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            force_429: true,
            ..Default::default()
        },
    );
    let mut request = tonic::Request::new(get(meeting));
    request.set_timeout(std::time::Duration::from_millis(500));
    meetings.get_meeting(request).await.unwrap_err();
    let paused = budget(&mut admin, "acme-sales").await;
    assert!(paused.categories[0].paused_for.is_some(), "{paused:?}");
    assert!(paused.categories[1].paused_for.is_none());

    // Zoom down: the circuit opens, in this account only.
    gw.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    for _ in 0..3 {
        let _ = meetings.get_meeting(get(meeting)).await;
    }
    assert_ne!(budget(&mut admin, "acme-sales").await.circuit, "closed");
    assert_eq!(budget(&mut admin, "acme-support").await.circuit, "closed");
    gw.stop().await;
}

#[tokio::test]
async fn a_route_is_checked_in_zoom_unless_forced() {
    let gw = TestGateway::spawn().await;
    let mut admin = gw.admin(PLATFORM_KEY).await;
    // erin lives in the sales account only.
    let refused = admin
        .put_route(put("erin@partner.test", "acme-support", false))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "USER_NOT_IN_ACCOUNT");
    assert!(refused.message().contains("force"), "{}", refused.message());

    let forced = admin
        .put_route(put("Erin@Partner.test", "acme-support", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(forced.user_email, "erin@partner.test");
    assert!(forced.forced);
    assert_eq!(forced.set_by, "platform");

    let checked = admin
        .put_route(put("frank@partner.test", "acme-support", false))
        .await
        .unwrap()
        .into_inner();
    assert!(!checked.forced);

    let unknown = admin
        .put_route(put("frank@partner.test", "acme-nowhere", true))
        .await
        .unwrap_err();
    assert_eq!(reason(&unknown), "ACCOUNT_NOT_FOUND");
    let bad = admin
        .put_route(put("not an email", "acme-sales", true))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["user_email"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_route_beats_the_config_rule_at_once_and_each_change_is_audited() {
    let gw = TestGateway::spawn().await;
    let mut admin = gw.admin(PLATFORM_KEY).await;
    let mut client = gw.client(ADMIN_KEY).await;
    let alice = "alice@sales.acme.test";

    admin
        .put_route(put(alice, "acme-support", true))
        .await
        .unwrap();
    let before = gw.zoom.requests(SUPPORT_ZOOM_ID);
    // The support account does not know alice: the request went there, as the route says.
    let status = client
        .create_meeting(create_for(alice, "routed"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let after = gw.zoom.requests(SUPPORT_ZOOM_ID);
    let creates = |counts: &std::collections::BTreeMap<String, u64>| {
        counts
            .get("POST /users/{userId}/meetings")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(creates(&after), creates(&before) + 1);

    let removed = admin
        .delete_route(proto::DeleteRouteRequest {
            user_email: alice.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed.unwrap().account, "acme-support");
    let meeting = client
        .create_meeting(create_for(alice, "by the rule again"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meeting.account, "acme-sales");
    let gone = admin
        .delete_route(proto::DeleteRouteRequest {
            user_email: alice.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&gone), "ROUTE_NOT_FOUND");

    let trail = admin
        .list_audit(proto::ListAuditRequest {
            caller: "platform".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let changes: Vec<(&str, &str, &str, &str)> = trail
        .iter()
        .map(|r| {
            (
                r.operation.as_str(),
                r.account.as_str(),
                r.user.as_str(),
                r.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("admin.delete_route", "acme-support", alice, "allowed"),
            ("admin.put_route", "acme-support", alice, "allowed"),
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn routes_and_audit_list_page_by_page() {
    let gw = TestGateway::spawn().await;
    let mut admin = gw.admin(PLATFORM_KEY).await;
    let emails: Vec<String> = (0..5).map(|i| format!("user{i}@partner.test")).collect();
    for email in emails.iter().rev() {
        admin
            .put_route(put(email, "acme-sales", true))
            .await
            .unwrap();
    }
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_routes(proto::ListRoutesRequest {
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        listed.extend(page.routes.into_iter().map(|r| r.user_email));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed, emails);
    assert_eq!(pages, 3);

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_audit(proto::ListAuditRequest {
                operation: "admin.put_route".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.records.into_iter().map(|r| r.user));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // Newest first: the reverse of the order they were put in.
    assert_eq!(seen, emails);

    let bad = admin
        .list_audit(proto::ListAuditRequest {
            page_token: "garbage".into(),
            outcome: "maybe".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["outcome"]);
    let bad = admin
        .list_routes(proto::ListRoutesRequest {
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["page_size"]);
    gw.stop().await;
}

#[tokio::test]
async fn explain_names_each_source_the_grant_and_the_fields() {
    let gw = TestGateway::spawn().await;
    let mut admin = gw.admin(AUDITOR_KEY).await;
    let mut ask =
        async |request: proto::ExplainRequest| admin.explain(request).await.unwrap().into_inner();

    // A config rule, by its place in the file; the grant by its place; no sensitive field.
    let ruled = ask(explain(
        "sales-bot",
        "alice@sales.acme.test",
        proto::Operation::Create,
    ))
    .await;
    assert_eq!(ruled.source(), Source::ConfigRule);
    assert_eq!(ruled.rule, "accounts[0].domains[0]");
    assert_eq!(ruled.account, "acme-sales");
    assert_eq!(ruled.allowed, Some(true));
    assert_eq!(ruled.grant, "callers[1].grants[0]");
    assert!(ruled.visible_fields.is_empty());
    let everything = ask(explain(
        "admin",
        "alice@sales.acme.test",
        proto::Operation::Read,
    ))
    .await;
    assert_eq!(everything.grant, "callers[0].grants[0]");
    assert_eq!(everything.visible_fields, ["start_url", "password"]);

    // Denials with their reasons.
    let other_account = ask(explain(
        "support-reader",
        "alice@sales.acme.test",
        proto::Operation::Read,
    ))
    .await;
    assert_eq!(other_account.allowed, Some(false));
    assert_eq!(
        other_account.denial,
        "no grant allows the operation in this account"
    );
    let no_operation = ask(explain(
        "sales-bot",
        "alice@sales.acme.test",
        proto::Operation::Delete,
    ))
    .await;
    assert_eq!(
        no_operation.denial,
        "no grant of the caller allows the operation"
    );

    // Nothing places a partner.test user: a probe would ask the caller's accounts.
    let unknown = ask(explain(
        "admin",
        "frank@partner.test",
        proto::Operation::Read,
    ))
    .await;
    assert_eq!(unknown.source(), Source::ProbeNeeded);
    assert_eq!(
        unknown.probe_accounts,
        ["acme-limited", "acme-sales", "acme-support"]
    );
    assert_eq!(unknown.allowed, None);
    assert_eq!(
        gw.zoom.requests(SUPPORT_ZOOM_ID).get("GET /users/{userId}"),
        None,
        "explain asks Zoom only when told to"
    );

    // Asked to probe, it asks Zoom as the caller's request would.
    let mut probing = explain(
        "support-reader",
        "frank@partner.test",
        proto::Operation::Read,
    );
    probing.probe = true;
    let probed = ask(probing).await;
    assert_eq!(probed.source(), Source::Probe);
    assert_eq!(probed.account, "acme-support");
    assert_eq!(probed.probe_accounts, ["acme-support"]);
    assert_eq!(probed.allowed, Some(true));
    assert_eq!(probed.visible_fields, ["password"]);

    // What that probe found is remembered.
    let known = ask(explain(
        "support-reader",
        "frank@partner.test",
        proto::Operation::Read,
    ))
    .await;
    assert_eq!(known.source(), Source::ProbeCache);
    assert_eq!(known.account, "acme-support");

    // The ledger places a meeting, and the grants are checked against its host.
    let meeting = gw
        .client(SALES_KEY)
        .await
        .create_meeting(create_for("bob@sales.acme.test", "explained"))
        .await
        .unwrap()
        .into_inner();
    let by_meeting = ask(proto::ExplainRequest {
        caller: "sales-bot".into(),
        target: Some(proto::explain_request::Target::MeetingId(meeting.id)),
        operation: proto::Operation::Update.into(),
        probe: false,
    })
    .await;
    assert_eq!(by_meeting.source(), Source::Ledger);
    assert_eq!(by_meeting.account, "acme-sales");
    assert_eq!(by_meeting.user_email, "bob@sales.acme.test");
    assert_eq!(by_meeting.allowed, Some(true));

    // An override, set by the platform team, wins over the rule.
    gw.admin(PLATFORM_KEY)
        .await
        .put_route(put("alice@sales.acme.test", "acme-support", true))
        .await
        .unwrap();
    let overridden = ask(explain(
        "sales-bot",
        "alice@sales.acme.test",
        proto::Operation::Create,
    ))
    .await;
    assert_eq!(overridden.source(), Source::Override);
    assert_eq!(overridden.account, "acme-support");
    assert_eq!(overridden.allowed, Some(false));

    // Bad questions name their field.
    for (request, field) in [
        (
            explain("nobody", "alice@sales.acme.test", proto::Operation::Read),
            None,
        ),
        (
            proto::ExplainRequest {
                caller: "sales-bot".into(),
                target: None,
                operation: proto::Operation::Read.into(),
                probe: false,
            },
            Some("target"),
        ),
        (
            explain(
                "sales-bot",
                "alice@sales.acme.test",
                proto::Operation::Unspecified,
            ),
            Some("operation"),
        ),
    ] {
        let status = admin_explain_error(&gw, request).await;
        match field {
            None => assert_eq!(reason(&status), "CALLER_NOT_FOUND"),
            Some(field) => assert_eq!(violated_fields(&status), [field]),
        }
    }
    gw.stop().await;
}

async fn admin_explain_error(gw: &TestGateway, request: proto::ExplainRequest) -> tonic::Status {
    gw.admin(AUDITOR_KEY)
        .await
        .explain(request)
        .await
        .expect_err("refused")
}

#[tokio::test]
async fn routes_and_the_audit_trail_survive_a_restart() {
    let mut gw = TestGateway::spawn().await;
    gw.admin(PLATFORM_KEY)
        .await
        .put_route(put("alice@sales.acme.test", "acme-support", true))
        .await
        .unwrap();
    gw.restart().await;
    let mut admin = gw.admin(AUDITOR_KEY).await;
    let route = admin
        .get_route(proto::GetRouteRequest {
            user_email: "alice@sales.acme.test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(route.account, "acme-support");
    let explained = admin
        .explain(explain(
            "admin",
            "alice@sales.acme.test",
            proto::Operation::Read,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        explained.source(),
        Source::Override,
        "the route is in force again"
    );
    let trail = admin
        .list_audit(proto::ListAuditRequest {
            operation: "admin.put_route".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(trail.len(), 1);
    gw.stop().await;
}
