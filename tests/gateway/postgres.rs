//! The gateway on a PostgreSQL store, over gRPC against the emulator: what it acknowledges is
//! in the database and still there after a restart. Each test works in a schema of its own;
//! where no PostgreSQL answers the tests say they were skipped, and `ZOOMGATE_REQUIRE_POSTGRES=1`
//! (set by CI) makes that a failure.

use std::io::Write;

use sqlx::Connection;

use crate::support::*;

/// The server the tests use.
pub fn server_url() -> String {
    std::env::var("ZOOMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own, dropped at the end of the test.
pub struct Schema {
    pub name: String,
}

impl Schema {
    pub async fn create() -> Option<Schema> {
        let url = server_url();
        let connected = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            sqlx::PgConnection::connect(&url),
        )
        .await;
        let mut connection = match connected {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return skipped(&url, &error.to_string()),
            Err(_) => return skipped(&url, "no answer within 5 s"),
        };
        let name = format!("zoomgate_gw_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut connection)
            .await
            .expect("a test schema");
        let _ = connection.close().await;
        Some(Schema { name })
    }

    /// The store location of a gateway working in this schema.
    pub fn store(&self) -> String {
        format!("{}?options=-c%20search_path%3D{}", server_url(), self.name)
    }

    pub async fn drop_it(self) {
        let mut connection = sqlx::PgConnection::connect(&server_url()).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&mut connection)
            .await
            .unwrap();
        let _ = connection.close().await;
    }
}

pub fn skipped<T>(url: &str, why: &str) -> Option<T> {
    assert!(
        std::env::var("ZOOMGATE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
        "ZOOMGATE_REQUIRE_POSTGRES=1 but PostgreSQL at {url} does not answer: {why}"
    );
    // Past the test harness's capture, so that a skip shows in every run.
    let _ = writeln!(
        std::io::stderr(),
        "PostgreSQL test skipped: no PostgreSQL at {url} ({why})"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_postgres_records_what_it_acknowledges_and_keeps_it_across_a_restart() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let store = schema.store();
    let mut gateway = on_store(&store).await;
    assert!(
        gateway
            .health_becomes(
                tonic_health::pb::health_check_response::ServingStatus::Serving,
                std::time::Duration::from_secs(5)
            )
            .await
    );
    let mut sales = gateway.client(SALES_KEY).await;
    let meeting = sales
        .create_meeting(create_for("alice@sales.acme.test", "on postgres"))
        .await
        .expect("a create on postgres")
        .into_inner();
    let ledger = gateway.store.meeting(meeting.id).await.unwrap();
    assert_eq!(
        ledger.map(|m| m.account.to_string()).as_deref(),
        Some("acme-sales")
    );
    let created = create_records(gateway.store.as_ref()).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].meeting_id, Some(meeting.id));
    assert_eq!(created[0].outcome, zoomgate::store::Outcome::Allowed);

    gateway.restart().await;
    let mut sales = gateway.client(SALES_KEY).await;
    let again = sales
        .get_meeting(get(meeting.id))
        .await
        .expect("the ledger routes it after a restart")
        .into_inner();
    assert_eq!(again.topic, "on postgres");
    // The support reader still cannot see it: the ledger names its account.
    let mut support = gateway.client(SUPPORT_KEY).await;
    let hidden = support.get_meeting(get(meeting.id)).await.unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    gateway.stop().await;
    schema.drop_it().await;
}

/// A gateway (with an emulator of its own) on the store at `store`.
async fn on_store(store: &str) -> TestGateway {
    let store = store.to_owned();
    TestGateway::spawn_with(move |toml| {
        let start = toml.find("store = \"").unwrap();
        let end = start + toml[start..].find('\n').unwrap();
        toml.replace_range(start..end, &format!("store = \"{store}\""));
    })
    .await
}

/// A TCP proxy in front of PostgreSQL that can go down the way a restarting server does: every
/// open connection cut, new ones refused, until it is repaired.
struct Proxy {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (down, connections) = (down.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(task.abort_handle());
                }
            }
        });
        Proxy {
            addr,
            down,
            connections,
            accept,
        }
    }

    fn go_down(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn come_back(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_down_gives_unavailable_and_the_gateway_recovers_without_a_restart() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let Some(schema) = Schema::create().await else {
        return;
    };
    let server: url_parts::Server = url_parts::of(&server_url());
    let proxy = Proxy::start(server.addr).await;
    let store = format!(
        "postgres://{}@{}/{}?options=-c%20search_path%3D{}",
        server.user, proxy.addr, server.database, schema.name
    );
    let gateway = on_store(&store).await;
    let mut client = gateway.client(ADMIN_KEY).await;
    client
        .create_meeting(create_for("alice@sales.acme.test", "before the outage"))
        .await
        .expect("a create while PostgreSQL is up");

    proxy.go_down();
    let refused = client
        .create_meeting(create_for("alice@sales.acme.test", "during the outage"))
        .await
        .expect_err("no create is acknowledged without its records");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        gateway
            .health_becomes(
                ServingStatus::NotServing,
                std::time::Duration::from_secs(15)
            )
            .await,
        "not ready while the database is down"
    );
    assert_eq!(gateway.readyz().await, 503);

    proxy.come_back();
    assert!(
        gateway
            .health_becomes(ServingStatus::Serving, std::time::Duration::from_secs(15))
            .await,
        "ready again without a restart"
    );
    let after = client
        .create_meeting(create_for("alice@sales.acme.test", "after the outage"))
        .await
        .expect("creates work again")
        .into_inner();
    assert!(gateway.store.meeting(after.id).await.unwrap().is_some());
    gateway.stop().await;
    proxy.accept.abort();
    schema.drop_it().await;
}

/// The parts of the test server's URL a proxy in front of it needs.
mod url_parts {
    pub struct Server {
        pub addr: std::net::SocketAddr,
        pub user: String,
        pub database: String,
    }

    pub fn of(url: &str) -> Server {
        let url = reqwest::Url::parse(url).expect("a PostgreSQL URL");
        let host = url.host_str().expect("a host");
        let port = url.port().unwrap_or(5432);
        Server {
            addr: format!("{host}:{port}")
                .parse()
                .expect("an IP address and port"),
            user: url.username().to_owned(),
            database: url.path().trim_start_matches('/').to_owned(),
        }
    }
}
