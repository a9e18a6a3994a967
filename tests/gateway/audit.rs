//! The audit log records every mutating call and every denial, and `zoomgate audit` reads it.

use zoomgate::proto;
use zoomgate::store::{AuditFilter, Outcome};

use crate::support::*;

#[tokio::test]
async fn audit_records_match_the_calls_made() {
    let gateway = TestGateway::spawn().await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    let mut bot = gateway.client(SALES_KEY).await;

    let alice = admin
        .create_meeting(create_for("alice@sales.acme.test", "a"))
        .await
        .unwrap()
        .into_inner();
    let carol = admin
        .create_meeting(create_for("carol@support.acme.test", "c"))
        .await
        .unwrap()
        .into_inner();
    admin.get_meeting(get(alice.id)).await.unwrap(); // an allowed read is not audited
    bot.get_meeting(get(carol.id)).await.unwrap_err(); // denied read
    bot.delete_meeting(proto::DeleteMeetingRequest {
        meeting_id: alice.id,
        occurrence_id: String::new(),
    })
    .await
    .unwrap_err(); // denied delete
    admin
        .update_meeting(proto::UpdateMeetingRequest {
            meeting_id: alice.id,
            meeting: Some(proto::Meeting {
                agenda: "updated".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["agenda".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .create_meeting(create_for("nobody@sales.acme.test", "n"))
        .await
        .unwrap_err(); // failed
    admin
        .delete_meeting(proto::DeleteMeetingRequest {
            meeting_id: carol.id,
            occurrence_id: String::new(),
        })
        .await
        .unwrap();

    let mut records = gateway.store.audit(&AuditFilter::default()).await.unwrap();
    records.reverse();
    let seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.caller.as_str(),
                r.operation.as_str(),
                r.account.as_deref(),
                r.user.as_deref(),
                r.meeting_id,
                r.outcome,
            )
        })
        .collect();
    let (sales, support) = (Some("acme-sales"), Some("acme-support"));
    assert_eq!(
        seen,
        vec![
            (
                "admin",
                "meetings.create",
                sales,
                Some("alice@sales.acme.test"),
                Some(alice.id),
                Outcome::Allowed
            ),
            (
                "admin",
                "meetings.create",
                support,
                Some("carol@support.acme.test"),
                Some(carol.id),
                Outcome::Allowed
            ),
            (
                "sales-bot",
                "meetings.read",
                support,
                Some("carol@support.acme.test"),
                Some(carol.id),
                Outcome::Denied
            ),
            (
                "sales-bot",
                "meetings.delete",
                sales,
                Some("alice@sales.acme.test"),
                Some(alice.id),
                Outcome::Denied
            ),
            (
                "admin",
                "meetings.update",
                sales,
                Some("alice@sales.acme.test"),
                Some(alice.id),
                Outcome::Allowed
            ),
            (
                "admin",
                "meetings.create",
                sales,
                Some("nobody@sales.acme.test"),
                None,
                Outcome::Failed
            ),
            (
                "admin",
                "meetings.delete",
                support,
                Some("carol@support.acme.test"),
                Some(carol.id),
                Outcome::Allowed
            ),
        ]
    );

    // The CLI reads the same records, with filters.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_zoomgate"))
        .args([
            "audit",
            "--store",
            &gateway.store_location,
            "--caller",
            "sales-bot",
            "--json",
        ])
        .output()
        .expect("zoomgate audit runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| l["caller"] == "sales-bot" && l["outcome"] == "denied")
    );
    assert_eq!(lines[0]["operation"], "meetings.delete");

    gateway.stop().await;
}
