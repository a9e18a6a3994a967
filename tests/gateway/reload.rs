//! Live config: the watched file changes under a running gateway, ConfigMap-style.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tonic::Code;
use zoomgate::proto;

use crate::support::*;

const SALES_BOT_OPS: &str = r#"operations = ["read", "list", "create", "update"]"#;

async fn may_delete(gw: &TestGateway) -> Option<bool> {
    gw.admin(AUDITOR_KEY)
        .await
        .explain(proto::ExplainRequest {
            caller: "sales-bot".into(),
            target: Some(proto::explain_request::Target::UserEmail(
                "alice@sales.acme.test".into(),
            )),
            operation: proto::Operation::Delete.into(),
            probe: false,
        })
        .await
        .unwrap()
        .into_inner()
        .allowed
}

async fn reloads(gw: &TestGateway, outcome: &str) -> Vec<proto::AuditRecord> {
    gw.admin(AUDITOR_KEY)
        .await
        .list_audit(proto::ListAuditRequest {
            operation: "config.reload".into(),
            outcome: outcome.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

async fn account_count(gw: &TestGateway) -> usize {
    gw.admin(AUDITOR_KEY)
        .await
        .list_accounts(proto::ListAccountsRequest {})
        .await
        .unwrap()
        .into_inner()
        .accounts
        .len()
}

#[tokio::test]
async fn grants_and_accounts_reload_without_a_restart_and_a_broken_file_changes_nothing() {
    // As permissive as the other capturing tests: a thread whose filter turns a callsite off can
    // leave tracing's per-callsite cache saying "off" for a test that runs beside it.
    let (captured, _guard) = Captured::start("zoomgate=trace");

    let mut gw = TestGateway::spawn_watching().await;
    let mut sales = gw.client(SALES_KEY).await;
    let first = sales
        .create_meeting(create_for("alice@sales.acme.test", "before"))
        .await
        .unwrap()
        .into_inner();
    let refused = sales.delete_meeting(delete(first.id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(may_delete(&gw).await, Some(false));

    // Requests keep flowing while the file changes under them, paced well inside Zoom's limits.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = tokio::spawn({
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        let mut client = gw.client(SALES_KEY).await;
        async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get_meeting(get(first.id)).await {
                    Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let granted = gw.config_text().replacen(
        SALES_BOT_OPS,
        r#"operations = ["read", "list", "create", "update", "delete"]"#,
        1,
    );
    gw.swap_config(&granted);
    eventually("the new grant", || async {
        may_delete(&gw).await == Some(true)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request in flight failed"
    );
    assert!(served.load(Ordering::Relaxed) > 0);
    // The load read this meeting: it goes only now that the load stopped.
    sales
        .delete_meeting(delete(first.id))
        .await
        .expect("allowed by the reloaded grant");
    let applied = reloads(&gw, "allowed").await;
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].caller, "config");
    assert_eq!(applied[0].detail, "callers changed: sales-bot");
    // The unchanged accounts kept their tokens.
    assert_eq!(gw.zoom.token_fetches(SALES_ZOOM_ID), 1);

    // A broken file: refused, logged with the field, the grant above stays in force.
    let broken = granted.replacen(r#""delete"]"#, r#""frobnicate"]"#, 1);
    gw.swap_config(&broken);
    eventually("the refusal", || async {
        reloads(&gw, "failed").await.len() == 1
    })
    .await;
    assert_eq!(may_delete(&gw).await, Some(true));
    let refusal = &reloads(&gw, "failed").await[0];
    assert!(
        refusal.detail.contains("callers[1].grants[0].operations"),
        "{refusal:?}"
    );
    let logs = captured.text();
    assert!(
        logs.contains("config reload refused") && logs.contains("callers[1].grants[0].operations"),
        "{logs}"
    );

    // Accounts reload too: a removed one is no longer served, one that comes back fetches its
    // own token, and the others keep theirs.
    let limited_table = granted
        .find("[[accounts]]\nname = \"acme-limited\"")
        .expect("the limited account's table");
    let limited_end = limited_table + granted[limited_table..].find("\n\n").unwrap();
    let without_limited = format!("{}{}", &granted[..limited_table], &granted[limited_end..]);
    gw.admin(PLATFORM_KEY)
        .await
        .put_route(proto::PutRouteRequest {
            user_email: "frank@partner.test".into(),
            account: "acme-limited".into(),
            force: true,
        })
        .await
        .unwrap();
    gw.swap_config(&without_limited);
    eventually("the account removal", || async {
        reloads(&gw, "allowed").await.len() == 2
    })
    .await;
    assert_eq!(
        reloads(&gw, "allowed").await[0].detail,
        "accounts removed: acme-limited; routing rules changed"
    );
    assert_eq!(account_count(&gw).await, 2);
    // The route to the removed account is no longer followed.
    let frank = gw
        .admin(AUDITOR_KEY)
        .await
        .explain(proto::ExplainRequest {
            caller: "admin".into(),
            target: Some(proto::explain_request::Target::UserEmail(
                "frank@partner.test".into(),
            )),
            operation: proto::Operation::Read.into(),
            probe: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(frank.source(), proto::explanation::Source::ProbeNeeded);
    assert_eq!(frank.probe_accounts, ["acme-sales", "acme-support"]);
    let report = gw
        .admin(PLATFORM_KEY)
        .await
        .sync_directory(proto::SyncDirectoryRequest {})
        .await
        .unwrap()
        .into_inner();
    let conflicts: Vec<(&str, &str)> = report
        .conflicts
        .iter()
        .map(|c| (c.kind.as_str(), c.user_email.as_str()))
        .collect();
    assert_eq!(
        conflicts,
        [("ROUTE_CONTRADICTS_ZOOM", "frank@partner.test")]
    );
    let mut admin = gw.client(ADMIN_KEY).await;
    gw.swap_config(&granted.replacen(r#"plan = "business""#, r#"plan = "pro""#, 1));
    eventually("the account's return", || async {
        reloads(&gw, "allowed").await.len() == 3
    })
    .await;
    assert_eq!(
        reloads(&gw, "allowed").await[0].detail,
        "accounts added: acme-limited; accounts changed: acme-support; routing rules changed"
    );
    assert_eq!(account_count(&gw).await, 3);
    // Served: the call reaches Zoom with the account's token, and Zoom answers for the app
    // (which may read meetings but not list them).
    let answer = admin
        .list_meetings(list_for("gina@limited.test"))
        .await
        .unwrap_err();
    assert_eq!(reason(&answer), "ZOOM_SCOPE_MISSING");
    assert_eq!(gw.zoom.token_fetches(LIMITED_ZOOM_ID), 1);
    assert_eq!(
        gw.zoom.token_fetches(SALES_ZOOM_ID),
        1,
        "sales kept its token"
    );
    gw.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_file_even_when_it_did_not_change() {
    let zoom =
        zoomgate::emulator::Emulator::start(emulator_config(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let config = crate::process::config_file(&zoom, "");
    let process = crate::process::GatewayProcess::start(&config);
    // Unchanged content is never reloaded by the watch; only the signal forces it.
    process.hang_up();
    eventually("the reload on SIGHUP", || async {
        !process.logs_containing("config reloaded").is_empty()
    })
    .await;
    let line = &process.logs_containing("config reloaded")[0];
    assert!(line.contains("nothing changed"), "{line}");
    drop(process);
    zoom.shutdown().await;
}
