//! The gateway as a child process of the test (`zoomgate serve`), for what an in-process server
//! cannot show: SIGKILL, descriptor limits, the memory of the process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zoomgate::emulator::Emulator;

use crate::support::{gateway_toml, secrets_env};

/// A running `zoomgate serve`, killed when dropped.
pub struct GatewayProcess {
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    child: Child,
    /// Every log line so far (JSON).
    logs: Arc<Mutex<Vec<String>>>,
}

impl GatewayProcess {
    /// Starts `zoomgate serve --config config` and waits until it listens.
    pub fn start(config: &Path) -> GatewayProcess {
        Self::start_with(config, "")
    }

    /// Starts it through `sh -c "<prefix> exec zoomgate ..."`, e.g. with `ulimit -n 256;`.
    pub fn start_with(config: &Path, shell_prefix: &str) -> GatewayProcess {
        let bin = env!("CARGO_BIN_EXE_zoomgate");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{shell_prefix} exec \"$0\" --log-format json serve --config \"$1\""
            ))
            .arg(bin)
            .arg(config)
            .envs(secrets_env())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("zoomgate starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let lines = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                    && log["fields"]["message"] == "zoomgate listening"
                    && let (Some(addr), Some(ops)) = (
                        log["fields"]["addr"].as_str(),
                        log["fields"]["ops_addr"].as_str(),
                    )
                {
                    let parse = |a: &str| a.parse::<SocketAddr>().expect("address");
                    let _ = addr_tx.send((parse(addr), parse(ops)));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let (addr, ops_addr) = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("zoomgate did not start: {:?}", logs.lock().unwrap()));
        GatewayProcess {
            addr,
            ops_addr,
            child,
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as Kubernetes does, and waits up to `within` for the process to exit;
    /// returns its exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGHUP: reload the config.
    pub fn hang_up(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-HUP", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -HUP {pid}");
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The log lines so far that contain `text`.
    pub fn logs_containing(&self, text: &str) -> Vec<String> {
        let logs = self.logs.lock().unwrap();
        logs.iter().filter(|l| l.contains(text)).cloned().collect()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A config file for a gateway process against `zoom`, with `extra` appended.
pub fn config_file(zoom: &Emulator, extra: &str) -> tempfile::TempPath {
    let path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let store = format!("sqlite:{}.db", path.display());
    std::fs::write(&path, gateway_toml(zoom, &store) + extra).unwrap();
    path
}
