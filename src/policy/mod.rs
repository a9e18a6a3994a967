//! Callers, their identities and grants: who may touch which users of which accounts, doing what.
//!
//! Deny by default: a request is allowed only when one grant of the authenticated caller covers
//! the account, the user and the operation (OWASP API1, object-level authorization). Pure logic:
//! the gRPC layer authenticates with [`Policy::caller_by_api_key`] / [`Policy::caller_by_sans`]
//! and asks [`Caller::allows`] before any upstream call.

mod identity;
mod selector;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::accounts::{AccountName, Accounts};

pub use identity::{Identity, hash_api_key, sans_of_certificate};
pub use selector::SelectorError;
use selector::{UserEmail, UserSelector};

/// Largest `callers[].weight`: enough spread for any fair share, small enough that a share
/// never rounds to nothing.
pub const MAX_WEIGHT: u32 = 1000;

// === config ===

/// A named set of user selectors (`[[user_groups]]`), used in grants as `group:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUserGroup {
    /// `[a-z0-9-]`, unique among groups.
    pub name: String,
    /// Any user selector except `group:`; groups do not nest.
    #[serde(default)]
    pub members: Vec<String>,
}

/// One calling service (`[[callers]]`) as written in the config.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaller {
    /// `[a-z0-9-]`, unique; it names the caller in logs, audit and metrics.
    pub name: String,
    /// Hex SHA-256 of each API key the caller may present; keys themselves never enter the config.
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    /// URI or DNS SANs of the caller's client certificate, for mTLS.
    #[serde(default)]
    pub mtls_sans: Vec<String>,
    /// What the caller may do; at least one, unless the caller has an admin role.
    #[serde(default)]
    pub grants: Vec<RawGrant>,
    /// `"read"` or `"write"`: access to the Admin API (see [`AdminRole`]).
    #[serde(default)]
    pub admin: Option<String>,
    /// This caller's weight in the fair share of each account's Zoom budget, 1 to 1000
    /// (default 1): a caller of weight 2 gets twice the share of one of weight 1 when both wait.
    #[serde(default)]
    pub weight: Option<u32>,
}

/// Shows counts instead of the key hashes: they are not secrets, but have no place in logs.
impl fmt::Debug for RawCaller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawCaller")
            .field("name", &self.name)
            .field(
                "api_key_sha256",
                &format_args!("[{} hashes]", self.api_key_sha256.len()),
            )
            .field("mtls_sans", &self.mtls_sans)
            .field("grants", &self.grants)
            .field("admin", &self.admin)
            .field("weight", &self.weight)
            .finish()
    }
}

/// One grant (`[[callers.grants]]`): the operations allowed on some users of some accounts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    /// Account names, or `["*"]` for every configured account.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// User selectors, or `["*"]` for every user.
    #[serde(default)]
    pub users: Vec<String>,
    /// Operation names, or `["*"]` for all of them.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Sensitive meeting fields shown in responses; none by default.
    #[serde(default)]
    pub fields: Vec<String>,
}

// === operations and fields ===

/// What a caller may do through the Admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminRole {
    /// List and explain: accounts, routes, audit, explain.
    Read,
    /// Also change routes and start syncs.
    Write,
}

impl AdminRole {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "read" => Some(AdminRole::Read),
            "write" => Some(AdminRole::Write),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Read => "read",
            AdminRole::Write => "write",
        }
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request does to a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Read,
    List,
    Create,
    Update,
    Delete,
    End,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Read,
        Operation::List,
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::End,
    ];

    /// The config and log name, e.g. `"read"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::End => "end",
        }
    }

    /// Parses a config name; exact and lowercase, like every config keyword.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A meeting field hidden from callers unless a grant names it: each one lets its holder
/// start the meeting as host or join it without an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SensitiveField {
    StartUrl,
    Password,
}

impl SensitiveField {
    pub const ALL: [SensitiveField; 2] = [SensitiveField::StartUrl, SensitiveField::Password];

    /// The config name, which is also Zoom's JSON field name.
    pub fn as_str(self) -> &'static str {
        match self {
            SensitiveField::StartUrl => "start_url",
            SensitiveField::Password => "password",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for SensitiveField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of sensitive fields; `Copy`, so a decision allocates nothing.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u8);

impl FieldSet {
    pub const EMPTY: FieldSet = FieldSet(0);

    pub fn contains(self, field: SensitiveField) -> bool {
        self.0 & field.bit() != 0
    }

    #[must_use]
    pub fn with(self, field: SensitiveField) -> Self {
        Self(self.0 | field.bit())
    }

    #[must_use]
    pub fn union(self, other: FieldSet) -> Self {
        Self(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = SensitiveField> {
        SensitiveField::ALL
            .into_iter()
            .filter(move |field| self.contains(*field))
    }
}

impl FromIterator<SensitiveField> for FieldSet {
    fn from_iter<I: IntoIterator<Item = SensitiveField>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl fmt::Debug for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

// === errors ===

/// A rejected policy config: where (`callers[1].grants[0].operations[2]`) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct PolicyError {
    pub path: String,
    pub kind: PolicyErrorKind,
}

/// What is wrong at a [`PolicyError`]'s path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyErrorKind {
    #[error("must not be empty")]
    Empty,
    #[error("\"*\" must be the only entry")]
    WildcardNotAlone,
    #[error("invalid name {0:?} (1-63 of a-z, 0-9, '-')")]
    InvalidName(String),
    #[error("duplicate caller name {0:?}")]
    DuplicateCaller(String),
    #[error("duplicate group name {0:?}")]
    DuplicateGroup(String),
    #[error("no identity: set api_key_sha256 or mtls_sans")]
    NoIdentity,
    #[error("expected 64 hex characters")]
    InvalidKeyHash,
    /// Such an entry would let a request with an empty bearer token in.
    #[error("this is the hash of the empty key")]
    EmptyKeyHash,
    #[error("invalid SAN {san:?}: {reason}")]
    InvalidSan { san: String, reason: &'static str },
    /// Names the first occurrence by path, not by value, so a key hash is never echoed.
    #[error("identity already used at {0}")]
    DuplicateIdentity(String),
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    #[error("unknown operation {0:?}")]
    UnknownOperation(String),
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("unknown admin role {0:?} (expected \"read\" or \"write\")")]
    UnknownAdminRole(String),
    #[error("weight {0} is out of range (1 to {MAX_WEIGHT})")]
    InvalidWeight(u32),
    #[error("bad user selector {selector:?}: {reason}")]
    BadSelector {
        selector: String,
        reason: SelectorError,
    },
}

fn fail<T>(path: String, kind: PolicyErrorKind) -> Result<T, PolicyError> {
    Err(PolicyError { path, kind })
}

// === impl Policy ===

/// The policy in force, swapped whole when the config is reloaded; a request keeps the caller
/// (and so the grants) it was authenticated with.
pub type LivePolicy = Arc<arc_swap::ArcSwap<Policy>>;

/// Validated callers and grants, with indexes for authenticating a request.
pub struct Policy {
    /// In config order.
    callers: Box<[Arc<Caller>]>,
    /// SHA-256 of each API key to its caller's index: one lookup per request, whatever the
    /// number of callers.
    by_key_hash: HashMap<[u8; 32], usize>,
    /// Normalized SAN (see [`identity::normalize_san`]) to caller index.
    by_san: HashMap<String, usize>,
}

/// Lists caller names only: key hashes stay out of logs.
impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field(
                "callers",
                &self.callers.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Validates and compiles the `[[callers]]` and `[[user_groups]]` tables against the
    /// configured accounts; the first problem found is returned with its field path.
    pub fn build(
        callers: &[RawCaller],
        groups: &[RawUserGroup],
        accounts: &Accounts,
    ) -> Result<Policy, PolicyError> {
        let groups = build_groups(groups)?;
        let mut compiled = Vec::with_capacity(callers.len());
        let mut names = HashSet::new();
        let mut by_key_hash = HashMap::new();
        let mut hash_paths: HashMap<[u8; 32], String> = HashMap::new();
        let mut by_san = HashMap::new();
        let mut san_paths: HashMap<String, String> = HashMap::new();

        for (index, raw) in callers.iter().enumerate() {
            let path = format!("callers[{index}]");
            if !is_valid_name(&raw.name) {
                return fail(
                    format!("{path}.name"),
                    PolicyErrorKind::InvalidName(raw.name.clone()),
                );
            }
            if !names.insert(raw.name.as_str()) {
                return fail(
                    format!("{path}.name"),
                    PolicyErrorKind::DuplicateCaller(raw.name.clone()),
                );
            }
            if raw.api_key_sha256.is_empty() && raw.mtls_sans.is_empty() {
                return fail(path, PolicyErrorKind::NoIdentity);
            }
            for (i, text) in raw.api_key_sha256.iter().enumerate() {
                let here = format!("{path}.api_key_sha256[{i}]");
                let Some(hash) = identity::parse_key_hash(text) else {
                    return fail(here, PolicyErrorKind::InvalidKeyHash);
                };
                if hash == identity::digest_api_key("") {
                    return fail(here, PolicyErrorKind::EmptyKeyHash);
                }
                if let Some(first) = hash_paths.get(&hash) {
                    return fail(here, PolicyErrorKind::DuplicateIdentity(first.clone()));
                }
                hash_paths.insert(hash, here);
                by_key_hash.insert(hash, index);
            }
            for (i, san) in raw.mtls_sans.iter().enumerate() {
                let here = format!("{path}.mtls_sans[{i}]");
                if let Some(reason) = identity::san_problem(san) {
                    let san = san.clone();
                    return fail(here, PolicyErrorKind::InvalidSan { san, reason });
                }
                let normalized = identity::normalize_san(san);
                if let Some(first) = san_paths.get(&normalized) {
                    return fail(here, PolicyErrorKind::DuplicateIdentity(first.clone()));
                }
                san_paths.insert(normalized.clone(), here);
                by_san.insert(normalized, index);
            }
            let admin = match raw.admin.as_deref() {
                None => None,
                Some(role) => Some(AdminRole::parse(role).ok_or_else(|| PolicyError {
                    path: format!("{path}.admin"),
                    kind: PolicyErrorKind::UnknownAdminRole(role.to_owned()),
                })?),
            };
            // An admin-only caller (the platform team's CLI) needs no meeting grant.
            if raw.grants.is_empty() && admin.is_none() {
                return fail(format!("{path}.grants"), PolicyErrorKind::Empty);
            }
            let grants = raw
                .grants
                .iter()
                .enumerate()
                .map(|(i, grant)| {
                    build_grant(grant, &format!("{path}.grants[{i}]"), &groups, accounts)
                })
                .collect::<Result<Box<[Grant]>, PolicyError>>()?;
            let weight = raw.weight.unwrap_or(1);
            if !(1..=MAX_WEIGHT).contains(&weight) {
                return fail(
                    format!("{path}.weight"),
                    PolicyErrorKind::InvalidWeight(weight),
                );
            }
            let mut caller = Caller::new(raw.name.clone(), index, grants);
            caller.admin = admin;
            caller.weight = weight;
            compiled.push(Arc::new(caller));
        }

        Ok(Policy {
            callers: compiled.into(),
            by_key_hash,
            by_san,
        })
    }

    /// Identifies the caller behind a request, for any front end: by a SAN of its verified
    /// client certificate first, else by its API key.
    pub fn authenticate(&self, identity: &Identity<'_>) -> Option<Arc<Caller>> {
        if let Some(certificate) = identity.certificate {
            let sans = sans_of_certificate(certificate);
            if let Some(caller) = self.caller_by_sans(&sans) {
                return Some(caller);
            }
        }
        self.caller_by_api_key(identity.bearer_token()?)
    }

    /// Finds the caller owning the API key `presented` (the raw key from
    /// `authorization: Bearer <key>`).
    ///
    /// The key is hashed, and the SHA-256 is looked up in a hash map: the cost does not grow
    /// with the number of callers. The map is keyed by the digest, never by the key, so the
    /// lookup's timing can only depend on a value the caller computed itself; learning whether,
    /// or how far, a digest resembles a configured one gives no way to a key that matches it
    /// (that would take a SHA-256 preimage). The map's hasher is randomly seeded SipHash, so
    /// chosen keys cannot pile up in one bucket either.
    pub fn caller_by_api_key(&self, presented: &str) -> Option<Arc<Caller>> {
        if presented.is_empty() {
            return None;
        }
        let index = *self.by_key_hash.get(&identity::digest_api_key(presented))?;
        self.callers.get(index).cloned()
    }

    /// Finds the caller owning the SANs of a verified client certificate.
    ///
    /// Returns `None` when no SAN is configured, and also when the SANs belong to two different
    /// callers: such a certificate is ambiguous and must not pick an identity.
    pub fn caller_by_sans(&self, sans: &[String]) -> Option<Arc<Caller>> {
        let mut found = None;
        for san in sans {
            let Some(&index) = self.by_san.get(&identity::normalize_san(san)) else {
                continue;
            };
            match found {
                Some(previous) if previous != index => return None,
                _ => found = Some(index),
            }
        }
        self.callers.get(found?).cloned()
    }

    /// Finds a caller by its configured name (explain names callers that way).
    pub fn caller(&self, name: &str) -> Option<Arc<Caller>> {
        self.callers.iter().find(|c| c.name == name).cloned()
    }

    /// Tells whether any caller is identified by a client certificate SAN.
    pub fn declares_sans(&self) -> bool {
        !self.by_san.is_empty()
    }

    /// Callers in config order, e.g. for listing them in the CLI.
    pub fn callers(&self) -> impl Iterator<Item = &Arc<Caller>> {
        self.callers.iter()
    }
}

fn is_valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Returns the selectors of each group by name, groups validated.
fn build_groups(raw: &[RawUserGroup]) -> Result<HashMap<&str, Vec<UserSelector>>, PolicyError> {
    let mut groups = HashMap::new();
    for (index, group) in raw.iter().enumerate() {
        let path = format!("user_groups[{index}]");
        if !is_valid_name(&group.name) {
            return fail(
                format!("{path}.name"),
                PolicyErrorKind::InvalidName(group.name.clone()),
            );
        }
        if groups.contains_key(group.name.as_str()) {
            return fail(
                format!("{path}.name"),
                PolicyErrorKind::DuplicateGroup(group.name.clone()),
            );
        }
        if group.members.is_empty() {
            return fail(format!("{path}.members"), PolicyErrorKind::Empty);
        }
        let members = group
            .members
            .iter()
            .enumerate()
            .map(|(i, member)| parse_selector(member, || format!("{path}.members[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        groups.insert(group.name.as_str(), members);
    }
    Ok(groups)
}

fn parse_selector(text: &str, path: impl FnOnce() -> String) -> Result<UserSelector, PolicyError> {
    UserSelector::parse(text).or_else(|reason| {
        fail(
            path(),
            PolicyErrorKind::BadSelector {
                selector: text.to_owned(),
                reason,
            },
        )
    })
}

/// Checks that a grant list is non-empty and that `*`, if present, stands alone; returns whether
/// the list is `["*"]`.
fn is_wildcard(list: &[String], path: &str) -> Result<bool, PolicyError> {
    if list.is_empty() {
        return fail(path.to_owned(), PolicyErrorKind::Empty);
    }
    let star = list.iter().any(|entry| entry == "*");
    if star && list.len() > 1 {
        return fail(path.to_owned(), PolicyErrorKind::WildcardNotAlone);
    }
    Ok(star)
}

fn build_grant(
    raw: &RawGrant,
    path: &str,
    groups: &HashMap<&str, Vec<UserSelector>>,
    accounts: &Accounts,
) -> Result<Grant, PolicyError> {
    let accounts_path = format!("{path}.accounts");
    let mut account_names = BTreeSet::new();
    if is_wildcard(&raw.accounts, &accounts_path)? {
        account_names.extend(accounts.names().cloned());
    } else {
        for (i, name) in raw.accounts.iter().enumerate() {
            let known = AccountName::parse(name)
                .ok()
                .filter(|name| accounts.get(name).is_some());
            let Some(known) = known else {
                return fail(
                    format!("{accounts_path}[{i}]"),
                    PolicyErrorKind::UnknownAccount(name.clone()),
                );
            };
            account_names.insert(known);
        }
    }

    let users_path = format!("{path}.users");
    let mut users = Vec::new();
    if is_wildcard(&raw.users, &users_path)? {
        users.push(UserSelector::Any);
    } else {
        for (i, text) in raw.users.iter().enumerate() {
            if let Some(group) = text.strip_prefix("group:") {
                let Some(members) = groups.get(group) else {
                    return fail(
                        format!("{users_path}[{i}]"),
                        PolicyErrorKind::UnknownGroup(group.to_owned()),
                    );
                };
                users.extend(members.iter().cloned());
            } else {
                users.push(parse_selector(text, || format!("{users_path}[{i}]"))?);
            }
        }
    }
    // `*` anywhere (also through a group) makes the other selectors moot.
    if users.contains(&UserSelector::Any) {
        users = vec![UserSelector::Any];
    }

    let operations_path = format!("{path}.operations");
    let mut operations = 0u8;
    if is_wildcard(&raw.operations, &operations_path)? {
        operations = Operation::ALL.iter().fold(0, |bits, op| bits | op.bit());
    } else {
        for (i, name) in raw.operations.iter().enumerate() {
            let Some(op) = Operation::parse(name) else {
                return fail(
                    format!("{operations_path}[{i}]"),
                    PolicyErrorKind::UnknownOperation(name.clone()),
                );
            };
            operations |= op.bit();
        }
    }

    let mut fields = FieldSet::EMPTY;
    for (i, name) in raw.fields.iter().enumerate() {
        let Some(field) = SensitiveField::parse(name) else {
            return fail(
                format!("{path}.fields[{i}]"),
                PolicyErrorKind::UnknownField(name.clone()),
            );
        };
        fields = fields.with(field);
    }

    Ok(Grant {
        accounts: account_names.into_iter().collect(),
        users: users.into(),
        operations,
        fields,
    })
}

// === impl Caller ===

/// One compiled grant; `*` lists are already expanded.
#[derive(Debug)]
struct Grant {
    /// Never empty; `["*"]` became every configured account.
    accounts: Box<[AccountName]>,
    /// Never empty; groups expanded.
    users: Box<[UserSelector]>,
    /// One bit per [`Operation`].
    operations: u8,
    fields: FieldSet,
}

impl Grant {
    fn covers(&self, op: Operation, account: &AccountName, user: &UserEmail<'_>) -> bool {
        self.operations & op.bit() != 0
            && self.accounts.contains(account)
            && self.users.iter().any(|selector| selector.matches(user))
    }
}

/// Where a grant sits in the config file, e.g. `callers[1].grants[0]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantRef {
    pub caller: usize,
    pub grant: usize,
}

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "callers[{}].grants[{}]", self.caller, self.grant)
    }
}

/// Whether a caller may do an operation on a user of an account, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The first grant, in config order, that covers the request.
    Allowed(GrantRef),
    Denied(Denial),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// Why no grant allowed a request: the first of the three checks that no grant passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No grant of the caller names the operation.
    Operation,
    /// Grants name the operation, but none of them in this account.
    Account,
    /// Grants name the operation in this account, but none selects this user.
    User,
    /// The user is not named by an email address, which every selector needs.
    NotAnEmail,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denial::Operation => "no grant of the caller allows the operation",
            Denial::Account => "no grant allows the operation in this account",
            Denial::User => "no grant allows the operation on this user in this account",
            Denial::NotAnEmail => "the user is not known by an email address",
        })
    }
}

/// An authenticated calling service and what it may do. Holds no key material.
#[derive(Debug)]
pub struct Caller {
    pub name: String,
    /// Position in the config's `callers`, for [`GrantRef`].
    index: usize,
    grants: Box<[Grant]>,
    /// Per [`Operation::index`]: accounts where some grant allows that operation, in name order.
    accounts_by_op: [Box<[AccountName]>; 6],
    /// Access to the Admin API, if any.
    admin: Option<AdminRole>,
    /// Weight in the fair share of an account's Zoom budget (`callers[].weight`).
    pub weight: u32,
}

impl Caller {
    fn new(name: String, index: usize, grants: Box<[Grant]>) -> Self {
        let accounts_by_op = Operation::ALL.map(|op| {
            grants
                .iter()
                .filter(|grant| grant.operations & op.bit() != 0)
                .flat_map(|grant| grant.accounts.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        });
        Self {
            name,
            index,
            grants,
            accounts_by_op,
            admin: None,
            weight: 1,
        }
    }

    /// The gateway itself as the caller of its own background work (the directory sync): no
    /// grant, no admin role; it names that work in logs and spans.
    pub fn internal(name: &str) -> Caller {
        Caller::new(name.to_owned(), usize::MAX, Box::default())
    }

    /// Tells whether the caller may use the Admin API with `needed`: a write admin may read.
    pub fn is_admin(&self, needed: AdminRole) -> bool {
        self.admin.is_some_and(|role| role >= needed)
    }

    /// Allows iff some grant covers the account, the user and the operation.
    ///
    /// `user_email` is compared without ASCII case; anything that is not `local@domain` (one `@`,
    /// both sides non-empty, no whitespace) is denied, even by `*`.
    pub fn allows(&self, op: Operation, account: &AccountName, user_email: &str) -> bool {
        self.decide(op, account, user_email).is_allowed()
    }

    /// Decides as [`Caller::allows`] does, naming the grant that allowed or why none did.
    pub fn decide(&self, op: Operation, account: &AccountName, user_email: &str) -> Decision {
        let Some(user) = UserEmail::parse(user_email) else {
            return Decision::Denied(Denial::NotAnEmail);
        };
        if let Some(grant) = self
            .grants
            .iter()
            .position(|grant| grant.covers(op, account, &user))
        {
            return Decision::Allowed(GrantRef {
                caller: self.index,
                grant,
            });
        }
        let for_op = || self.grants.iter().filter(|g| g.operations & op.bit() != 0);
        let denial = if for_op().next().is_none() {
            Denial::Operation
        } else if !for_op().any(|grant| grant.accounts.contains(account)) {
            Denial::Account
        } else {
            Denial::User
        };
        Decision::Denied(denial)
    }

    /// Returns the accounts in which some grant allows `op` for at least one user, in name order.
    /// Probes for this caller go only into such accounts (for `op`, or for reading).
    pub fn accounts_for(&self, op: Operation) -> &[AccountName] {
        &self.accounts_by_op[op.index()]
    }

    /// Returns the sensitive fields this caller may see on a meeting of `user_email` in
    /// `account` when doing `op`: the union over the grants that allow exactly that.
    pub fn visible_fields(
        &self,
        op: Operation,
        account: &AccountName,
        user_email: &str,
    ) -> FieldSet {
        let Some(user) = UserEmail::parse(user_email) else {
            return FieldSet::EMPTY;
        };
        self.grants
            .iter()
            .filter(|grant| grant.covers(op, account, &user))
            .fold(FieldSet::EMPTY, |fields, grant| fields.union(grant.fields))
    }
}
