//! What one client may hold of the gateway: connections, streams, buffers, requests in flight,
//! message sizes. Each test sets small `[limits]` so that it finishes in seconds.

use std::time::{Duration, Instant};

use prost::Message;
use prost_types::{Struct, Value, value::Kind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::Code;
use tonic_types::StatusExt;
use zoomgate::emulator::{Emulator, Faults};
use zoomgate::proto;

use crate::h2raw::{self, Frame};
use crate::process::{GatewayProcess, config_file};
use crate::support::*;

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// Sends one health check on a raw connection and reads up to its end.
async fn health_check_on(stream: &mut TcpStream, id: u32) {
    stream
        .write_all(&h2raw::grpc_headers(id, HEALTH_CHECK, None, false))
        .await
        .unwrap();
    stream.write_all(&h2raw::grpc_data(id, &[])).await.unwrap();
    loop {
        let frame = h2raw::read_frame(stream).await.expect("an answer");
        if frame.stream == id
            && frame.kind == h2raw::HEADERS
            && frame.flags & h2raw::END_STREAM != 0
        {
            return;
        }
    }
}

#[tokio::test]
async fn half_open_and_idle_connections_are_closed_in_time() {
    let gateway = TestGateway::spawn_with(with_limits(
        "handshake_timeout_secs = 1\nidle_timeout_secs = 2",
    ))
    .await;
    let started = Instant::now();
    // Bare TCP, and a client that stops after the HTTP/2 preface.
    let mut bare = TcpStream::connect(gateway.addr).await.unwrap();
    let (mut preface_only, _) = h2raw::handshake(gateway.addr, &[]).await;
    let (_, closed) = h2raw::read_until_closed(&mut bare, Duration::from_secs(4)).await;
    assert!(closed, "a bare TCP connection stays open");
    let (_, closed) = h2raw::read_until_closed(&mut preface_only, Duration::from_secs(4)).await;
    assert!(
        closed,
        "a connection that stopped after the preface stays open"
    );
    let handshake = started.elapsed();
    assert!(
        handshake >= Duration::from_millis(900),
        "closed too early: {handshake:?}"
    );

    // A client that made a request and then fell silent.
    let (mut idle, _) = h2raw::handshake(gateway.addr, &[]).await;
    health_check_on(&mut idle, 1).await;
    let answered = Instant::now();
    let (_, closed) = h2raw::read_until_closed(&mut idle, Duration::from_secs(5)).await;
    let idle_for = answered.elapsed();
    assert!(closed, "an idle connection stays open");
    assert!(
        (Duration::from_millis(1_800)..Duration::from_millis(4_000)).contains(&idle_for),
        "closed after {idle_for:?} of idleness, not about 2 s"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_lock_out_a_new_caller() {
    let gateway = TestGateway::spawn_with(with_limits("handshake_timeout_secs = 60")).await;
    let mut idle = Vec::new();
    for _ in 0..1_000 {
        idle.push(TcpStream::connect(gateway.addr).await.unwrap());
    }
    let started = Instant::now();
    let mut client = gateway.client(ADMIN_KEY).await;
    let meeting = client
        .create_meeting(create_for("alice@sales.acme.test", "among idlers"))
        .await
        .expect("a new caller is served")
        .into_inner();
    assert!(meeting.id > 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
    gateway.stop().await;
}

#[tokio::test]
async fn the_advertised_stream_limit_is_enforced() {
    let gateway = TestGateway::spawn_with(with_limits("max_concurrent_streams = 8")).await;
    let (mut stream, settings) = h2raw::handshake(gateway.addr, &[]).await;
    assert!(
        settings.contains(&(h2raw::SETTINGS_MAX_CONCURRENT_STREAMS, 8)),
        "SETTINGS_MAX_CONCURRENT_STREAMS not advertised: {settings:?}"
    );
    // Twenty streams opened at once, none finished: eight may stay open.
    let mut burst = Vec::new();
    for i in 0..20 {
        burst.extend(h2raw::grpc_headers(1 + 2 * i, HEALTH_CHECK, None, false));
    }
    stream.write_all(&burst).await.unwrap();
    let (frames, _) = h2raw::read_until_closed(&mut stream, Duration::from_secs(1)).await;
    let refused = frames
        .iter()
        .filter(|f: &&Frame| f.kind == h2raw::RST_STREAM && f.error_code() == h2raw::REFUSED_STREAM)
        .count();
    assert_eq!(refused, 12, "{frames:?}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_grants_no_window_is_cut_off() {
    let gateway = TestGateway::spawn_with(with_limits("write_stall_timeout_secs = 2")).await;
    // It reads everything, but lets no DATA through: every answer stays unsent.
    let (mut stream, _) =
        h2raw::handshake(gateway.addr, &[(h2raw::SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    let mut requests = Vec::new();
    for i in 0..10 {
        let id = 1 + 2 * i;
        requests.extend(h2raw::grpc_headers(id, HEALTH_CHECK, None, false));
        requests.extend(h2raw::grpc_data(id, &[]));
    }
    stream.write_all(&requests).await.unwrap();
    let started = Instant::now();
    let (_, closed) = h2raw::read_until_closed(&mut stream, Duration::from_secs(6)).await;
    assert!(closed, "answers held unsent keep the connection open");
    assert!(started.elapsed() >= Duration::from_millis(1_800));
    gateway.stop().await;
}

#[tokio::test]
async fn a_caller_beyond_its_requests_in_flight_is_refused_and_others_are_not() {
    let gateway =
        TestGateway::spawn_with(with_limits("max_requests_in_flight_per_caller = 2")).await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    let meeting = admin
        .create_meeting(create_for("alice@sales.acme.test", "slow"))
        .await
        .unwrap()
        .into_inner();
    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            latency_ms: 400,
            ..Faults::default()
        },
    );
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut admin = admin.clone();
            tokio::spawn(async move { admin.get_meeting(get(meeting.id)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut sales = gateway.client(SALES_KEY).await;
    sales
        .get_meeting(get(meeting.id))
        .await
        .expect("another caller is not held back");
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "TOO_MANY_REQUESTS_IN_FLIGHT");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 4);
    gateway.stop().await;
}

fn nested(depth: usize) -> Struct {
    let mut value = Struct::default();
    for _ in 0..depth {
        let mut outer = Struct::default();
        outer.fields.insert(
            "k".into(),
            Value {
                kind: Some(Kind::StructValue(value)),
            },
        );
        value = outer;
    }
    value
}

#[tokio::test]
async fn oversized_and_undecodable_messages_are_invalid_arguments_with_error_info() {
    let gateway = TestGateway::spawn_with(with_limits("max_message_bytes = 4096")).await;
    let mut client = gateway.client(ADMIN_KEY).await;

    let mut big = create_for("alice@sales.acme.test", "big");
    big.meeting.as_mut().unwrap().agenda = "x".repeat(5_000);
    let status = client.create_meeting(big).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "MESSAGE_TOO_LARGE");
    assert_eq!(info.metadata["limit_bytes"], "4096");

    let mut deep = create_for("alice@sales.acme.test", "deep");
    deep.meeting.as_mut().unwrap().settings = Some(nested(200));
    let status = client.create_meeting(deep).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "MALFORMED_MESSAGE");

    // The documented nesting that still decodes.
    let mut fine = create_for("alice@sales.acme.test", "nested");
    fine.meeting.as_mut().unwrap().settings = Some(nested(MAX_DOCUMENTED_DEPTH));
    let status = client.create_meeting(fine).await.err();
    assert!(status.is_none_or(|s| reason(&s) != "MALFORMED_MESSAGE"));
    gateway.stop().await;
}

/// The `Struct` nesting the README promises decodes.
const MAX_DOCUMENTED_DEPTH: usize = 30;

/// The gateway's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_bounded() {
    // Zoom's per-second limits would answer most of the flood with small 429s.
    let zoom = Emulator::start(
        unthrottled_emulator_config(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    // The keepalive (20 s + 10 s) is far off: the stalled write is what cuts the client off.
    let config = config_file(&zoom, "\n[limits]\nwrite_stall_timeout_secs = 2\n");
    let process = GatewayProcess::start(&config);
    // Enough meetings that one list answer is some 140 KiB, and the answers to the requests one
    // caller may have in flight (64) outgrow what the kernel's socket buffers take.
    let mut admin = client_at(process.addr, ADMIN_KEY).await;
    for day in 0..3 {
        // Zoom lets a user create 100 meetings a day: three days of them. A read shows the
        // gateway Zoom's new day.
        zoom.set_now(chrono::Utc::now() + chrono::Duration::days(day));
        admin
            .list_meetings(list_for("alice@sales.acme.test"))
            .await
            .unwrap();
        for i in 0..100 {
            let topic = format!("m{day}-{i} {}", "t".repeat(190));
            admin
                .create_meeting(create_for("alice@sales.acme.test", &topic))
                .await
                .unwrap();
        }
    }
    let before = rss_bytes(process.pid());

    // A huge receive window, 1000 list requests on one connection, and never a read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(process.addr).await.unwrap();
    let window = [(h2raw::SETTINGS_INITIAL_WINDOW_SIZE, 0x7fff_ffff)];
    let (mut stream, _) = h2raw::handshake_on(stream, &window).await;
    stream
        .write_all(&h2raw::frame(
            h2raw::WINDOW_UPDATE,
            0,
            0,
            &0x7fff_0000u32.to_be_bytes(),
        ))
        .await
        .unwrap();
    let list = proto::ListMeetingsRequest {
        page_size: 300,
        ..list_for("alice@sales.acme.test")
    }
    .encode_to_vec();
    let mut requests = Vec::new();
    for i in 0..1_000 {
        let id = 1 + 2 * i;
        requests.extend(h2raw::grpc_headers(
            id,
            "/zoomgate.v1.Meetings/ListMeetings",
            Some(ADMIN_KEY),
            false,
        ));
        requests.extend(h2raw::grpc_data(id, &list));
    }
    let writing = tokio::spawn(async move {
        // The gateway stops reading once its buffers are full; give up on the rest then.
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.write_all(&requests)).await;
        stream
    });

    // Meanwhile another caller is served as usual (in another Zoom account: the flood spends
    // the sales account's Zoom budget).
    let mut other = client_at(process.addr, SUPPORT_KEY).await;
    let started = Instant::now();
    other
        .list_meetings(list_for("carol@support.acme.test"))
        .await
        .expect("another caller is served");
    assert!(started.elapsed() < Duration::from_secs(2));

    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(rss_bytes(process.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 48 << 20,
        "the gateway held {} MiB for one client",
        grown >> 20
    );

    let mut stream = writing.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The gateway closed the connection, so reading drains what the kernel still holds and
    // ends. Had it stayed open, reading would keep it busy past the window.
    let (_, closed) = h2raw::read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "a client that never reads keeps its connection");
    eprintln!(
        "never-reading client: gateway grew by {} KiB at peak",
        grown >> 10
    );
    drop(process);
    zoom.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_gateway_says_so_backs_off_and_recovers() {
    let gateway = TestGateway::spawn().await;
    let config = config_file(&gateway.zoom, "\n[limits]\nhandshake_timeout_secs = 2\n");
    let process = GatewayProcess::start_with(&config, "ulimit -n 256;");
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(TcpStream::connect(process.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_before = cpu_ticks(process.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = cpu_ticks(process.pid()) - cpu_before;
    assert!(
        busy < 50,
        "the gateway spun at {busy}% of a core while out of descriptors"
    );
    assert!(
        !process
            .logs_containing("out of file descriptors")
            .is_empty(),
        "running out of descriptors must be logged"
    );
    // The flood times out of its handshake; a new caller is served again without a restart.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            client_at(process.addr, ADMIN_KEY)
                .await
                .list_meetings(list_for("alice@sales.acme.test"))
                .await
        })
        .await;
        if matches!(attempt, Ok(Ok(_))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the flood timed out"
        );
    }
    drop(flood);
    drop(process);
    gateway.stop().await;
}

/// User and system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
