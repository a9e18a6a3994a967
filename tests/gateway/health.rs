//! Health checks answer without credentials.

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use std::time::Duration;

use zoomgate::emulator::Emulator;

use crate::process::{GatewayProcess, config_file};
use crate::support::*;

#[tokio::test]
async fn health_is_open_and_serving() {
    let gateway = TestGateway::spawn().await;
    let channel = Channel::from_shared(format!("http://{}", gateway.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "zoomgate.v1.Meetings"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("no credentials needed")
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    gateway.stop().await;
}

/// Lists the services through gRPC reflection version `$v` (the generated types of each
/// version are distinct, with the same shape).
macro_rules! reflected_services {
    ($v:ident, $channel:expr) => {{
        use tonic_reflection::pb::$v::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = ServerReflectionRequest {
            message_request: Some(MessageRequest::ListServices(String::new())),
            ..Default::default()
        };
        let mut answers = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection answers")
            .into_inner();
        match answers.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => list
                .service
                .into_iter()
                .map(|s| s.name)
                .collect::<Vec<String>>(),
            other => panic!("not a service list: {other:?}"),
        }
    }};
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    let gateway = TestGateway::spawn().await;
    let channel = Channel::from_shared(format!("http://{}", gateway.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let v1 = reflected_services!(v1, channel.clone());
    let v1alpha = reflected_services!(v1alpha, channel);
    for name in ["grpc.health.v1.Health", "zoomgate.v1.Meetings"] {
        assert!(v1.iter().any(|n| n == name), "v1 lacks {name}: {v1:?}");
        assert!(
            v1alpha.iter().any(|n| n == name),
            "v1alpha lacks {name}: {v1alpha:?}"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn the_ops_listener_answers_livez_and_readyz_and_stops_with_the_server() {
    let gateway = TestGateway::spawn().await;
    let ops = gateway.ops_addr;
    for path in ["livez", "readyz"] {
        let answer = reqwest::get(format!("http://{ops}/{path}")).await.unwrap();
        assert_eq!(answer.status(), 200, "/{path}");
    }
    let unknown = reqwest::get(format!("http://{ops}/webhooks"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    gateway.stop().await;
    assert!(
        tokio::net::TcpStream::connect(ops).await.is_err(),
        "the ops listener outlives the gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_ops_listener_with_the_grpc_server() {
    let zoom = Emulator::start(emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = config_file(&zoom, "");
    let mut process = GatewayProcess::start(&config);
    let livez = reqwest::get(format!("http://{}/livez", process.ops_addr))
        .await
        .unwrap();
    assert_eq!(livez.status(), 200);
    assert_eq!(process.terminate(Duration::from_secs(10)), Some(0));
    for addr in [process.addr, process.ops_addr] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still listens"
        );
    }
    zoom.shutdown().await;
}
