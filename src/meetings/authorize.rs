//! The caller's grants applied to a target: which accounts a lookup may ask, and the answer when
//! the caller may not do the operation. A target outside the caller's grants answers exactly like
//! one that does not exist.

use super::{AuditContext, UserRef};
use crate::accounts::AccountName;
use crate::error::{Error, TargetKind};
use crate::policy::{Caller, Decision, Operation};

/// The accounts a meeting lookup for `op` may ask: where the caller may do `op` or see meetings,
/// so that the answer does not depend on whether the ledger already knew the meeting.
pub fn probe_accounts(caller: &Caller, op: Operation) -> Vec<&AccountName> {
    let mut accounts: Vec<&AccountName> = Vec::new();
    for any in [op, Operation::Read, Operation::List] {
        for account in caller.accounts_for(any) {
            if !accounts.contains(&account) {
                accounts.push(account);
            }
        }
    }
    accounts
}

/// Decides `op` on a target in `account` hosted by `user_email`; the decision's reason goes
/// into the log of the request.
pub(super) fn decide(
    caller: &Caller,
    op: Operation,
    account: &AccountName,
    user_email: &str,
) -> Decision {
    let decision = caller.decide(op, account, user_email);
    match decision {
        Decision::Allowed(grant) => tracing::debug!(%grant, %account, "allowed"),
        Decision::Denied(why) => tracing::debug!(%why, %account, "denied"),
    }
    decision
}

/// Allows `op` on a meeting, or answers PERMISSION_DENIED when the caller may see the meeting and
/// the same NOT_FOUND as a missing meeting when it may not.
pub(super) fn authorize_meeting(
    caller: &Caller,
    op: Operation,
    account: &AccountName,
    host_email: &str,
    meeting_id: i64,
    audit: &mut AuditContext,
) -> Result<(), Error> {
    if decide(caller, op, account, host_email).is_allowed() {
        return Ok(());
    }
    audit.denied = true;
    let may_see = [Operation::Read, Operation::List]
        .into_iter()
        .any(|seeing| caller.allows(seeing, account, host_email));
    Err(denial(
        caller,
        op,
        TargetKind::Meeting,
        meeting_id.to_string(),
        may_see,
    ))
}

/// The answer when `op` on a user is not allowed, decided from the grants and the name the caller
/// gave alone, so it never shows where the user lives or whether a cache knew it.
///
/// PERMISSION_DENIED only for an email no account grants `op` on but some account lets the caller
/// see; NOT_FOUND otherwise, exactly as for a user that does not exist.
pub(super) fn user_denial(caller: &Caller, op: Operation, user: &UserRef) -> Error {
    let may_see = match user {
        UserRef::Email(email) => {
            let grants_op = caller
                .accounts_for(op)
                .iter()
                .any(|account| caller.allows(op, account, email));
            !grants_op
                && [Operation::Read, Operation::List]
                    .into_iter()
                    .any(|seeing| {
                        caller
                            .accounts_for(seeing)
                            .iter()
                            .any(|account| caller.allows(seeing, account, email))
                    })
        }
        UserRef::Id(_) => false,
    };
    denial(caller, op, TargetKind::User, user.key().to_owned(), may_see)
}

fn denial(caller: &Caller, op: Operation, kind: TargetKind, id: String, may_see: bool) -> Error {
    if may_see {
        Error::PermissionDenied {
            caller: caller.name.clone(),
            operation: op,
            kind,
            id,
        }
    } else {
        Error::NotFound { kind, id }
    }
}
