//! `zoomgate admin ...` against a running gateway, and `zoomgate explain --config` with none.

use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

fn zoomgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zoomgate"))
}

/// Runs the binary with `args`, without any secret in its environment.
fn run(args: &[&str]) -> Output {
    let mut command = zoomgate();
    for (name, _) in secrets_env() {
        command.env_remove(name);
    }
    command
        .env_remove("ZOOMGATE_API_KEY")
        .args(args)
        .output()
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{} {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn admin_args<'a>(addr: &'a str, key: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["admin", "--addr", addr, "--api-key", key, "--json"];
    args.extend_from_slice(rest);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_explain_answers_as_the_gateway_does_from_the_same_file() {
    let gw = TestGateway::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("candidate.toml");
    std::fs::write(&file, gw.config_text()).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let addr = format!("http://{}", gw.addr);
    let questions: [&[&str]; 5] = [
        &[
            "--caller",
            "sales-bot",
            "--user",
            "alice@sales.acme.test",
            "--op",
            "create",
        ],
        &[
            "--caller",
            "support-reader",
            "--user",
            "alice@sales.acme.test",
            "--op",
            "read",
        ],
        &[
            "--caller",
            "sales-bot",
            "--user",
            "alice@sales.acme.test",
            "--op",
            "delete",
        ],
        &[
            "--caller",
            "admin",
            "--user",
            "frank@partner.test",
            "--op",
            "read",
        ],
        &[
            "--caller",
            "sales-bot",
            "--meeting-id",
            "81234567890",
            "--op",
            "read",
        ],
    ];
    for question in questions {
        let mut offline = vec!["explain", "--config", &file, "--json"];
        offline.extend_from_slice(question);
        let mut online = vec!["explain"];
        online.extend_from_slice(question);
        let offline = json_of(&tokio::task::block_in_place(|| run(&offline)));
        let online = json_of(&tokio::task::block_in_place(|| {
            run(&admin_args(&addr, AUDITOR_KEY, &online))
        }));
        assert_eq!(offline, online, "{question:?}");
    }

    // A grant change reviewed before it is rolled out: sales-bot may delete in the candidate.
    let candidate = gw.config_text().replacen(
        r#"operations = ["read", "list", "create", "update"]"#,
        r#"operations = ["read", "list", "create", "update", "delete"]"#,
        1,
    );
    let changed = dir.path().join("changed.toml");
    std::fs::write(&changed, candidate).unwrap();
    let answer = json_of(&run(&[
        "explain",
        "--config",
        changed.to_str().unwrap(),
        "--json",
        "--caller",
        "sales-bot",
        "--user",
        "alice@sales.acme.test",
        "--op",
        "delete",
    ]));
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["grant"], "callers[1].grants[0]");

    let text = run(&[
        "explain",
        "--config",
        &file,
        "--caller",
        "sales-bot",
        "--user",
        "alice@sales.acme.test",
        "--op",
        "create",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("config rule accounts[0].domains[0]")
            && text.contains("allowed by callers[1].grants[0]"),
        "{text}"
    );
    let unknown = run(&[
        "explain", "--config", &file, "--caller", "nobody", "--user", "a@b.test", "--op", "read",
    ]);
    assert_eq!(unknown.status.code(), Some(64));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_changes_routes_and_exits_with_the_right_codes() {
    let gw = TestGateway::spawn().await;
    let addr = format!("http://{}", gw.addr);
    let put = tokio::task::block_in_place(|| {
        run(&admin_args(
            &addr,
            PLATFORM_KEY,
            &["routes", "put", "frank@partner.test", "acme-support"],
        ))
    });
    let put = json_of(&put);
    assert_eq!(put["routes"][0]["account"], "acme-support");
    assert_eq!(put["routes"][0]["set_by"], "platform");

    let listed = tokio::task::block_in_place(|| {
        run(&[
            "admin",
            "--addr",
            &addr,
            "--api-key",
            AUDITOR_KEY,
            "routes",
            "list",
        ])
    });
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success());
    assert!(
        table.contains("frank@partner.test") && table.contains("acme-support"),
        "{table}"
    );

    let accounts =
        tokio::task::block_in_place(|| run(&admin_args(&addr, AUDITOR_KEY, &["accounts"])));
    let shown = String::from_utf8_lossy(&accounts.stdout).into_owned();
    assert_eq!(json_of(&accounts).as_array().map(Vec::len), Some(3));
    for secret in [SALES_SECRET, SUPPORT_SECRET, LIMITED_SECRET, AUDITOR_KEY] {
        assert!(!shown.contains(secret));
    }

    // Refused by the server: exit 1 with the reason.
    let refused = tokio::task::block_in_place(|| {
        run(&admin_args(
            &addr,
            AUDITOR_KEY,
            &["routes", "delete", "frank@partner.test"],
        ))
    });
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ADMIN_ROLE_REQUIRED"));
    // Bad usage: exit 64.
    let usage = run(&["admin", "routes", "rename"]);
    assert_eq!(usage.status.code(), Some(64));
    let usage = run(&["explain", "--caller", "x", "--op", "read"]);
    assert_eq!(usage.status.code(), Some(64));

    let audit = tokio::task::block_in_place(|| {
        run(&admin_args(
            &addr,
            AUDITOR_KEY,
            &["audit", "--operation", "admin.put_route"],
        ))
    });
    let audit = json_of(&audit);
    assert_eq!(audit["records"][0]["caller"], "platform");
    assert_eq!(audit["records"][0]["user"], "frank@partner.test");
    gw.stop().await;
}
