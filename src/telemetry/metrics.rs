//! The gateway's Prometheus series, one registry per gateway, served on the ops listener at
//! `/metrics` in the OpenMetrics text format.
//!
//! Labels are bounded: operations, endpoints, categories, codes and outcomes are fixed sets, and
//! accounts appear only as the config names them. No user, meeting or request id is ever a
//! label. Counters are bumped on the request path; the per-account gauges (budget, circuit,
//! token) are read from the live state when Prometheus scrapes.

use std::collections::HashSet;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::admin::AccountView;
use crate::quota::CircuitState;

/// The content type of [`Metrics::encode`]'s text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of [`classic_text`]'s.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    account: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoomCallLabels {
    account: String,
    endpoint: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    account: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    account: String,
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    account: String,
    category: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CircuitLabels {
    account: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Latency buckets from 0.5 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every series of one gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histograms<OperationLabels>,
    unauthenticated: Counter,
    zoom_calls: Family<ZoomCallLabels, Counter>,
    zoom_call_duration: Histograms<EndpointLabels>,
    token_fetches: Family<ResultLabels, Counter>,
    token_fetch_duration: Histograms<AccountLabels>,
    token_valid: Family<AccountLabels, Gauge>,
    quota_wait: Histograms<CategoryLabels>,
    quota_refusals: Family<RefusalLabels, Counter>,
    quota_waiting: Family<AccountLabels, Gauge>,
    budget_per_second: Family<CategoryLabels, FloatGauge>,
    budget_daily_left: Family<CategoryLabels, Gauge>,
    budget_paused: Family<CategoryLabels, FloatGauge>,
    circuit: Family<CircuitLabels, Gauge>,
    store_errors: Family<StoreLabels, Counter>,
    store_duration: Histograms<StoreLabels>,
    reloads: Family<ReloadLabels, Counter>,
    /// Held while the per-account gauges are set and encoded.
    scraping: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("zoomgate");
        let requests = Family::default();
        registry.register(
            "requests",
            "Meetings requests answered, by operation, account and gRPC code",
            requests.clone(),
        );
        let request_duration = Histograms::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "request_duration",
            "Time from a Meetings request's arrival to its answer",
            Unit::Seconds,
            request_duration.clone(),
        );
        let unauthenticated = Counter::default();
        registry.register(
            "unauthenticated_requests",
            "Requests refused because no caller could be identified",
            unauthenticated.clone(),
        );
        let zoom_calls = Family::default();
        registry.register(
            "zoom_calls",
            "Exchanges with Zoom's REST API, by account, endpoint and how Zoom answered",
            zoom_calls.clone(),
        );
        let zoom_call_duration = Histograms::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "zoom_call_duration",
            "Time of one exchange with Zoom's REST API",
            Unit::Seconds,
            zoom_call_duration.clone(),
        );
        let token_fetches = Family::default();
        registry.register(
            "token_fetches",
            "S2S OAuth token requests sent to Zoom, by account and result",
            token_fetches.clone(),
        );
        let token_fetch_duration = Histograms::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "token_fetch_duration",
            "Time of one token request to Zoom",
            Unit::Seconds,
            token_fetch_duration.clone(),
        );
        let token_valid = Family::default();
        registry.register(
            "token_valid",
            "1 while the gateway holds an unexpired Zoom token of the account",
            token_valid.clone(),
        );
        let quota_wait = Histograms::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "quota_wait",
            "Time a Zoom call waited for its place in the account's budget",
            Unit::Seconds,
            quota_wait.clone(),
        );
        let quota_refusals = Family::default();
        registry.register(
            "quota_refusals",
            "Zoom calls refused before they were sent, by account, category and reason",
            quota_refusals.clone(),
        );
        let quota_waiting = Family::default();
        registry.register(
            "quota_waiting_calls",
            "Zoom calls waiting now for a place in the account's budget",
            quota_waiting.clone(),
        );
        let budget_per_second = Family::default();
        registry.register(
            "budget_per_second",
            "Calls per second the gateway may send to the account in the category",
            budget_per_second.clone(),
        );
        let budget_daily_left = Family::default();
        registry.register(
            "budget_daily_left",
            "Calls left today (Zoom's day) in categories with a daily cap",
            budget_daily_left.clone(),
        );
        let budget_paused = Family::default();
        registry.register_with_unit(
            "budget_paused",
            "How long Zoom's last 429 still holds the category of the account back",
            Unit::Seconds,
            budget_paused.clone(),
        );
        let circuit = Family::default();
        registry.register(
            "circuit_state",
            "The account's circuit breaker: 1 for the state it is in, 0 for the others",
            circuit.clone(),
        );
        let store_errors = Family::default();
        registry.register(
            "store_errors",
            "Store operations that failed, by operation",
            store_errors.clone(),
        );
        let store_duration = Histograms::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "store_operation_duration",
            "Time of one store operation",
            Unit::Seconds,
            store_duration.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "config_reloads",
            "Config file changes read, by result: applied or refused",
            reloads.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            unauthenticated,
            zoom_calls,
            zoom_call_duration,
            token_fetches,
            token_fetch_duration,
            token_valid,
            quota_wait,
            quota_refusals,
            quota_waiting,
            budget_per_second,
            budget_daily_left,
            budget_paused,
            circuit,
            store_errors,
            store_duration,
            reloads,
            scraping: std::sync::Mutex::default(),
        }
    }

    /// One Meetings request answered with `code` (a gRPC code name, e.g. `"OK"`).
    pub fn request(
        &self,
        operation: &'static str,
        account: &str,
        code: &'static str,
        took: Duration,
    ) {
        let account = account.to_owned();
        self.request_duration
            .get_or_create(&OperationLabels {
                operation,
                account: account.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                operation,
                account,
                code,
            })
            .inc();
    }

    pub fn unauthenticated(&self) {
        self.unauthenticated.inc();
    }

    /// One exchange with Zoom; `status` names how it ended (see `ZoomError::status`).
    pub fn zoom_call(
        &self,
        account: &str,
        endpoint: &'static str,
        status: &'static str,
        took: Duration,
    ) {
        self.zoom_call_duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(took.as_secs_f64());
        self.zoom_calls
            .get_or_create(&ZoomCallLabels {
                account: account.to_owned(),
                endpoint,
                status,
            })
            .inc();
    }

    pub fn token_fetch(&self, account: &str, ok: bool, took: Duration) {
        self.token_fetch_duration
            .get_or_create(&AccountLabels {
                account: account.to_owned(),
            })
            .observe(took.as_secs_f64());
        self.token_fetches
            .get_or_create(&ResultLabels {
                account: account.to_owned(),
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// A call got its place in the budget after `waited`.
    pub fn quota_admitted(&self, account: &str, category: &'static str, waited: Duration) {
        self.quota_wait
            .get_or_create(&CategoryLabels {
                account: account.to_owned(),
                category,
            })
            .observe(waited.as_secs_f64());
    }

    /// A call was refused before it went out; `reason` is one of `per_second`, `daily`,
    /// `draining`, `unavailable` (see `Refusal::reason`), `user_daily` and `circuit_open`.
    pub fn quota_refused(&self, account: &str, category: &'static str, reason: &'static str) {
        self.quota_refusals
            .get_or_create(&RefusalLabels {
                account: account.to_owned(),
                category,
                reason,
            })
            .inc();
    }

    /// One store operation; `failed` when it returned an error.
    pub fn store_operation(&self, operation: &'static str, failed: bool, took: Duration) {
        let labels = StoreLabels { operation };
        self.store_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.store_errors.get_or_create(&labels).inc();
        }
    }

    pub fn reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The text Prometheus scrapes, with the gauges of `accounts` as they stand now.
    pub fn encode(&self, accounts: &[AccountView]) -> String {
        // Two scrapes at once would clear and set the same gauges in between each other.
        let _scrape = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.set_accounts(accounts);
        let mut text = String::new();
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Replaces the per-account gauges: an account a reload removed disappears.
    fn set_accounts(&self, accounts: &[AccountView]) {
        self.token_valid.clear();
        self.quota_waiting.clear();
        self.budget_per_second.clear();
        self.budget_daily_left.clear();
        self.budget_paused.clear();
        self.circuit.clear();
        let now = chrono::Utc::now();
        for view in accounts {
            let account = || AccountLabels {
                account: view.name.to_string(),
            };
            let valid = view.token.valid_until.is_some_and(|until| until > now);
            self.token_valid
                .get_or_create(&account())
                .set(i64::from(valid));
            self.quota_waiting
                .get_or_create(&account())
                .set(view.budget.waiting as i64);
            let current = view.budget.circuit.as_str();
            for state in CircuitState::NAMES {
                self.circuit
                    .get_or_create(&CircuitLabels {
                        account: view.name.to_string(),
                        state,
                    })
                    .set(i64::from(state == current));
            }
            for category in &view.budget.categories {
                let labels = CategoryLabels {
                    account: view.name.to_string(),
                    category: category.category.as_str(),
                };
                self.budget_per_second
                    .get_or_create(&labels)
                    .set(category.allowance.per_second);
                if let Some(left) = category.daily_left {
                    self.budget_daily_left
                        .get_or_create(&labels)
                        .set(left as i64);
                }
                self.budget_paused
                    .get_or_create(&labels)
                    .set(category.paused_for.map_or(0.0, |d| d.as_secs_f64()));
            }
        }
    }
}

/// The same series in Prometheus's classic text format (0.0.4), for tools that do not read
/// OpenMetrics, such as `promtool check metrics`: a counter's `# HELP` and `# TYPE` name it with
/// its `_total`, and there is no `# UNIT` or `# EOF`. Samples are the same in both formats.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|kind| Some((kind, line.strip_prefix(kind)?)));
        match comment.and_then(|(kind, rest)| Some((kind, rest.split_once(' ')?))) {
            Some((kind, (name, rest))) if counters.contains(name) => {
                text.push_str(&format!("{kind}{name}_total {rest}\n"));
            }
            _ => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_text_names_counters_with_their_total_and_drops_what_it_lacks() {
        let metrics = Metrics::new();
        metrics.reload("applied");
        metrics.request("read", "sales", "OK", Duration::from_millis(3));
        let open = metrics.encode(&[]);
        assert!(
            open.contains("# TYPE zoomgate_config_reloads counter"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"));
        let classic = classic_text(&open);
        assert!(classic.contains("# TYPE zoomgate_config_reloads_total counter\n"));
        assert!(classic.contains("# HELP zoomgate_config_reloads_total Config"));
        assert!(classic.contains("zoomgate_config_reloads_total{result=\"applied\"} 1\n"));
        assert!(classic.contains("# TYPE zoomgate_request_duration_seconds histogram\n"));
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
        let samples = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(samples(&open), samples(&classic));
    }
}
