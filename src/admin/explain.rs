//! "Why was my service refused?": where a request would be routed and what the caller's grants
//! say of it, from the same routing and decision code the request path runs.
//!
//! The gateway explains from everything it holds (overrides, rules, what probes found, the
//! ledger); `zoomgate explain --config` explains from a candidate config file alone, so a grant
//! change can be reviewed before it is rolled out.

use crate::accounts::AccountName;
use crate::meetings::probe_accounts;
use crate::policy::{Caller, Decision, Denial, FieldSet, Operation};
use crate::routing::{RouteSource, RoutingRules};

/// What an explanation is about, as a request would name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExplainTarget {
    /// A lowercased email.
    UserEmail(String),
    UserId(String),
    Meeting(i64),
}

/// How the account of the target is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Without asking Zoom.
    Known {
        account: AccountName,
        source: RouteSource,
    },
    /// Only a probe can tell; a request would ask these accounts, in this order.
    ProbeNeeded { accounts: Vec<AccountName> },
    /// Zoom was asked for this explanation: found in `found`, or in none of `asked`.
    Probed {
        found: Option<AccountName>,
        asked: Vec<AccountName>,
    },
}

/// The answer of `explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub placement: Placement,
    /// The user the grants are checked against: the one asked for, or the meeting's host.
    pub user_email: Option<String>,
    /// `None` while the decision depends on where a probe finds the target.
    pub decision: Option<Decision>,
    /// Sensitive fields the caller would see; empty unless allowed.
    pub visible_fields: FieldSet,
}

impl Explanation {
    /// Decides `op` by `caller` on `user_email` placed by `placement`, as the request path does.
    pub fn decide(
        caller: &Caller,
        op: Operation,
        placement: Placement,
        user_email: Option<String>,
    ) -> Self {
        let account = match &placement {
            Placement::Known { account, .. } => Some(account),
            Placement::Probed { found, .. } => found.as_ref(),
            Placement::ProbeNeeded { .. } => None,
        };
        let decision = match (account, &user_email) {
            (Some(account), Some(email)) => Some(caller.decide(op, account, email)),
            // Decided from the grants alone, before any routing: no account lets the caller
            // do this to this user.
            (None, Some(email)) if !grants_any_account(caller, op, email) => {
                Some(Decision::Denied(denial_before_routing(caller, op)))
            }
            (None, None) if caller.accounts_for(op).is_empty() => {
                Some(Decision::Denied(Denial::Operation))
            }
            _ => None,
        };
        let visible_fields = match (decision, account, &user_email) {
            (Some(Decision::Allowed(_)), Some(account), Some(email)) => {
                caller.visible_fields(op, account, email)
            }
            _ => FieldSet::EMPTY,
        };
        Self {
            placement,
            user_email,
            decision,
            visible_fields,
        }
    }
}

/// Explains a request from a config alone: the rules place users; no override, probe result or
/// ledger entry exists there, so anything else needs a probe.
pub fn offline(
    caller: &Caller,
    rules: &RoutingRules,
    target: &ExplainTarget,
    op: Operation,
) -> Explanation {
    let placement = match target {
        ExplainTarget::UserEmail(email) => match rules.rule_for(email) {
            Some(rule) => Placement::Known {
                account: rule.account.clone(),
                source: RouteSource::ConfigRule(rule.place.clone()),
            },
            None => user_probe(caller, op, Some(email)),
        },
        ExplainTarget::UserId(_) => user_probe(caller, op, None),
        ExplainTarget::Meeting(_) => meeting_probe(caller, op),
    };
    let email = match target {
        ExplainTarget::UserEmail(email) => Some(email.clone()),
        _ => None,
    };
    Explanation::decide(caller, op, placement, email)
}

/// The accounts a user lookup would probe: those where the caller may do `op` to that user.
pub(super) fn user_probe(caller: &Caller, op: Operation, email: Option<&str>) -> Placement {
    let accounts = caller
        .accounts_for(op)
        .iter()
        .filter(|account| email.is_none_or(|email| caller.allows(op, account, email)))
        .cloned()
        .collect();
    Placement::ProbeNeeded { accounts }
}

/// The accounts a meeting lookup would probe.
pub(super) fn meeting_probe(caller: &Caller, op: Operation) -> Placement {
    let accounts = probe_accounts(caller, op).into_iter().cloned().collect();
    Placement::ProbeNeeded { accounts }
}

fn grants_any_account(caller: &Caller, op: Operation, email: &str) -> bool {
    caller
        .accounts_for(op)
        .iter()
        .any(|account| caller.allows(op, account, email))
}

fn denial_before_routing(caller: &Caller, op: Operation) -> Denial {
    if caller.accounts_for(op).is_empty() {
        Denial::Operation
    } else {
        Denial::User
    }
}
