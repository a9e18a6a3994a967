//! `/metrics` on the ops listener after traffic of every kind: each series with its labels and
//! counts, and no label that names a user, a meeting or a request.

use std::collections::BTreeMap;

use tonic::Code;
use zoomgate::emulator::Faults;

use crate::support::*;

/// One scrape: every sample by its series, `name{label="value",...}` as the exposition writes it.
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    async fn of(gateway: &TestGateway) -> Self {
        let answer = reqwest::Client::new()
            .get(format!("http://{}/metrics", gateway.ops_addr))
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let kind = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        let text = answer.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Self { text, samples }
    }

    /// The sum of the samples of `name` whose labels include every one of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
                series_name == name
                    && labels
                        .iter()
                        .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")))
            })
            .map(|(_, value)| value)
            .sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.keys().any(|series| {
            series.split_once('{').is_some_and(|(n, rest)| {
                n == name
                    && labels
                        .iter()
                        .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")))
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_kind_of_request_with_bounded_labels() {
    let mut gateway = TestGateway::spawn_watching().await;
    let sales = gateway.client(SALES_KEY).await;
    let admin = gateway.client(ADMIN_KEY).await;

    // Allowed: a create and a read in acme-sales.
    let meeting = sales
        .clone()
        .create_meeting(create_for("alice@sales.acme.test", "metrics"))
        .await
        .unwrap()
        .into_inner();
    sales.clone().get_meeting(get(meeting.id)).await.unwrap();
    // Denied: a support reader may not read a sales meeting; Zoom is not asked.
    let support = gateway.client(SUPPORT_KEY).await;
    let denied = support
        .clone()
        .get_meeting(get(meeting.id))
        .await
        .unwrap_err();
    // Zoom errors: every answer of acme-support's Zoom is a 500.
    let support_meeting = admin
        .clone()
        .create_meeting(create_for("carol@support.acme.test", "metrics"))
        .await
        .unwrap()
        .into_inner();
    gateway.zoom.set_faults(
        SUPPORT_ZOOM_ID,
        Faults {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let zoom_failed = admin
        .clone()
        .get_meeting(get(support_meeting.id))
        .await
        .unwrap_err();
    assert_eq!(zoom_failed.code(), Code::Unavailable, "{zoom_failed:?}");
    // Token failures: acme-limited's token endpoint is down from the start.
    gateway.zoom.set_faults(
        LIMITED_ZOOM_ID,
        Faults {
            token_endpoint_down: true,
            ..Default::default()
        },
    );
    let no_token = admin
        .clone()
        .list_meetings(list_for("gina@limited.test"))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unavailable, "{no_token:?}");
    // No caller at all.
    let anonymous = gateway
        .anonymous_client()
        .await
        .get_meeting(get(meeting.id))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    // A config reload applied, then a broken one refused.
    let text = gateway.config_text().to_owned();
    gateway.swap_config(&format!("{text}\n# a comment changes the file\n"));
    eventually("the reload", || async {
        Scrape::of(&gateway)
            .await
            .sum("zoomgate_config_reloads_total", &[("result", "applied")])
            == 1.0
    })
    .await;
    gateway.swap_config("[[callers]\nbroken");
    eventually("the refused reload", || async {
        Scrape::of(&gateway)
            .await
            .sum("zoomgate_config_reloads_total", &[("result", "refused")])
            == 1.0
    })
    .await;

    let scrape = Scrape::of(&gateway).await;
    let requests = "zoomgate_requests_total";
    let sales_ok = |operation| {
        scrape.sum(
            requests,
            &[
                ("operation", operation),
                ("account", "acme-sales"),
                ("code", "OK"),
            ],
        )
    };
    assert_eq!(sales_ok("create"), 1.0);
    assert_eq!(sales_ok("read"), 1.0);
    let denied_code = zoomgate::grpc::code_name(denied.code());
    assert_eq!(
        scrape.sum(requests, &[("operation", "read"), ("code", denied_code)]),
        1.0,
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.sum(
            requests,
            &[
                ("operation", "read"),
                ("account", "acme-support"),
                ("code", "UNAVAILABLE")
            ]
        ),
        1.0
    );
    assert_eq!(
        scrape.sum(
            requests,
            &[
                ("operation", "list"),
                ("account", "acme-limited"),
                ("code", "UNAVAILABLE")
            ]
        ),
        1.0
    );
    assert_eq!(scrape.sum("zoomgate_requests_total", &[]), 6.0);
    assert_eq!(
        scrape.sum("zoomgate_request_duration_seconds_count", &[]),
        6.0
    );
    assert_eq!(
        scrape.sum("zoomgate_unauthenticated_requests_total", &[]),
        1.0
    );

    // Zoom's side: one create and one read answered, and the 500s of acme-support, each try.
    let zoom_calls = "zoomgate_zoom_calls_total";
    let call = |account, endpoint, status| {
        scrape.sum(
            zoom_calls,
            &[
                ("account", account),
                ("endpoint", endpoint),
                ("status", status),
            ],
        )
    };
    assert_eq!(call("acme-sales", "create_meeting", "ok"), 1.0);
    assert_eq!(call("acme-sales", "get_meeting", "ok"), 1.0);
    let server_errors = call("acme-support", "get_meeting", "server_error");
    assert!(
        server_errors >= 2.0,
        "a failed GET is tried again: {server_errors}"
    );
    assert_eq!(
        scrape.sum(
            "zoomgate_zoom_call_duration_seconds_count",
            &[("endpoint", "get_meeting")]
        ),
        1.0 + server_errors
    );
    // Tokens: one fetch each for sales and support, and failures for limited.
    let fetches = "zoomgate_token_fetches_total";
    for account in ["acme-sales", "acme-support"] {
        assert_eq!(
            scrape.sum(fetches, &[("account", account), ("result", "ok")]),
            1.0,
            "{account}"
        );
    }
    assert!(
        scrape.sum(
            fetches,
            &[("account", "acme-limited"), ("result", "failed")]
        ) >= 1.0
    );
    assert_eq!(
        scrape.sum(fetches, &[("account", "acme-limited"), ("result", "ok")]),
        0.0
    );
    assert_eq!(
        scrape.sum("zoomgate_token_valid", &[("account", "acme-sales")]),
        1.0
    );
    assert_eq!(
        scrape.sum("zoomgate_token_valid", &[("account", "acme-limited")]),
        0.0
    );

    // The budget: every call that went out took its place; the gauges of every account.
    assert_eq!(
        scrape.sum(
            "zoomgate_quota_wait_seconds_count",
            &[("account", "acme-sales")]
        ),
        2.0
    );
    for account in ["acme-sales", "acme-support", "acme-limited"] {
        for category in ["light", "medium", "heavy"] {
            assert!(
                scrape.has(
                    "zoomgate_budget_per_second",
                    &[("account", account), ("category", category)]
                ),
                "{account} {category}"
            );
        }
        assert_eq!(
            scrape.sum("zoomgate_circuit_state", &[("account", account)]),
            1.0,
            "one state at a time: {account}"
        );
    }
    // acme-sales is on Pro: Light 30/s, Heavy 30 000 a day.
    assert_eq!(
        scrape.sum(
            "zoomgate_budget_per_second",
            &[("account", "acme-sales"), ("category", "light")]
        ),
        30.0
    );
    assert_eq!(
        scrape.sum(
            "zoomgate_budget_daily_left",
            &[("account", "acme-sales"), ("category", "heavy")]
        ),
        30_000.0
    );
    assert_eq!(
        scrape.sum(
            "zoomgate_circuit_state",
            &[("account", "acme-sales"), ("state", "closed")]
        ),
        1.0
    );

    // The store: the create's intent and outcome, timed; no errors.
    for operation in ["begin_change", "complete_change"] {
        assert!(
            scrape.sum(
                "zoomgate_store_operation_duration_seconds_count",
                &[("operation", operation)]
            ) >= 1.0,
            "{operation}"
        );
    }
    assert_eq!(scrape.sum("zoomgate_store_errors_total", &[]), 0.0);

    // Bounded labels: no user, meeting or request id anywhere in the scrape.
    for secret_or_id in [
        "alice@",
        "carol@",
        "gina@",
        &meeting.id.to_string(),
        &support_meeting.id.to_string(),
        SALES_SECRET,
        SALES_KEY,
    ] {
        assert!(
            !scrape.text.contains(secret_or_id),
            "the scrape names {secret_or_id}"
        );
    }
    gateway.stop().await;
}
