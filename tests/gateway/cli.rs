//! The `zoomgate` binary: check-config and hash-key as an operator uses them.

use std::process::Command;

fn zoomgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zoomgate"))
}

#[test]
fn check_config_names_the_missing_secret_and_accepts_a_good_file() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml");
    let output = zoomgate()
        .args(["check-config", demo])
        .env_remove("ZOOMGATE_DEMO_SALES_SECRET")
        .env_remove("ZOOMGATE_DEMO_SUPPORT_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("accounts[0].client_secret_env: ZOOMGATE_DEMO_SALES_SECRET is not set"),
        "{stderr}"
    );

    let output = zoomgate()
        .args(["check-config", demo])
        .env("ZOOMGATE_DEMO_SALES_SECRET", "a-secret-value")
        .env("ZOOMGATE_DEMO_SUPPORT_SECRET", "another-secret-value")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("account acme-sales") && stdout.contains("caller sales-bot"),
        "{stdout}"
    );
    assert!(!stdout.contains("a-secret-value"));
}

#[test]
fn hash_key_prints_the_sha256() {
    let output = zoomgate()
        .args(["hash-key", "demo-sales-key"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "2e31555da0419daf4f3c32fc0f82de1ae01b8e6160702ca85ae3a21c69f4366d"
    );
}
