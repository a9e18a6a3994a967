//! The gateway on a PostgreSQL store, over gRPC against the emulator: what it acknowledges is
//! in the database and still there after a restart. Each test works in a schema of its own;
//! where no PostgreSQL answers the tests say they were skipped, and `ZOOMGATE_REQUIRE_POSTGRES=1`
//! (set by CI) makes that a failure.

use std::io::Write;

use sqlx::Connection;

use crate::support::*;

/// The server the tests use.
fn server_url() -> String {
    std::env::var("ZOOMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own, dropped at the end of the test.
struct Schema {
    name: String,
}

impl Schema {
    async fn create() -> Option<Schema> {
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
    fn store(&self) -> String {
        format!("{}?options=-c%20search_path%3D{}", server_url(), self.name)
    }

    async fn drop_it(self) {
        let mut connection = sqlx::PgConnection::connect(&server_url()).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&mut connection)
            .await
            .unwrap();
        let _ = connection.close().await;
    }
}

fn skipped<T>(url: &str, why: &str) -> Option<T> {
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
    let mut gateway = TestGateway::spawn_with(|toml| {
        let start = toml.find("store = \"").unwrap();
        let end = start + toml[start..].find('\n').unwrap();
        toml.replace_range(start..end, &format!("store = \"{store}\""));
    })
    .await;
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
