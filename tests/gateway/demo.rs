//! The demo's embedded configs stay valid, and the demo callers see isolation at work.

use tonic::Code;
use zoomgate::emulator::{Emulator, EmulatorConfig};
use zoomgate::proto::meetings_client::MeetingsClient;

use crate::support::*;

#[tokio::test]
async fn the_demo_wires_a_gateway_to_the_emulator() {
    let emulator_config = EmulatorConfig::from_toml(zoomgate::demo::EMULATOR_CONFIG).unwrap();
    let emulator = Emulator::start(emulator_config.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = zoomgate::demo::gateway_config(
        &emulator,
        &emulator_config,
        (
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ),
        "sqlite::memory:",
    )
    .expect("demo config is valid");
    let app = zoomgate::App::build(config).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let connect = |key: &'static str| async move {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        MeetingsClient::with_interceptor(
            channel,
            ApiKey::new(Some(format!("Bearer {key}").parse().unwrap())),
        )
    };
    let mut sales = connect("demo-sales-key").await;
    let created = sales
        .create_meeting(create_for("alice@sales.acme.test", "Pipeline review"))
        .await
        .expect("sales-bot creates for alice")
        .into_inner();
    assert_eq!(created.account, "acme-sales");
    assert!(created.start_url.is_empty());
    let status = sales
        .create_meeting(create_for("carol@support.acme.test", "Not mine"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let mut scheduler = connect("demo-scheduler-key").await;
    let full = scheduler
        .get_meeting(get(created.id))
        .await
        .unwrap()
        .into_inner();
    assert!(!full.start_url.is_empty());

    let mut support = connect("demo-support-key").await;
    support
        .list_meetings(list_for("carol@support.acme.test"))
        .await
        .expect("support-dashboard lists carol");
    let status = support
        .list_meetings(list_for("dave@support.acme.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    emulator.shutdown().await;
}
