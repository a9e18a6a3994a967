//! Callers identified by client certificates: accepted, rejected, and a wrong SAN.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use zoomgate::proto::meetings_client::MeetingsClient;

use crate::support::*;

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Returns (certificate PEM, key PEM) of a leaf signed by `ca`.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

fn uri(name: &str) -> SanType {
    SanType::URI(name.try_into().unwrap())
}

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let ca = authority("zoomgate test CA");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = leaf(
            &ca,
            vec![dns("localhost")],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        std::fs::write(dir.path().join("server.pem"), cert).unwrap();
        std::fs::write(dir.path().join("server.key"), key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { ca, dir }
    }

    fn tls_section(&self) -> String {
        let path = |f: &str| self.dir.path().join(f).display().to_string();
        format!(
            "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
            path("server.pem"),
            path("server.key"),
            path("ca.pem")
        )
    }

    async fn client(
        &self,
        gateway: &TestGateway,
        identity: Option<(String, String)>,
        key: Option<&str>,
    ) -> Result<Client, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.pem()))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let channel = Channel::from_shared(format!("https://localhost:{}", gateway.addr.port()))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await?;
        let auth = key.map(|k| format!("Bearer {k}").parse().unwrap());
        Ok(MeetingsClient::with_interceptor(channel, ApiKey::new(auth)))
    }
}

#[tokio::test]
async fn callers_are_identified_by_certificate_san() {
    let pki = Pki::new();
    let section = pki.tls_section();
    let gateway = TestGateway::spawn_with(|toml| toml.push_str(&section)).await;

    // URI SAN (SPIFFE id) of the admin caller: full access, no API key needed.
    let admin_cert = leaf(
        &pki.ca,
        vec![uri("spiffe://acme.test/admin")],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let mut admin = pki
        .client(&gateway, Some(admin_cert), None)
        .await
        .expect("admin connects");
    let carol = admin
        .create_meeting(create_for("carol@support.acme.test", "via mTLS"))
        .await
        .expect("admin is identified by its certificate")
        .into_inner();

    // DNS SAN of sales-bot: its own grants apply.
    let bot_cert = leaf(
        &pki.ca,
        vec![dns("sales-bot.acme.test")],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let mut bot = pki
        .client(&gateway, Some(bot_cert), None)
        .await
        .expect("bot connects");
    let status = bot.get_meeting(get(carol.id)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    bot.list_meetings(list_for("alice@sales.acme.test"))
        .await
        .expect("bot lists its own users");

    // A certificate of the right CA whose SAN belongs to no caller.
    let stranger = leaf(
        &pki.ca,
        vec![dns("intruder.acme.test")],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let mut stranger = pki
        .client(&gateway, Some(stranger), None)
        .await
        .expect("TLS itself succeeds");
    let status = stranger.get_meeting(get(carol.id)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // No certificate, API key over TLS: still accepted.
    let mut keyed = pki
        .client(&gateway, None, Some(SALES_KEY))
        .await
        .expect("connects");
    keyed
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .expect("API key over TLS");

    gateway.stop().await;
}

#[tokio::test]
async fn certificates_of_another_authority_are_rejected() {
    let pki = Pki::new();
    let section = pki.tls_section();
    let gateway = TestGateway::spawn_with(|toml| toml.push_str(&section)).await;

    let rogue_ca = authority("rogue CA");
    let rogue = leaf(
        &rogue_ca,
        vec![uri("spiffe://acme.test/admin")],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let outcome = match pki.client(&gateway, Some(rogue), None).await {
        Err(_) => None,
        Ok(mut client) => Some(client.get_meeting(get(1)).await),
    };
    match outcome {
        None => {}
        Some(Err(status)) => assert_ne!(status.code(), Code::Ok),
        Some(Ok(_)) => panic!("a certificate of an unknown CA was accepted"),
    }
    assert_eq!(gateway.zoom.total_requests(SALES_ZOOM_ID), 0);
    gateway.stop().await;
}
