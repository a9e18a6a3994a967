//! Logs never carry API keys, client secrets or Zoom tokens, whatever happens.

use tonic::Code;
use zoomgate::emulator::Faults;

use crate::support::*;

/// Everything of the gateway, and its libraries' own chatter left out.
const QUIET_LIBRARIES: &str = "trace,h2=info,hyper=info,hyper_util=info,tower=info,rustls=info";

#[tokio::test]
async fn logs_carry_no_keys_secrets_or_tokens() {
    let (captured, _guard) = Captured::start(QUIET_LIBRARIES);

    let gateway = TestGateway::spawn().await;
    let wrong_key = "zk_wrong_3e8d1c77";
    let mut admin = gateway.client(ADMIN_KEY).await;
    let mut sales = gateway.client(SALES_KEY).await;
    let mut support = gateway.client(SUPPORT_KEY).await;
    let mut wrong = gateway.client(wrong_key).await;

    let carol = admin
        .create_meeting(create_for("carol@support.acme.test", "logged"))
        .await
        .unwrap()
        .into_inner();
    admin
        .create_meeting(create_for("frank@partner.test", "probed"))
        .await
        .unwrap();
    sales.get_meeting(get(carol.id)).await.unwrap_err();
    support.get_meeting(get(carol.id)).await.unwrap();
    assert_eq!(
        wrong.get_meeting(get(carol.id)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    gateway.zoom.revoke_tokens(SUPPORT_ZOOM_ID);
    admin
        .get_meeting(get(carol.id))
        .await
        .expect("retried with a new token");
    gateway.zoom.set_faults(
        SUPPORT_ZOOM_ID,
        Faults {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    admin.get_meeting(get(carol.id)).await.unwrap_err();
    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            malformed_token: true,
            ..Default::default()
        },
    );
    gateway.zoom.revoke_tokens(SALES_ZOOM_ID);
    admin
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap_err();
    gateway.zoom.set_faults(
        LIMITED_ZOOM_ID,
        Faults {
            token_endpoint_down: true,
            ..Default::default()
        },
    );
    admin.get_meeting(get(1_234_567_890)).await.unwrap_err();
    gateway.stop().await;

    let logs = captured.text();
    assert!(
        logs.contains("request failed"),
        "the capture works: {} bytes",
        logs.len()
    );
    for secret in [
        ADMIN_KEY,
        SALES_KEY,
        SUPPORT_KEY,
        wrong_key,
        SALES_SECRET,
        SUPPORT_SECRET,
        LIMITED_SECRET,
    ] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the logs");
    }
    // Zoom's tokens are JWT-shaped ("eyJ..."); none may appear, nor a bearer header.
    assert!(!logs.contains("eyJ"), "a Zoom token leaked into the logs");
    assert!(
        !logs.to_ascii_lowercase().contains("bearer "),
        "an authorization header leaked"
    );
}

#[tokio::test]
async fn log_lines_of_the_request_task_and_the_token_fetch_carry_the_request_span() {
    let (captured, _guard) = Captured::start("zoomgate=debug");
    let gateway = TestGateway::spawn().await;
    let mut admin = gateway.client(ADMIN_KEY).await;

    // frank@partner.test has no rule: the request probes, and each probe fetches a token.
    let mut request = tonic::Request::new(create_for("frank@partner.test", "traced"));
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().unwrap());
    let response = admin.create_meeting(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "trace-me-42"
    );
    let meeting = response.into_inner();

    let text = captured.text();
    // The span's later fields (account, zoom_endpoint, code) follow these once recorded.
    let span = "request{request_id=trace-me-42 caller=admin operation=create";
    for message in ["fetched a zoom token", "user routed", "zoom call"] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(message)).collect();
        assert!(!lines.is_empty(), "no line says `{message}`:\n{text}");
        for line in lines {
            assert!(line.contains(span), "`{message}` outside the span: {line}");
        }
    }

    // Without an id from the client, the gateway makes one, answers it and logs it.
    let response = admin.get_meeting(get(meeting.id)).await.unwrap();
    let generated = response
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 32, "{generated}");
    let text = captured.text();
    assert!(
        text.contains(&format!(
            "request{{request_id={generated} caller=admin operation=read"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn no_admin_answer_error_or_log_line_carries_a_secret() {
    let (captured, _guard) = Captured::start(QUIET_LIBRARIES);

    let gateway = TestGateway::spawn().await;
    let mut platform = gateway.admin(PLATFORM_KEY).await;
    let mut denied = gateway.admin(SALES_KEY).await;
    let mut answers = Vec::new();
    // A token endpoint that fails leaves its error in the accounts view.
    gateway.zoom.set_faults(
        LIMITED_ZOOM_ID,
        Faults {
            token_endpoint_down: true,
            ..Default::default()
        },
    );
    let _ = gateway
        .client(ADMIN_KEY)
        .await
        .list_meetings(list_for("gina@limited.test"))
        .await;
    answers.push(format!(
        "{:?}",
        platform
            .list_accounts(zoomgate::proto::ListAccountsRequest {})
            .await
    ));
    answers.push(format!(
        "{:?}",
        platform
            .sync_directory(zoomgate::proto::SyncDirectoryRequest {})
            .await
    ));
    answers.push(format!(
        "{:?}",
        platform
            .put_route(zoomgate::proto::PutRouteRequest {
                user_email: "erin@partner.test".into(),
                account: "acme-support".into(),
                force: false,
            })
            .await
    ));
    answers.push(format!(
        "{:?}",
        denied
            .list_accounts(zoomgate::proto::ListAccountsRequest {})
            .await
    ));
    answers.push(format!(
        "{:?}",
        platform
            .list_audit(zoomgate::proto::ListAuditRequest::default())
            .await
    ));
    gateway.stop().await;

    let accounts = &answers[0];
    assert!(
        accounts.contains("last_error") && accounts.contains("unavailable"),
        "the failure is shown: {accounts}"
    );
    let logs = captured.text();
    for text in answers.iter().chain([&logs]) {
        for secret in [
            ADMIN_KEY,
            SALES_KEY,
            PLATFORM_KEY,
            SALES_SECRET,
            SUPPORT_SECRET,
            LIMITED_SECRET,
        ] {
            assert!(!text.contains(secret), "`{secret}` leaked: {text}");
        }
        assert!(!text.contains("eyJ"), "a Zoom token leaked: {text}");
    }
}
