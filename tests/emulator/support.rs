//! Test harness: an emulator on port 0, a reqwest client, and OpenAPI checks on every exchange.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use zoomgate::emulator::{Emulator, EmulatorConfig};

/// Accounts every test gets: `acc-a` (pro, granular scopes), `acc-b` (business),
/// `acc-free` (free plan) and `acc-limited` (only `user:read:user:admin`, classic meeting read).
pub const CONFIG: &str = r#"
token_ttl_secs = 3600

[[accounts]]
account_id = "acc-a"
client_id = "client-a"
client_secret = "secret-a"
plan = "pro"
scopes = ["meeting:write:meeting:admin", "meeting:read:meeting:admin", "meeting:update:meeting:admin",
          "meeting:delete:meeting:admin", "meeting:read:list_meetings:admin", "meeting:update:status:admin",
          "user:read:user:admin", "user:read:list_users:admin"]
[[accounts.users]]
id = "ua-alice"
email = "alice@a.test"
first_name = "Alice"
last_name = "A"
timezone = "America/New_York"
[[accounts.users]]
id = "ua-bob"
email = "bob@a.test"
first_name = "Bob"
[[accounts.users]]
id = "ua-cleo"
email = "cleo@a.test"
type = 1
[[accounts.users]]
id = "ua-pending"
email = "pending@a.test"
status = "pending"

[[accounts]]
account_id = "acc-b"
client_id = "client-b"
client_secret = "secret-b"
plan = "business"
scopes = ["meeting:write:meeting:admin", "meeting:read:meeting:admin", "user:read:user:admin"]
[[accounts.users]]
id = "ub-carol"
email = "carol@b.test"

[[accounts]]
account_id = "acc-free"
client_id = "client-free"
client_secret = "secret-free"
plan = "free"
scopes = ["user:read:user:admin", "user:read:list_users:admin"]
[[accounts.users]]
id = "uf-fred"
email = "fred@free.test"

[[accounts]]
account_id = "acc-limited"
client_id = "client-limited"
client_secret = "secret-limited"
plan = "pro"
scopes = ["user:read:user:admin", "meeting:read:admin"]
[[accounts.users]]
id = "ul-lena"
email = "lena@limited.test"
"#;

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A running emulator and a client for it.
pub struct TestZoom {
    pub emu: Emulator,
    pub http: reqwest::Client,
}

/// One answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> Option<i64> {
        self.body.get("code").and_then(Value::as_i64)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

pub async fn spawn() -> TestZoom {
    spawn_with(CONFIG).await
}

pub async fn spawn_with(config: &str) -> TestZoom {
    let config = EmulatorConfig::from_toml(config).expect("test config is valid");
    let emu = Emulator::start(config, loopback())
        .await
        .expect("emulator starts");
    TestZoom {
        emu,
        http: client(),
    }
}

pub fn credentials(account: &str) -> (&'static str, &'static str) {
    match account {
        "acc-a" => ("client-a", "secret-a"),
        "acc-b" => ("client-b", "secret-b"),
        "acc-free" => ("client-free", "secret-free"),
        "acc-limited" => ("client-limited", "secret-limited"),
        other => panic!("no test credentials for {other}"),
    }
}

impl TestZoom {
    /// Requests a token with a form body, as the gateway does.
    pub async fn token_response(&self, account: &str) -> reqwest::Response {
        let (id, secret) = credentials(account);
        self.http
            .post(self.emu.oauth_url())
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "account_credentials"),
                ("account_id", account),
            ])
            .send()
            .await
            .expect("token request")
    }

    pub async fn token(&self, account: &str) -> String {
        let response = self.token_response(account).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("token json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Calls `/v2{path}` and checks the exchange against operation `op` of Zoom's OpenAPI
    /// description: the request body against its request schema, a success body against its
    /// response schema, and any error body against Zoom's error shape.
    pub async fn call(&self, token: &str, op: &str, path: &str, body: Option<&Value>) -> Answer {
        if let Some(body) = body {
            spec().check_request(op, body);
        }
        self.call_unchecked(token, op, path, body).await
    }

    /// Like [`call`](Self::call) but sends the body unchecked: for invalid bodies on purpose.
    pub async fn call_unchecked(
        &self,
        token: &str,
        op: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let method = Method::from_bytes(op.split(' ').next().expect("op has a method").as_bytes())
            .expect("valid method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.emu.api_url()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = read(request.send().await.expect("api request")).await;
        spec().check_response(op, &answer);
        answer
    }

    pub async fn create_meeting(&self, token: &str, user: &str, body: &Value) -> Value {
        let answer = self
            .call(
                token,
                "POST /users/{userId}/meetings",
                &format!("/users/{user}/meetings"),
                Some(body),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body
    }

    /// Calls a control endpoint.
    pub async fn control(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}/_emulator{path}", self.emu.base_url()));
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.expect("control request")).await
    }
}

pub async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    Answer {
        status,
        headers,
        body,
    }
}

pub fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("valid date")
        .with_timezone(&chrono::Utc)
}

// === OpenAPI checks ===

/// Compiled validators of the operations in `tests/data/zoom-openapi-excerpt.json`.
pub struct Spec {
    requests: HashMap<String, jsonschema::Validator>,
    responses: HashMap<String, (u16, jsonschema::Validator)>,
    error: jsonschema::Validator,
    webhooks: HashMap<String, jsonschema::Validator>,
}

/// Converts an OpenAPI 3.0 schema object to JSON Schema, mechanically: `nullable: true`
/// becomes a `"null"` alternative in `type` (JSON Schema has no `nullable`); `example` and
/// other annotations are ignored by validators and left as they are.
pub fn openapi_to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, v)| (k.clone(), openapi_to_json_schema(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type")
            {
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(openapi_to_json_schema).collect()),
        other => other.clone(),
    }
}

fn load(file: &str) -> Value {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("spec excerpt readable");
    serde_json::from_str(&text).expect("spec excerpt is JSON")
}

/// OpenAPI 3.0 schemas are a JSON Schema draft-4 dialect.
fn draft4(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&openapi_to_json_schema(schema))
        .expect("schema compiles")
}

pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let operations = load("zoom-openapi-excerpt.json");
        let mut requests = HashMap::new();
        let mut responses = HashMap::new();
        for (op, entry) in operations["operations"].as_object().expect("operations") {
            if let Some(schema) = entry.get("request_schema") {
                requests.insert(op.clone(), draft4(schema));
            }
            let status = entry["success_status"].as_u64().expect("status") as u16;
            if let Some(schema) = entry.get("response_schema") {
                responses.insert(op.clone(), (status, draft4(schema)));
            }
        }
        // Zoom's error shape (DOC-ERR): {"code": int, "message": string, "errors"?: [{field, message}]}.
        let error = draft4(&serde_json::json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"]}}
            }
        }));
        // The webhook description is OpenAPI 3.1, i.e. JSON Schema 2020-12.
        let events = load("zoom-webhooks-excerpt.json");
        let webhooks = events["events"]
            .as_object()
            .expect("events")
            .iter()
            .map(|(name, schema)| {
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(schema)
                    .expect("webhook schema compiles");
                (name.clone(), validator)
            })
            .collect();
        Spec {
            requests,
            responses,
            error,
            webhooks,
        }
    })
}

fn errors_of(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

impl Spec {
    pub fn request_errors(&self, op: &str, body: &Value) -> Vec<String> {
        let validator = self
            .requests
            .get(op)
            .unwrap_or_else(|| panic!("no request schema for {op}"));
        errors_of(validator, body)
    }

    pub fn response_errors(&self, op: &str, body: &Value) -> Vec<String> {
        let (_, validator) = self
            .responses
            .get(op)
            .unwrap_or_else(|| panic!("no response schema for {op}"));
        errors_of(validator, body)
    }

    pub fn webhook_errors(&self, event: &str, body: &Value) -> Vec<String> {
        let validator = self
            .webhooks
            .get(event)
            .unwrap_or_else(|| panic!("no schema for {event}"));
        errors_of(validator, body)
    }

    fn check_request(&self, op: &str, body: &Value) {
        if self.requests.contains_key(op) {
            let errors = self.request_errors(op, body);
            assert!(
                errors.is_empty(),
                "request body of {op} breaks the spec: {errors:?}"
            );
        }
    }

    fn check_response(&self, op: &str, answer: &Answer) {
        if answer.status.is_success() {
            match self.responses.get(op) {
                Some((status, validator)) => {
                    assert_eq!(answer.status.as_u16(), *status, "{op} success status");
                    let errors = errors_of(validator, &answer.body);
                    assert!(
                        errors.is_empty(),
                        "response of {op} breaks the spec: {errors:?}"
                    );
                }
                None => assert_eq!(answer.body, Value::Null, "{op} answers without a body"),
            }
        } else {
            let errors = errors_of(&self.error, &answer.body);
            assert!(
                errors.is_empty(),
                "error body of {op} is not Zoom's shape: {errors:?}"
            );
        }
    }
}

// === webhook receiver ===

/// One received webhook request.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// A webhook endpoint on port 0 that records what it gets and answers URL validation with
/// `secret` (which may differ from the emulator's on purpose).
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub notify: Arc<tokio::sync::Notify>,
}

impl Receiver {
    pub async fn start(secret: &'static str) -> Receiver {
        use axum::http::HeaderMap;
        let received = Arc::new(Mutex::new(Vec::new()));
        let notify = Arc::new(tokio::sync::Notify::new());
        let (store, wake) = (received.clone(), notify.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (store, wake) = (store.clone(), wake.clone());
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    store.lock().expect("lock").push(Received {
                        headers,
                        body: body.to_vec(),
                    });
                    wake.notify_one();
                    if value["event"] == "endpoint.url_validation" {
                        let plain = value["payload"]["plainToken"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        let encrypted = hmac_hex(secret.as_bytes(), plain.as_bytes());
                        axum::Json(
                            serde_json::json!({"plainToken": plain, "encryptedToken": encrypted}),
                        )
                    } else {
                        axum::Json(serde_json::json!({}))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(loopback())
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            received,
            notify,
        }
    }

    /// Waits (bounded) until `n` requests have arrived and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.notify.notified();
            {
                let received = self.received.lock().expect("lock");
                if received.len() >= n {
                    return received.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "only {} of {n} webhooks arrived",
                    self.received.lock().expect("lock").len()
                );
            }
        }
    }
}

/// HMAC-SHA256 in hex, computed here independently of the emulator's code.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}
