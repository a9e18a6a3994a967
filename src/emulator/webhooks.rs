//! Zoom-signed webhook delivery and the `endpoint.url_validation` challenge.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::meeting::{ALPHANUMERIC, random_string};

/// Zoom expects an answer within 3 seconds.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Computes `x-zm-signature`: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac(secret);
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Computes the `encryptedToken` of a URL validation: hex HMAC-SHA256 of the plain token.
pub fn encrypted_token(secret: &[u8], plain_token: &str) -> String {
    let mut mac = hmac(secret);
    mac.update(plain_token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn hmac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Why the URL validation challenge failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook is configured")]
    NotConfigured,
    #[error("webhook endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("webhook endpoint answered status {0}")]
    Status(u16),
    #[error("webhook endpoint answered a wrong or missing token")]
    WrongToken,
}

/// One event waiting for delivery.
struct Outgoing {
    event: &'static str,
    at: DateTime<Utc>,
    payload: Value,
}

/// Sends events to the configured URL, one at a time in the order they happened.
#[derive(Debug)]
pub struct WebhookSender {
    url: String,
    secret: SecretString,
    client: reqwest::Client,
    queue: mpsc::UnboundedSender<Outgoing>,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("event", &self.event)
            .finish()
    }
}

impl WebhookSender {
    /// Creates the sender and spawns its delivery task; the task ends with the sender.
    pub fn spawn(url: String, secret: SecretString) -> (Self, tokio::task::JoinHandle<()>) {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .unwrap_or_default();
        let (queue, mut rx) = mpsc::unbounded_channel::<Outgoing>();
        let delivered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let task = {
            let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
            let (delivered, failed) = (delivered.clone(), failed.clone());
            tokio::spawn(async move {
                while let Some(out) = rx.recv().await {
                    let body = json!({
                        "event": out.event,
                        "event_ts": out.at.timestamp_millis(),
                        "payload": out.payload,
                    });
                    match post(&client, &url, &secret, out.at, &body).await {
                        Ok(response) if response.status().is_success() => {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(response) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(event = out.event, status = %response.status(), "webhook rejected");
                        }
                        Err(error) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(event = out.event, %error, "webhook delivery failed");
                        }
                    }
                }
            })
        };
        let sender = Self {
            url,
            secret,
            client,
            queue,
            delivered,
            failed,
        };
        (sender, task)
    }

    /// Queues `event` with its `payload`, stamped with the emulator time `at`.
    pub fn send(&self, event: &'static str, at: DateTime<Utc>, payload: Value) {
        // The receiver only goes away at shutdown, when losing events is expected.
        let _ = self.queue.send(Outgoing { event, at, payload });
    }

    /// (delivered with 2xx, failed) counts so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Performs Zoom's `endpoint.url_validation` challenge against the URL.
    pub async fn validate_url(&self, at: DateTime<Utc>) -> Result<(), WebhookError> {
        let plain_token = random_string(22, ALPHANUMERIC);
        let body = json!({
            "payload": { "plainToken": plain_token },
            "event_ts": at.timestamp_millis(),
            "event": "endpoint.url_validation",
        });
        let response = post(&self.client, &self.url, &self.secret, at, &body)
            .await
            .map_err(|e| WebhookError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(WebhookError::Status(status.as_u16()));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|_| WebhookError::WrongToken)?;
        let expected = encrypted_token(self.secret.expose_secret().as_bytes(), &plain_token);
        let ok = answer.get("plainToken").and_then(Value::as_str) == Some(plain_token.as_str())
            && answer.get("encryptedToken").and_then(Value::as_str) == Some(expected.as_str());
        if ok {
            Ok(())
        } else {
            Err(WebhookError::WrongToken)
        }
    }
}

/// Posts one signed JSON body; the signature covers exactly the bytes sent.
async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &SecretString,
    at: DateTime<Utc>,
    body: &Value,
) -> Result<reqwest::Response, reqwest::Error> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let timestamp = at.timestamp();
    let signature = signature(secret.expose_secret().as_bytes(), timestamp, &bytes);
    client
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("user-agent", "Zoom Marketplace/1.0a")
        .header("x-zm-request-timestamp", timestamp.to_string())
        .header("x-zm-signature", signature)
        .header("x-zm-request-id", random_string(22, ALPHANUMERIC))
        .body(bytes)
        .send()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("key", "v0:1:{}"), computed independently with Python's hmac module.
        let expected = "v0=236beeb373582a83005d170cf7966f7bc1bc3d8e39280320817c04d7ea3fab6e";
        assert_eq!(signature(b"key", 1, b"{}"), expected);
        assert_ne!(signature(b"key", 2, b"{}"), expected);
    }
}
