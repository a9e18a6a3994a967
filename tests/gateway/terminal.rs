//! Nothing an attacker writes reaches an operator's terminal raw: such emails are refused, and
//! the CLI escapes control and bidi characters in whatever it prints (issue 7, finding A).

use std::process::{Command, Output};

use tonic::Code;
use zoomgate::store::{AuditFilter, AuditRecord, Outcome};

use crate::support::*;

/// ESC + CSI (clear screen), OSC (set window title, BEL-terminated), NUL, DEL, a C1 control,
/// RLO (U+202E) and a zero-width space.
const EVIL: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\0\u{7f}\u{9b}\u{202e}txt.exe\u{200b}";

fn zoomgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zoomgate"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("the binary runs")
}

/// Asserts that `bytes` hold no byte below 0x20 except `\n` and `\t`, no DEL, and no C1,
/// format (Cf) or line/paragraph separator character.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        assert!(
            (b >= 0x20 || b == b'\n' || b == b'\t') && b != 0x7f,
            "{what}: raw byte {b:#04x} at {i}: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let text = std::str::from_utf8(bytes).expect("output is UTF-8");
    let unsafe_char = text.chars().find(|&c| {
        c != '\n'
            && c != '\t'
            && (zoomgate::routing::is_control_or_format(c) || matches!(c, '\u{2028}' | '\u{2029}'))
    });
    assert_eq!(unsafe_char, None, "{what}: {text:?}");
}

#[tokio::test]
async fn audit_prints_records_with_escapes_never_raw() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("audit.db").display());
    let store = zoomgate::store::open(&location, None).await.unwrap();
    store
        .append_audit(&AuditRecord {
            id: 0,
            at: chrono::Utc::now(),
            caller: format!("caller{EVIL}"),
            operation: format!("meetings.read{EVIL}"),
            account: Some(format!("acme{EVIL}")),
            user: Some(format!("mallory{EVIL}@sales.acme.test")),
            meeting_id: Some(42),
            outcome: Outcome::Denied,
            detail: Some(format!(
                "detail{EVIL}\n\u{1b}]8;;https://evil.test\u{7}link"
            )),
        })
        .await
        .unwrap();
    store.close().await;

    let table = zoomgate(&["audit", "--store", &location]);
    assert!(table.status.success(), "{table:?}");
    assert_terminal_safe("audit", &table.stdout);
    assert_terminal_safe("audit stderr", &table.stderr);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains(r"mallory\u{1b}[2J\u{1b}]0;pwned\u{7}\u{0}\u{7f}\u{9b}\u{202e}txt.exe"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        1,
        "a newline in a field stays on the record's line"
    );

    let json = zoomgate(&["audit", "--store", &location, "--json"]);
    assert!(json.status.success(), "{json:?}");
    assert_terminal_safe("audit --json", &json.stdout);
    let record: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        record["user"].as_str(),
        Some(format!("mallory{EVIL}@sales.acme.test").as_str()),
        "the JSON still means the same string"
    );
}

#[tokio::test]
async fn emails_with_control_or_format_characters_are_invalid_and_not_audited() {
    let gateway = TestGateway::spawn().await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    for email in [
        "mallory\u{1b}]0;pwned\u{7}@sales.acme.test",
        "mallory\u{1b}[2J@partner.test",
        "mall\0ory@sales.acme.test",
        "moc.\u{202e}alice@sales.acme.test",
        "al\u{200b}ice@sales.acme.test",
    ] {
        let status = admin
            .create_meeting(create_for(email, "x"))
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{email:?}: {status:?}"
        );
        assert_eq!(violated_fields(&status), ["user_email"], "{email:?}");
        assert!(
            !status
                .message()
                .chars()
                .any(zoomgate::routing::is_control_or_format),
            "{status:?}"
        );
        let status = admin
            .list_meetings(list_for(email))
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{email:?}: {status:?}"
        );
        assert_eq!(violated_fields(&status), ["user_email"], "{email:?}");
    }
    let records = gateway.store.audit(&AuditFilter::default()).await.unwrap();
    assert!(
        records.iter().all(|r| r
            .user
            .as_deref()
            .is_none_or(|u| !u.chars().any(zoomgate::routing::is_control_or_format))),
        "{records:?}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_from_the_server_are_printed_with_escapes() {
    let gateway = TestGateway::spawn().await;
    // Created behind the gateway's back, as anyone with access to the Zoom account could.
    let id = gateway
        .create_in_sales_zoom("alice@sales.acme.test", &format!("topic{EVIL}"))
        .await;
    let addr = format!("http://{}", gateway.addr);

    let outputs = tokio::task::spawn_blocking(move || {
        let base = ["meetings", "--addr", addr.as_str(), "--api-key", ADMIN_KEY];
        let id = id.to_string();
        [
            ["get", id.as_str(), "", ""],
            ["list", "--user", "alice@sales.acme.test", ""],
            ["get", id.as_str(), "--json", ""],
        ]
        .map(|args| {
            let args: Vec<&str> = base
                .iter()
                .copied()
                .chain(args.into_iter().filter(|a| !a.is_empty()))
                .collect();
            zoomgate(&args)
        })
    })
    .await
    .unwrap();

    for (i, output) in outputs.iter().enumerate() {
        assert!(output.status.success(), "{i}: {output:?}");
        assert_terminal_safe("meetings stdout", &output.stdout);
        assert_terminal_safe("meetings stderr", &output.stderr);
    }
    let get = String::from_utf8_lossy(&outputs[0].stdout);
    assert!(get.contains(r"topic\u{1b}[2J"), "{get}");
    let list = String::from_utf8_lossy(&outputs[1].stdout);
    assert!(list.contains(r"\u{202e}txt.exe"), "{list}");
    let json: serde_json::Value = serde_json::from_slice(&outputs[2].stdout).unwrap();
    assert_eq!(
        json["topic"].as_str(),
        Some(format!("topic{EVIL}").as_str())
    );
    gateway.stop().await;
}

#[test]
fn check_config_prints_config_values_with_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let hash = zoomgate::policy::hash_api_key("k");
    std::fs::write(
        &path,
        format!(
            r#"
store = "sqlite::memory:"

[[accounts]]
name = "sales"
zoom_account_id = "Z\u001b]0;pwned\u0007\u202e1"
client_id = "c\u0000id"
client_secret_env = "ZOOMGATE_TERMINAL_TEST_SECRET"

[[callers]]
name = "app"
api_key_sha256 = ["{hash}"]
  [[callers.grants]]
  accounts = ["*"]
  users = ["*"]
  operations = ["read"]
"#
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_zoomgate"))
        .args(["check-config", path.to_str().unwrap()])
        .env("ZOOMGATE_TERMINAL_TEST_SECRET", "s3cret")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_terminal_safe("check-config", &output.stdout);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(r"zoom account Z\u{1b}]0;pwned\u{7}\u{202e}1"),
        "{stdout}"
    );
}
