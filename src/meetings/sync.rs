//! The directory sync: every account's users, page by page through the Zoom choke point, into
//! the store and the in-memory directory; then what contradicts it.

use chrono::{DateTime, Utc};

use super::upstream::Target;
use super::{Meetings, RequestContext};
use crate::accounts::AccountName;
use crate::directory::Conflict;
use crate::error::Error;
use crate::routing::normalize_email;
use crate::store::DirectoryEntry;
use crate::zoom::ListUsers;

/// Users per `GET /users` page: Zoom allows up to 2000; fewer keeps each answer small.
const PAGE_SIZE: u32 = 300;
/// More pages than this from one account is a paging loop, not a directory.
const MAX_PAGES: usize = 10_000;

/// What one sync did.
#[derive(Clone, Debug)]
pub struct SyncReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub accounts: Vec<AccountSync>,
    pub conflicts: Vec<Conflict>,
}

/// One account's part of a sync.
#[derive(Clone, Debug)]
pub struct AccountSync {
    pub account: AccountName,
    /// Users read; what the directory holds of the account when `error` is `None`.
    pub users: usize,
    /// Why the account could not be read; the directory keeps what the last sync read of it.
    pub error: Option<String>,
}

impl Meetings {
    /// Reads every account's users into the directory, one sync at a time, as `cx` (an admin's
    /// request, or the gateway's own interval task); returns and keeps its report.
    pub async fn sync_directory(&self, cx: &RequestContext) -> SyncReport {
        let mut last = self.inner.sync.lock().await;
        let started_at = Utc::now();
        let mut accounts = Vec::new();
        let snapshot = self.inner.accounts.load_full();
        for account in snapshot.names() {
            let outcome = match self.read_users(cx, account).await {
                Ok(users) => self.keep_users(account, users).await,
                Err(error) => Err(error),
            };
            if let Err(error) = &outcome {
                tracing::warn!(%account, %error, "directory sync could not read the account");
            }
            accounts.push(AccountSync {
                account: account.clone(),
                users: *outcome.as_ref().unwrap_or(&0),
                error: outcome.err().map(|error| error.public_message()),
            });
        }
        // Accounts a reload removed list nobody any more.
        for gone in self.inner.routing.directory.accounts() {
            if snapshot.get(&gone).is_none()
                && let Err(error) = self.keep_users(&gone, Vec::new()).await
            {
                tracing::warn!(account = %gone, %error, "directory sync could not drop a removed account");
            }
        }
        let routing = &self.inner.routing;
        let conflicts = routing
            .directory
            .conflicts(&routing.rules.load(), &routing.overrides);
        for conflict in &conflicts {
            tracing::warn!(kind = conflict.kind(), "directory sync: {conflict}");
        }
        let report = SyncReport {
            started_at,
            finished_at: Utc::now(),
            accounts,
            conflicts,
        };
        *last = Some(report.clone());
        report
    }

    /// The report of the last sync, if one ran since start.
    pub async fn last_sync(&self) -> Option<SyncReport> {
        self.inner.sync.lock().await.clone()
    }

    async fn read_users(
        &self,
        cx: &RequestContext,
        account: &AccountName,
    ) -> Result<Vec<DirectoryEntry>, Error> {
        let synced_at = Utc::now();
        let mut users = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let call = ListUsers {
                page_size: PAGE_SIZE,
                next_page_token: next.as_deref(),
            };
            let page = self
                .inner
                .upstream
                .call(cx, account, Target::Account, None, call)
                .await?;
            users.extend(page.users.into_iter().filter_map(|user| {
                // Pending users have no id yet: nothing can be routed to them.
                Some(DirectoryEntry {
                    email: normalize_email(user.email.as_deref()?)?,
                    account: account.clone(),
                    user_id: user.id?,
                    synced_at,
                })
            }));
            match page.next_page_token {
                Some(token) => next = Some(token),
                None => return Ok(users),
            }
        }
        Err(Error::Internal(format!(
            "zoom's user list of `{account}` did not end after {MAX_PAGES} pages"
        )))
    }

    /// Stores what a sync read of `account` and puts it in the directory; returns how many.
    async fn keep_users(
        &self,
        account: &AccountName,
        users: Vec<DirectoryEntry>,
    ) -> Result<usize, Error> {
        self.inner
            .recorder
            .store()
            .replace_directory(account, &users)
            .await
            .map_err(|e| Error::StoreUnavailable(format!("writing the directory: {e}")))?;
        self.inner
            .routing
            .directory
            .replace_account(account, &users);
        Ok(users.len())
    }
}
