//! `zoomgate demo`: a local Zoom emulator with two demo accounts and a gateway wired to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use secrecy::ExposeSecret;

use crate::config::{Config, ConfigError, RawConfig};
use crate::emulator::{Emulator, EmulatorConfig};

/// The emulator's demo accounts and users.
pub const EMULATOR_CONFIG: &str = include_str!("../config/emulator.toml");
/// The gateway's demo accounts, routing rules and callers.
pub const GATEWAY_CONFIG: &str = include_str!("../config/demo.toml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the gateway's gRPC listener.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Address of the gateway's ops HTTP listener (`/livez`, `/readyz`).
    #[arg(long, default_value = "127.0.0.1:9090")]
    ops_listen: SocketAddr,
    /// Address of the Zoom emulator.
    #[arg(long, default_value = "127.0.0.1:9900")]
    emulator_listen: SocketAddr,
    /// Where the gateway keeps its ledger and audit log.
    #[arg(long, default_value = "sqlite:zoomgate-demo.db")]
    store: String,
}

/// Builds the demo gateway config against a running emulator, listening on `listen` (gRPC)
/// and `ops_listen`; the demo secrets go through an environment map, as real secrets do.
pub fn gateway_config(
    emulator: &Emulator,
    emulator_config: &EmulatorConfig,
    (listen, ops_listen): (SocketAddr, SocketAddr),
    store: &str,
) -> Result<Config, ConfigError> {
    let mut raw: RawConfig =
        toml::from_str(GATEWAY_CONFIG).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    raw.listen_addr = listen.to_string();
    raw.ops_listen_addr = ops_listen.to_string();
    raw.zoom_api_url = emulator.api_url();
    raw.zoom_oauth_url = emulator.oauth_url();
    raw.store = store.to_owned();
    let mut env = HashMap::new();
    for account in &raw.accounts {
        let secret = emulator_config
            .accounts
            .iter()
            .find(|a| a.account_id == account.zoom_account_id)
            .map(|a| a.client_secret.expose_secret().to_owned());
        if let (Some(var), Some(secret)) = (&account.client_secret_env, secret) {
            env.insert(var.clone(), secret);
        }
    }
    raw.validate(&env, Path::new("."))
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> ExitCode {
    let emulator_config = match EmulatorConfig::from_toml(EMULATOR_CONFIG) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: demo emulator config: {error}");
            return ExitCode::FAILURE;
        }
    };
    let emulator = match Emulator::start(emulator_config.clone(), args.emulator_listen).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!(
                "error: cannot start the emulator on {}: {error}",
                args.emulator_listen
            );
            return ExitCode::FAILURE;
        }
    };
    let listeners = (args.listen, args.ops_listen);
    let config = match gateway_config(&emulator, &emulator_config, listeners, &args.store) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: demo gateway config: {error}");
            return ExitCode::FAILURE;
        }
    };
    let grace = config.shutdown_grace_period;
    let app = match crate::App::build(config).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    print_guide(&emulator, &app, &args.store);
    let served = app.run_until_signal(grace).await;
    emulator.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_guide(emulator: &Emulator, app: &crate::App, store: &str) {
    let addr = format!("http://{}", app.local_addr());
    println!(
        r#"zoomgate demo is running.
  gateway (gRPC):  {addr}
  ops (HTTP):      http://{ops}/livez, /readyz
  Zoom emulator:   {emulator_url}
  store:           {store}

Two Zoom accounts: acme-sales (alice@, bob@sales.acme.test) and acme-support (carol@, dave@support.acme.test).
Four callers, each with an API key:
  scheduler          demo-scheduler-key   everything, start links and passcodes included
  sales-bot          demo-sales-key       sales users only; read, list, create, update
  support-dashboard  demo-support-key     read and list carol@support.acme.test only
  platform           demo-platform-key    the Admin API: routes, explain, sync, audit

In another terminal (`cargo run --` in place of `zoomgate` from a checkout):
  export ZOOMGATE_ADDR={addr}
  zoomgate meetings --api-key demo-sales-key create --user alice@sales.acme.test --topic "Pipeline review" --start-time 2030-01-02T15:00:00Z --duration 30
  zoomgate meetings --api-key demo-sales-key list --user alice@sales.acme.test
  zoomgate meetings --api-key demo-sales-key create --user carol@support.acme.test --topic "Not mine"     # NotFound: outside its grants
  zoomgate meetings --api-key demo-scheduler-key get <meeting id>                                          # shows start_url and passcode
  zoomgate meetings --api-key demo-sales-key delete <meeting id>                                           # PermissionDenied: no delete grant
  zoomgate audit --store {store}
  zoomgate admin --api-key demo-platform-key explain --caller sales-bot --user carol@support.acme.test --op create
  zoomgate admin --api-key demo-platform-key sync

Ctrl-C stops both."#,
        emulator_url = emulator.base_url(),
        ops = app.ops_addr(),
    );
}
