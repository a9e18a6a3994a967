//! In-memory state: accounts, users, issued tokens, meetings and per-account counters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use secrecy::SecretString;

use super::clock::Clock;
use super::config::{EmulatorConfig, UserStatus};
use super::faults::Faults;
use super::meeting::Meeting;
use super::ratelimit::{Label, RateLimiter};
use super::webhooks::WebhookSender;

/// The `/v2` operations the emulator serves; each is counted per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    GetUser,
    ListUsers,
    CreateMeeting,
    ListMeetings,
    GetMeeting,
    UpdateMeeting,
    DeleteMeeting,
    UpdateMeetingStatus,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::GetUser,
        Endpoint::ListUsers,
        Endpoint::CreateMeeting,
        Endpoint::ListMeetings,
        Endpoint::GetMeeting,
        Endpoint::UpdateMeeting,
        Endpoint::DeleteMeeting,
        Endpoint::UpdateMeetingStatus,
    ];

    /// Method and path template, as in Zoom's OpenAPI description.
    pub fn key(self) -> &'static str {
        match self {
            Endpoint::GetUser => "GET /users/{userId}",
            Endpoint::ListUsers => "GET /users",
            Endpoint::CreateMeeting => "POST /users/{userId}/meetings",
            Endpoint::ListMeetings => "GET /users/{userId}/meetings",
            Endpoint::GetMeeting => "GET /meetings/{meetingId}",
            Endpoint::UpdateMeeting => "PATCH /meetings/{meetingId}",
            Endpoint::DeleteMeeting => "DELETE /meetings/{meetingId}",
            Endpoint::UpdateMeetingStatus => "PUT /meetings/{meetingId}/status",
        }
    }

    /// The rate-limit label from the description (SPEC-M / SPEC-U).
    pub fn label(self) -> Label {
        match self {
            Endpoint::ListUsers | Endpoint::ListMeetings => Label::Medium,
            _ => Label::Light,
        }
    }

    /// Scopes that grant the operation: its classic (`x-macro-scopes`) and granular
    /// (`x-granular-scopes`) lists; any one of them is enough. Granular ones come first
    /// because the 4711 message lists them.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Endpoint::GetUser => &[
                "user:read:user",
                "user:read:user:admin",
                "user:read",
                "user:write",
                "user:read:admin",
                "user:write:admin",
                "user_profile",
            ],
            Endpoint::ListUsers => &[
                "user:read:list_users:admin",
                "user:read",
                "user:write",
                "user:read:admin",
                "user:write:admin",
            ],
            Endpoint::CreateMeeting => &[
                "meeting:write:meeting",
                "meeting:write:meeting:admin",
                "meeting:write:admin",
                "meeting:write",
            ],
            Endpoint::ListMeetings => &[
                "meeting:read:list_meetings",
                "meeting:read:list_meetings:admin",
                "meeting:read:admin",
                "meeting:read",
            ],
            Endpoint::GetMeeting => &[
                "meeting:read:meeting",
                "meeting:read:meeting:admin",
                "meeting:read",
                "meeting:read:admin",
            ],
            Endpoint::UpdateMeeting => &[
                "meeting:update:meeting",
                "meeting:update:meeting:admin",
                "meeting:write",
                "meeting:write:admin",
            ],
            Endpoint::DeleteMeeting => &[
                "meeting:delete:meeting",
                "meeting:delete:meeting:admin",
                "meeting:write:admin",
                "meeting:write",
            ],
            Endpoint::UpdateMeetingStatus => &[
                "meeting:update:status",
                "meeting:update:status:admin",
                "meeting:write:admin",
                "meeting:write",
            ],
        }
    }

    /// The granular scopes alone, as Zoom lists them in a 4711 message.
    pub fn granular_scopes(self) -> Vec<&'static str> {
        self.scopes()
            .iter()
            .copied()
            .filter(|s| {
                // Granular scopes are `service:action:data_claim[:level]`; classic ones are
                // `service:action[:admin|:master]`.
                let parts: Vec<&str> = s.split(':').collect();
                parts.len() == 4 || (parts.len() == 3 && !matches!(parts[2], "admin" | "master"))
            })
            .collect()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One configured user.
#[derive(Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub user_type: u8,
    pub status: UserStatus,
    pub first_name: String,
    pub last_name: String,
    pub timezone: String,
    /// The account the user is in now; the control API can move it.
    account_id: RwLock<Arc<str>>,
    /// Personal meeting id: 10 digits derived from the user's position.
    pub pmi: i64,
}

impl User {
    pub fn account_id(&self) -> Arc<str> {
        self.account_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Moves the user into another account, as an admin who removes it from one account and
    /// adds it to another would; its id and email stay.
    pub fn move_to(&self, account_id: Arc<str>) {
        *self.account_id.write().unwrap_or_else(|e| e.into_inner()) = account_id;
    }
}

/// One account: its app, users, faults and counters.
#[derive(Debug)]
pub struct AccountState {
    pub account_id: Arc<str>,
    pub account_number: i64,
    pub client_secret: SecretString,
    pub scopes: HashSet<String>,
    /// Space-separated, as the token response's `scope`.
    pub scope_string: String,
    /// Bumped by `revoke_tokens`; a token is valid only with the generation it was issued under.
    pub generation: AtomicU64,
    pub token_fetches: AtomicU64,
    requests: [AtomicU64; Endpoint::ALL.len()],
    faults: RwLock<Faults>,
    pub limiter: RateLimiter,
}

impl AccountState {
    pub fn count_request(&self, endpoint: Endpoint) {
        self.requests[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests per endpoint key, leaving out endpoints never called.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        Endpoint::ALL
            .iter()
            .map(|e| {
                (
                    e.key().to_owned(),
                    self.requests[e.index()].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn total_requests(&self) -> u64 {
        self.requests
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = faults.clamped();
    }
}

/// An issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub account: Arc<AccountState>,
    pub generation: u64,
    pub expires_at: DateTime<Utc>,
}

/// Everything the handlers share; one `Arc` of it per emulator.
#[derive(Debug)]
pub struct Shared {
    pub clock: Clock,
    pub token_ttl_secs: AtomicU64,
    /// False when the config turns rate limits off (benchmarks).
    pub enforce_rate_limits: bool,
    /// `http://127.0.0.1:PORT`: the `api_url` of tokens and the host of join/start URLs.
    pub base_url: String,
    pub accounts: HashMap<String, Arc<AccountState>>,
    pub account_by_client_id: HashMap<String, Arc<AccountState>>,
    /// Every user of every account, in configuration order; `GET /users` pages through those
    /// of one account.
    pub users: Vec<Arc<User>>,
    pub users_by_id: HashMap<String, Arc<User>>,
    /// Keys are lower-case: Zoom matches emails case-insensitively.
    pub users_by_email: HashMap<String, Arc<User>>,
    pub tokens: DashMap<String, IssuedToken>,
    pub meetings: DashMap<i64, Meeting>,
    /// Orders meetings by creation in listings.
    pub meeting_seq: AtomicU64,
    pub tracking_seq: AtomicU64,
    pub webhooks: Option<WebhookSender>,
}

impl Shared {
    pub fn new(config: &EmulatorConfig, base_url: String, webhooks: Option<WebhookSender>) -> Self {
        let mut accounts = HashMap::new();
        let mut account_by_client_id = HashMap::new();
        let mut users_by_id = HashMap::new();
        let mut users_by_email = HashMap::new();
        let mut all_users = Vec::new();
        for (account_index, account) in config.accounts.iter().enumerate() {
            let account_id: Arc<str> = account.account_id.as_str().into();
            let users: Vec<Arc<User>> = account
                .users
                .iter()
                .enumerate()
                .map(|(user_index, user)| {
                    Arc::new(User {
                        id: user.id.clone(),
                        email: user.email.clone(),
                        user_type: user.user_type,
                        status: user.status,
                        first_name: user.first_name.clone(),
                        last_name: user.last_name.clone(),
                        timezone: user.timezone.clone(),
                        account_id: RwLock::new(account_id.clone()),
                        pmi: 5_000_000_000 + (account_index as i64) * 100_000 + user_index as i64,
                    })
                })
                .collect();
            for user in &users {
                users_by_id.insert(user.id.clone(), user.clone());
                users_by_email.insert(user.email.to_ascii_lowercase(), user.clone());
            }
            all_users.extend(users);
            let state = Arc::new(AccountState {
                account_id: account_id.clone(),
                account_number: 10_000_000 + account_index as i64,
                client_secret: account.client_secret.clone(),
                scopes: account.scopes.iter().map(|s| s.trim().to_owned()).collect(),
                scope_string: account
                    .scopes
                    .iter()
                    .map(|s| s.trim())
                    .collect::<Vec<_>>()
                    .join(" "),
                generation: AtomicU64::new(0),
                token_fetches: AtomicU64::new(0),
                requests: Default::default(),
                faults: RwLock::new(Faults::default()),
                limiter: RateLimiter::new(account.plan),
            });
            account_by_client_id.insert(account.client_id.clone(), state.clone());
            accounts.insert(account.account_id.clone(), state);
        }
        Self {
            clock: Clock::default(),
            token_ttl_secs: AtomicU64::new(config.token_ttl_secs),
            enforce_rate_limits: config.enforce_rate_limits,
            base_url,
            accounts,
            account_by_client_id,
            users: all_users,
            users_by_id,
            users_by_email,
            tokens: DashMap::new(),
            meetings: DashMap::new(),
            meeting_seq: AtomicU64::new(0),
            tracking_seq: AtomicU64::new(0),
            webhooks,
        }
    }

    /// Finds a user of `account` by id or (case-insensitive) email; other accounts' users
    /// do not exist for it.
    pub fn find_user(&self, account: &AccountState, user_id: &str) -> Option<Arc<User>> {
        let user = match self.users_by_id.get(user_id) {
            Some(user) => Some(user.clone()),
            None => self
                .users_by_email
                .get(&user_id.to_ascii_lowercase())
                .cloned(),
        }?;
        (user.account_id() == account.account_id).then_some(user)
    }

    /// Drops expired tokens once the table grows, so a long benchmark does not leak.
    pub fn prune_tokens(&self, now: DateTime<Utc>) {
        if self.tokens.len() > 10_000 {
            self.tokens.retain(|_, t| t.expires_at > now);
        }
    }
}
