//! The config is checked for what `serve` will do (issue 7, finding B): `check-config` and start-up
//! refuse the same files with the same field, nothing in a file panics or hangs the gateway, and
//! no error echoes a secret.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use zoomgate::config::Config;
use zoomgate::emulator::Emulator;
use zoomgate::proto::meetings_client::MeetingsClient;

use crate::support::*;

// === the binary ===

fn zoomgate(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zoomgate"));
    command.args(args).env("RUST_LOG", "off");
    for (var, secret) in secrets_env() {
        command.env(var, secret);
    }
    command
}

/// Runs `serve`, which must exit on its own within a few seconds (a bad config exits 64
/// before binding); a server still running then is killed and fails the test.
fn serve(config: &Path) -> Output {
    let mut child = zoomgate(&["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("serve --config {} did not exit", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn check_config(config: &Path) -> Output {
    zoomgate(&["check-config", config.to_str().unwrap()])
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A valid gateway config without an emulator behind it (nothing here gets to call Zoom).
fn base_toml() -> String {
    let hash = zoomgate::policy::hash_api_key(ADMIN_KEY);
    format!(
        r#"
listen_addr = "127.0.0.1:0"
ops_listen_addr = "127.0.0.1:0"
store = "sqlite::memory:"

[[accounts]]
name = "acme-sales"
zoom_account_id = "{SALES_ZOOM_ID}"
client_id = "sales-client"
client_secret_env = "SALES_SECRET"

[[callers]]
name = "admin"
api_key_sha256 = ["{hash}"]
  [[callers.grants]]
  accounts = ["*"]
  users = ["*"]
  operations = ["*"]
"#
    )
}

/// A self-signed certificate and its key, as PEM.
fn certificate() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

#[test]
fn check_config_and_serve_refuse_the_same_files_naming_the_same_field() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let (cert, key) = certificate();
    let (_, other_key) = certificate();
    std::fs::write(at("cert.pem"), &cert).unwrap();
    std::fs::write(at("key.pem"), &key).unwrap();
    std::fs::write(at("other.key"), &other_key).unwrap();
    std::fs::write(
        at("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::create_dir(at("a-dir")).unwrap();
    let tls = |cert: &str, key: &str| {
        format!("[tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\n[[accounts]]")
    };
    let top = |line: &str| base_toml().replace("store = \"sqlite::memory:\"\n", line);
    let account = |line: &str| base_toml().replace("client_secret_env = \"SALES_SECRET\"", line);

    let cases: Vec<(&str, String)> = vec![
        (
            "routing.user_cache_ttl_secs",
            format!(
                "{}\n[routing]\nuser_cache_ttl_secs = 9223372036854775807\n",
                base_toml()
            ),
        ),
        (
            "request_timeout_secs",
            top("store = \"sqlite::memory:\"\nrequest_timeout_secs = 18446744073709551615\n"),
        ),
        ("store", top("store = \"sqlite:/dev/zero\"\n")),
        ("store", top("store = \"sqlite:missing/zoomgate.db\"\n")),
        ("store", top("store = \"sqlite:a-dir\"\n")),
        (
            "zoom_api_url",
            top("store = \"sqlite::memory:\"\nzoom_api_url = \"http:///v2\"\n"),
        ),
        (
            "accounts[0].client_secret_file",
            account("client_secret_file = \"/dev/zero\""),
        ),
        (
            "tls.cert_file",
            base_toml().replacen("[[accounts]]", &tls("garbage.pem", "key.pem"), 1),
        ),
        (
            "tls.cert_file",
            base_toml().replacen("[[accounts]]", &tls("/dev/zero", "key.pem"), 1),
        ),
        (
            "tls.key_file",
            base_toml().replacen("[[accounts]]", &tls("cert.pem", "other.key"), 1),
        ),
        (
            "tls.key_file",
            base_toml().replacen("[[accounts]]", &tls("cert.pem", "garbage.pem"), 1),
        ),
    ];
    for (i, (field, toml)) in cases.iter().enumerate() {
        let path = at(&format!("case{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        for (command, output) in [
            ("check-config", check_config(&path)),
            ("serve", serve(&path)),
        ] {
            assert_eq!(
                output.status.code(),
                Some(64),
                "{command} case {i}: {}",
                text(&output)
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains(&format!(": {field}: ")),
                "{command} case {i} names {field}: {stderr}"
            );
        }
    }
    // The config file itself.
    for output in [
        check_config(Path::new("/dev/zero")),
        serve(Path::new("/dev/zero")),
    ] {
        assert_eq!(output.status.code(), Some(64), "{}", text(&output));
        assert!(
            text(&output).contains("not a regular file"),
            "{}",
            text(&output)
        );
    }

    // And a good config with TLS passes.
    let good = at("good.toml");
    std::fs::write(
        &good,
        base_toml().replacen("[[accounts]]", &tls("cert.pem", "key.pem"), 1),
    )
    .unwrap();
    let output = check_config(&good);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("tls: on"), "{}", text(&output));
}

#[test]
fn check_config_never_echoes_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        base_toml().replace(
            "client_secret_env = \"SALES_SECRET\"",
            "client_secret = \"hunter2-inline\"",
        ),
        base_toml().replace(
            "store = \"sqlite::memory:\"",
            "store = \"postgres://zoomgate:hunter2@db.internal/zoomgate\"",
        ),
        base_toml().replace(
            "store = \"sqlite::memory:\"",
            "zoom_oauth_url = \"https://client:hunter2@zoom.us/oauth/token\"",
        ),
        base_toml().replace(
            &format!("[\"{}\"]", zoomgate::policy::hash_api_key(ADMIN_KEY)),
            "\"hunter2-raw-api-key\"",
        ),
    ];
    for (i, toml) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        for output in [check_config(&path), serve(&path)] {
            assert_eq!(
                output.status.code(),
                Some(64),
                "case {i}: {}",
                text(&output)
            );
            assert!(
                !text(&output).contains("hunter2"),
                "case {i}: {}",
                text(&output)
            );
        }
    }
    // The TOML error points at the line instead of quoting it.
    let line = cases[0]
        .lines()
        .position(|l| l.starts_with("client_secret ="))
        .unwrap()
        + 1;
    let output = check_config(&dir.path().join("case0.toml"));
    assert!(
        text(&output).contains("unknown field `client_secret`")
            && text(&output).contains(&format!("(line {line}, column 1)")),
        "{}",
        text(&output)
    );
}

// === every numeric field, against the real gateway ===

/// Every numeric key of the file: (table, key, largest accepted value).
const NUMERIC_FIELDS: [(&str, &str, u64); 20] = [
    ("", "request_timeout_secs", 3_600),
    ("", "zoom_timeout_secs", 3_600),
    ("", "shutdown_grace_period_secs", 3_600),
    ("token", "refresh_margin_secs", 86_400),
    ("token", "failure_cooldown_secs", 86_400),
    ("token", "max_cooldown_secs", 86_400),
    ("routing", "user_cache_ttl_secs", 2_592_000),
    ("routing", "negative_cache_ttl_secs", 2_592_000),
    ("routing", "directory_sync_interval_secs", 604_800),
    ("limits", "max_connections", 1_000_000),
    ("limits", "handshake_timeout_secs", 300),
    ("limits", "idle_timeout_secs", 86_400),
    ("limits", "keepalive_interval_secs", 3_600),
    ("limits", "keepalive_timeout_secs", 300),
    ("limits", "write_stall_timeout_secs", 300),
    ("limits", "max_concurrent_streams", 10_000),
    ("limits", "connection_window_bytes", (1 << 31) - 1),
    ("limits", "stream_window_bytes", (1 << 31) - 1),
    ("limits", "max_message_bytes", 64 << 20),
    ("limits", "max_requests_in_flight_per_caller", 100_000),
];

/// The test gateway config (in-memory store) with `settings` as `(table, key, value)`.
fn with_settings(zoom: &Emulator, settings: &[(&str, &str, u64)]) -> String {
    let mut text = gateway_toml(zoom, "sqlite::memory:");
    let mut tables: BTreeMap<&str, String> = BTreeMap::new();
    for &(table, key, value) in settings {
        if table.is_empty() {
            let line = format!("{key} = {value}\n");
            match text.find(&format!("\n{key} = ")) {
                Some(start) => {
                    let end = start + 1 + text[start + 1..].find('\n').unwrap() + 1;
                    text.replace_range(start + 1..end, &line);
                }
                None => text = text.replacen("[[accounts]]", &format!("{line}\n[[accounts]]"), 1),
            }
        } else {
            tables
                .entry(table)
                .or_default()
                .push_str(&format!("{key} = {value}\n"));
        }
    }
    for (table, keys) in tables {
        text.push_str(&format!("\n[{table}]\n{keys}"));
    }
    text
}

/// Loads `text`; if it is valid, builds the real gateway on port 0 and serves two ListMeetings
/// for a user no rule routes (found by probing the accounts, then from the directory).
async fn load_and_serve(text: &str) -> Result<(), String> {
    let config = Config::from_toml(text, &secrets_env(), Path::new("."))
        .map_err(|e| format!("refused: {e}"))?;
    let app = zoomgate::App::build(config)
        .await
        .unwrap_or_else(|e| panic!("a valid config does not build: {e}"));
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("the gateway accepts connections");
    let auth = format!("Bearer {ADMIN_KEY}").parse().unwrap();
    let mut client = MeetingsClient::with_interceptor(channel, ApiKey::new(Some(auth)));
    for _ in 0..2 {
        client
            .list_meetings(list_for("erin@partner.test"))
            .await
            .unwrap_or_else(|status| panic!("a valid config serves: {status:?}"));
    }
    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("the gateway stops cleanly");
    Ok(())
}

fn numeric_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=10u64,
        prop::sample::select(vec![
            60,
            300,
            301,
            1_024,
            3_600,
            3_601,
            65_535,
            86_400,
            86_401,
            2_592_000,
            2_592_001,
            (1 << 31) - 1,
            1 << 31,
            u32::MAX as u64 + 1,
            i64::MAX as u64,
            u64::MAX,
        ]),
        any::<u64>(),
    ]
}

#[test]
fn any_number_in_any_field_is_named_or_serves() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Some 40 gateways each fetch tokens and probe: Zoom's rate limits are not under test.
    let mut emulator = emulator_config();
    emulator.enforce_rate_limits = false;
    let zoom = runtime.block_on(async {
        Emulator::start(emulator, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("emulator starts")
    });

    // The largest value of every field serves (the first cooldown may reach the longest).
    for (table, key, max) in NUMERIC_FIELDS {
        let mut settings = vec![(table, key, max)];
        if key == "failure_cooldown_secs" {
            settings.push(("token", "max_cooldown_secs", max));
        }
        let text = with_settings(&zoom, &settings);
        runtime
            .block_on(load_and_serve(&text))
            .unwrap_or_else(|e| panic!("{table}.{key} = {max}: {e}"));
    }

    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(index in 0..NUMERIC_FIELDS.len(), value in numeric_value())| {
        let (table, key, _) = NUMERIC_FIELDS[index];
        let field = if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") };
        let text = with_settings(&zoom, &[(table, key, value)]);
        if let Err(error) = runtime.block_on(load_and_serve(&text)) {
            prop_assert!(error.contains(&field), "{field} = {value}: {error}");
        }
    });
    runtime.block_on(zoom.shutdown());
}

#[test]
fn other_commands_read_bounded_input_too() {
    // `emulator --config /dev/zero` is refused like the gateway's config.
    let mut child = zoomgate(&["emulator", "--config", "/dev/zero"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("emulator --config /dev/zero did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        text(&output).contains("not a regular file"),
        "{}",
        text(&output)
    );

    // `hash-key` reads one bounded line from stdin, not until memory runs out.
    let output = zoomgate(&["hash-key"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(text(&output).contains("longer than"), "{}", text(&output));
}

/// The configs the Kubernetes manifests ship are ones the gateway takes, secrets aside (their
/// files exist only in a pod).
#[test]
fn the_kubernetes_configs_are_valid() {
    for file in ["base/gateway.toml", "overlays/replicas/gateway.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/kubernetes")
            .join(file);
        let config = Config::load_for_review(&path).expect(file);
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(config.ops_listen_addr.to_string(), "0.0.0.0:9090");
        // Below the Deployment's terminationGracePeriodSeconds (35).
        assert!(config.shutdown_grace_period < Duration::from_secs(35));
    }
}
