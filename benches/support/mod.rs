//! What the benches share: a gateway serving a config, its client, and running calls at a
//! concurrency and reading their latencies. Each bench uses what it needs of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use zoomgate::proto::meetings_client::MeetingsClient;

/// Latencies of one run, sorted.
pub struct Run {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Run {
    pub fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `total` calls of `call` with `concurrency` workers and records each latency.
pub async fn measure<F, Fut>(concurrency: usize, total: usize, call: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let per_worker = total / concurrency;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_worker);
                for i in 0..per_worker {
                    let start = Instant::now();
                    call(worker * per_worker + i).await;
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for worker in workers {
        latencies.extend(worker.await.expect("worker finishes"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Run { latencies, elapsed }
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The one caller of a bench, allowed everything with API key `key`: a config's `[[callers]]`.
pub fn bench_caller(key: &str) -> String {
    format!(
        r#"
[[callers]]
name = "bench"
api_key_sha256 = ["{hash}"]
  [[callers.grants]]
  accounts = ["*"]
  users = ["*"]
  operations = ["*"]
"#,
        hash = zoomgate::policy::hash_api_key(key),
    )
}

/// Builds the gateway of config text `toml`, with `env` as the environment its secrets are read
/// from.
pub async fn build(toml: &str, env: &[(&str, &str)]) -> zoomgate::App {
    let raw: zoomgate::config::RawConfig = toml::from_str(toml).expect("bench config parses");
    let env = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let config = raw
        .validate(&env, std::path::Path::new("."))
        .expect("bench config is valid");
    zoomgate::App::build(config).await.expect("gateway builds")
}

/// A gateway serving in a task of its own until [`Served::stop`].
pub struct Served {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), zoomgate::app::AppError>>,
}

impl Served {
    pub fn start(app: zoomgate::App) -> Served {
        let addr = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        Served { addr, stop, server }
    }

    /// A Meetings client of the gateway that sends API key `key`.
    pub async fn client(&self, key: &str) -> Client {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        MeetingsClient::with_interceptor(channel, Key(format!("Bearer {key}").parse().unwrap()))
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }
}

pub type Client = MeetingsClient<InterceptedService<Channel, Key>>;

/// Adds the bench caller's API key to every call.
#[derive(Clone)]
pub struct Key(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Key {
    fn call(&mut self, mut request: tonic::Request<()>) -> tonic::Result<tonic::Request<()>> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}
