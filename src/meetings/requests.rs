//! Creates that may safely be sent again (AIP-155): a create with a `request_id` claims that id
//! in the store before it goes to Zoom. The same id from the same caller then answers with the
//! meeting the first try made, even after a restart, and the same id with another body is
//! refused.
//!
//! A try whose answer was lost (the connection dropped after Zoom may have applied it) leaves
//! its claim `unknown`. The next try with the id first looks among the host's meetings in Zoom
//! for one matching what was sent, created since the claim and not known to the ledger, and
//! creates again only if there is none.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};

use super::upstream::Target;
use super::{MeetingView, Meetings, RequestContext, UserRef, lowercase_email, zoom_user_of};
use crate::accounts::AccountName;
use crate::error::Error;
use crate::store::{
    AuditRecord, Claim, CreateEnd, CreateRequest, LedgerChange, MeetingRecord, Outcome,
};
use crate::zoom::{ListMeetings, ListMeetingsOf, MeetingListKind, ZoomMeeting};

/// Locks that keep two tries with the same id in this process one after the other.
const STRIPES: usize = 64;
/// Pages of the host's meetings a lookup reads at most.
const MAX_PAGES: usize = 10;
/// How much earlier than its claim Zoom's clock may date the meeting a try made.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(2);
/// When a try with the same id is running elsewhere, come back after this.
const RUNNING_RETRY: Duration = Duration::from_secs(1);

/// The creates with a request id of one gateway.
pub(super) struct CreateRequests {
    stripes: [Mutex<()>; STRIPES],
    /// Claims are kept this long (`request_id_retention_hours`).
    pub retention: Duration,
    /// A claim still running after this died with its try (the request timeout and then some).
    pub stale_after: Duration,
}

impl CreateRequests {
    pub(super) fn new(retention: Duration, request_timeout: Duration) -> Self {
        Self {
            stripes: std::array::from_fn(|_| Mutex::new(())),
            retention,
            stale_after: request_timeout + Duration::from_secs(30),
        }
    }

    async fn turn(&self, request: &CreateRequest) -> MutexGuard<'_, ()> {
        let digest = Sha256::digest(format!("{}\n{}", request.caller, request.request_id));
        self.stripes[usize::from(digest[0]) % STRIPES].lock().await
    }
}

impl Meetings {
    /// Creates a meeting at most once per `request_id` of the caller (see the module docs).
    pub(super) async fn create_once(
        &self,
        cx: &RequestContext,
        user: UserRef,
        body: Map<String, Value>,
        request_id: String,
    ) -> Result<MeetingView, Error> {
        let requests = &self.inner.requests;
        let now = Utc::now();
        let request = CreateRequest {
            caller: cx.caller.name.clone(),
            request_id,
            body_sha256: body_digest(&user, &body),
            at: now,
        };
        let _turn = requests.turn(&request).await;
        let expired_before = now - requests.retention;
        let stale_before = now - requests.stale_after;
        let claim = self
            .inner
            .recorder
            .store()
            .claim_create(&request, expired_before, stale_before)
            .await
            .map_err(|e| Error::StoreUnavailable(format!("claiming the request id: {e}")))?;
        match claim {
            Claim::Claimed => {}
            Claim::OtherBody => {
                return Err(Error::invalid(
                    "request_id",
                    "this caller used it for a different create",
                ));
            }
            Claim::Running { .. } => {
                return Err(Error::CreateInProgress {
                    retry_after: RUNNING_RETRY,
                });
            }
            Claim::Done {
                account,
                meeting_id,
            } => return self.replay(cx, account, meeting_id).await,
            Claim::Unknown { since } => {
                if let Some(view) = self.find_created(cx, &user, &body, since).await? {
                    let end = CreateEnd::Done {
                        account: view.account.clone(),
                        meeting_id: view.meeting.id,
                    };
                    self.finish(&request, end).await;
                    return Ok(view);
                }
            }
        }
        let result = self.create_now(cx, user, body, true).await;
        let end = match &result {
            Ok(view) => CreateEnd::Done {
                account: view.account.clone(),
                meeting_id: view.meeting.id,
            },
            Err(Error::CreateOutcomeUnknown { .. } | Error::NotRecorded { .. }) => {
                CreateEnd::Unknown
            }
            Err(_) => CreateEnd::Failed,
        };
        self.finish(&request, end).await;
        result
    }

    async fn finish(&self, request: &CreateRequest, end: CreateEnd) {
        let store = self.inner.recorder.store();
        if let Err(error) = store
            .finish_create(&request.caller, &request.request_id, end)
            .await
        {
            // The claim stays `running`, then `unknown` once stale: a retry looks in Zoom.
            tracing::warn!(%error, "could not record how a create with a request id ended");
        }
    }

    /// Answers a repeated create with the meeting the first try made, as Zoom has it now and as
    /// this caller may see it.
    async fn replay(
        &self,
        cx: &RequestContext,
        account: AccountName,
        meeting_id: i64,
    ) -> Result<MeetingView, Error> {
        let record = self.ledger_entry(meeting_id).await?;
        let host = record.as_ref().map(|r| r.host_email.clone());
        let meeting = self
            .fetch_routed(cx, &account, host.as_deref(), meeting_id, None)
            .await?;
        let host_email = host.unwrap_or_else(|| lowercase_email(meeting.host_email.as_deref()));
        Ok(self.view(cx, account, &host_email, meeting))
    }

    /// Looks among the host's meetings for the one a try whose answer was lost may have made:
    /// what was sent (topic, type, duration, agenda, a UTC start time), created since the claim
    /// (give or take the clocks), and not already known to the ledger as another create's.
    /// A found meeting is recorded as that create's outcome.
    async fn find_created(
        &self,
        cx: &RequestContext,
        user: &UserRef,
        body: &Map<String, Value>,
        since: DateTime<Utc>,
    ) -> Result<Option<MeetingView>, Error> {
        let mut progress = super::audit::Progress::default();
        let target = self.resolve_user(cx, user, &mut progress).await?;
        let zoom_user = zoom_user_of(user, &target);
        let mut query = ListMeetings {
            kind: MeetingListKind::Scheduled,
            page_size: Some(300),
            next_page_token: None,
        };
        for _ in 0..MAX_PAGES {
            let call = ListMeetingsOf {
                user: &zoom_user,
                query: &query,
            };
            let page = self
                .inner
                .upstream
                .call(cx, &target.account, Target::User(user.key()), None, call)
                .await?;
            for candidate in page.meetings {
                if !sent_as(body, &candidate, since) {
                    continue;
                }
                if self.ledger_entry(candidate.id).await?.is_some() {
                    continue;
                }
                let host_email = target.email.clone();
                self.record_found(
                    cx,
                    &target.account,
                    &target.user_id,
                    &host_email,
                    &candidate,
                )
                .await;
                let host = Some(host_email.as_str());
                let meeting = self
                    .fetch_routed(cx, &target.account, host, candidate.id, None)
                    .await?;
                return Ok(Some(self.view(cx, target.account, &host_email, meeting)));
            }
            match page.next_page_token.filter(|token| !token.is_empty()) {
                Some(token) => query.next_page_token = Some(token),
                None => break,
            }
        }
        Ok(None)
    }

    /// Writes what a lookup found: the meeting into the ledger, and an audit record that says
    /// the create whose outcome was unknown had been applied.
    async fn record_found(
        &self,
        cx: &RequestContext,
        account: &AccountName,
        host_id: &str,
        host_email: &str,
        meeting: &ZoomMeeting,
    ) {
        let record = MeetingRecord {
            meeting_id: meeting.id,
            account: account.clone(),
            host_id: meeting.host_id.clone().unwrap_or(host_id.to_owned()),
            host_email: host_email.to_owned(),
            created_by: cx.caller.name.clone(),
            created_at: Utc::now(),
        };
        self.inner.ledger.insert(Arc::new(record.clone()));
        let recorder = &self.inner.recorder;
        recorder.ledger(LedgerChange::Record(record)).await;
        recorder
            .append(AuditRecord {
                id: 0,
                at: Utc::now(),
                caller: cx.caller.name.clone(),
                operation: "meetings.create".into(),
                account: Some(account.to_string()),
                user: Some(host_email.to_owned()),
                meeting_id: Some(meeting.id),
                outcome: Outcome::Allowed,
                detail: Some("found in zoom: an earlier try with this request id made it".into()),
            })
            .await;
    }
}

/// Hex SHA-256 of the host and Zoom's create body: what "the same create" means.
fn body_digest(user: &UserRef, body: &Map<String, Value>) -> String {
    let mut hasher = Sha256::new();
    let (kind, key) = match user {
        UserRef::Email(email) => ("email", email),
        UserRef::Id(id) => ("id", id),
    };
    hasher.update(format!("{kind}:{key}\n"));
    // serde_json's map is ordered by key, so equal bodies serialize alike.
    hasher.update(Value::Object(body.clone()).to_string());
    hex::encode(hasher.finalize())
}

/// Whether `meeting` (an item of Zoom's meeting list) is what `body` asked for and was made
/// after `since`. Zoom's defaults fill what the body left out.
fn sent_as(body: &Map<String, Value>, meeting: &ZoomMeeting, since: DateTime<Utc>) -> bool {
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let number = |key: &str| body.get(key).and_then(Value::as_i64);
    let created_after = meeting
        .created_at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| at.to_utc() >= since - CLOCK_SKEW);
    let agenda = text("agenda").unwrap_or_default();
    let listed_agenda = meeting.agenda.as_deref().unwrap_or_default();
    // Zoom lists only the first 250 characters of an agenda.
    let agenda_matches = agenda.chars().take(250).eq(listed_agenda.chars());
    // A start time given in UTC is compared; one in the meeting's time zone is left out.
    let start_matches = match text("start_time") {
        Some(start) if start.ends_with('Z') => {
            let at = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc());
            at(start).is_some() && at(start) == meeting.start_time.as_deref().and_then(at)
        }
        _ => true,
    };
    created_after
        && agenda_matches
        && start_matches
        && meeting.topic.as_deref() == Some(text("topic").unwrap_or("Zoom Meeting"))
        && meeting.kind == Some(number("type").unwrap_or(2))
        && meeting.duration == Some(number("duration").unwrap_or(60))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn listed(item: Value) -> ZoomMeeting {
        serde_json::from_value(item).unwrap()
    }

    #[test]
    fn a_listed_meeting_matches_what_was_sent_and_nothing_else() {
        let since = DateTime::parse_from_rfc3339("2030-01-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let body = json!({"topic": "Standup", "type": 2, "start_time": "2030-01-02T09:00:00Z",
            "duration": 15, "agenda": "Daily"});
        let body = body.as_object().unwrap();
        let item = json!({"id": 1, "topic": "Standup", "type": 2, "duration": 15,
            "start_time": "2030-01-02T09:00:00Z", "agenda": "Daily",
            "created_at": "2030-01-01T10:00:01Z"});
        assert!(sent_as(body, &listed(item.clone()), since));

        for (key, value) in [
            ("topic", json!("Retro")),
            ("duration", json!(30)),
            ("start_time", json!("2030-01-02T10:00:00Z")),
            ("agenda", json!("Weekly")),
            ("created_at", json!("2030-01-01T09:50:00Z")),
        ] {
            let mut other = item.clone();
            other[key] = value;
            assert!(!sent_as(body, &listed(other), since), "{key}");
        }
        // Zoom's defaults stand in for what the body left out.
        let bare = json!({"id": 2, "topic": "Zoom Meeting", "type": 2, "duration": 60,
            "created_at": "2030-01-01T10:00:01Z"});
        assert!(sent_as(&Map::new(), &listed(bare), since));
    }

    #[test]
    fn the_same_create_has_the_same_digest() {
        let user = UserRef::Email("ann@x.test".into());
        let a = json!({"topic": "t", "duration": 5});
        let b = json!({"duration": 5, "topic": "t"});
        let digest = |v: &Value| body_digest(&user, v.as_object().unwrap());
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&json!({"topic": "t", "duration": 6})));
        let by_id = body_digest(&UserRef::Id("ann@x.test".into()), a.as_object().unwrap());
        assert_ne!(digest(&a), by_id);
    }
}
