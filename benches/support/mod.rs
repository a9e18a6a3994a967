//! What the benches share: running calls at a concurrency and reading their latencies.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
