//! User selectors of a grant (exact email, `@domain`, `*` glob, every user) and the email they
//! match.
//!
//! Case folding is ASCII-only on both sides: a non-ASCII letter in another case does not match,
//! which can only deny, never widen a grant.

use std::borrow::Cow;

/// Why a user selector in the config was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("empty selector")]
    Empty,
    #[error("contains whitespace or a control character")]
    Whitespace,
    #[error("more than one '@'")]
    TooManyAts,
    #[error("expected a domain after '@'")]
    BadDomain,
    #[error("a group cannot contain another group")]
    NestedGroup,
    #[error("expected an email, @domain, a glob with '*', group:NAME or *")]
    Unrecognized,
}

/// A user's email as a decision sees it: ASCII-lowercased, exactly one `@`, both sides non-empty.
#[derive(Debug)]
pub(super) struct UserEmail<'a> {
    full: Cow<'a, str>,
    at: usize,
}

impl<'a> UserEmail<'a> {
    /// Returns `None` for anything that is not `local@domain`; such a user is denied by every
    /// grant.
    /// Allocates only when the address has ASCII capitals.
    pub(super) fn parse(email: &'a str) -> Option<Self> {
        if has_space_or_control(email) {
            return None;
        }
        let at = email.find('@')?;
        let well_formed = at > 0 && at + 1 < email.len() && !email[at + 1..].contains('@');
        if !well_formed {
            return None;
        }
        let full = if email.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(email.to_ascii_lowercase())
        } else {
            Cow::Borrowed(email)
        };
        Some(Self { full, at })
    }

    fn as_str(&self) -> &str {
        &self.full
    }

    fn domain(&self) -> &str {
        &self.full[self.at + 1..]
    }
}

/// One compiled user selector; its strings are ASCII-lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UserSelector {
    /// `*`: every user.
    Any,
    /// `alice@sales.acme.test`.
    Exact(Box<str>),
    /// `@sales.acme.test`, stored without the `@`: that exact domain, not its subdomains.
    Domain(Box<str>),
    /// `team-*@acme.test`.
    Glob(Glob),
}

impl UserSelector {
    /// Parses every selector kind except `group:NAME`, which the policy expands itself.
    pub(super) fn parse(text: &str) -> Result<Self, SelectorError> {
        if text.is_empty() {
            return Err(SelectorError::Empty);
        }
        if has_space_or_control(text) {
            return Err(SelectorError::Whitespace);
        }
        if text.starts_with("group:") {
            return Err(SelectorError::NestedGroup);
        }
        if text == "*" {
            return Ok(Self::Any);
        }
        let lower = text.to_ascii_lowercase();
        if lower.matches('@').count() > 1 {
            return Err(SelectorError::TooManyAts);
        }
        if lower.contains('*') {
            return Ok(Self::Glob(Glob::new(&lower)));
        }
        if let Some(domain) = lower.strip_prefix('@') {
            let valid = !domain.is_empty() && !domain.starts_with('.') && !domain.ends_with('.');
            return if valid {
                Ok(Self::Domain(domain.into()))
            } else {
                Err(SelectorError::BadDomain)
            };
        }
        match UserEmail::parse(&lower) {
            Some(_) => Ok(Self::Exact(lower.into())),
            None => Err(SelectorError::Unrecognized),
        }
    }

    pub(super) fn matches(&self, user: &UserEmail<'_>) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(email) => user.as_str() == &**email,
            Self::Domain(domain) => user.domain() == &**domain,
            Self::Glob(glob) => glob.matches(user.as_str()),
        }
    }
}

/// A pattern where `*` stands for any run of characters (possibly empty), split at the stars
/// so that matching needs no allocation and no backtracking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob {
    prefix: Box<str>,
    /// Literal pieces between stars, in order; empty pieces (from `**`) are dropped.
    middle: Box<[Box<str>]>,
    suffix: Box<str>,
}

impl Glob {
    /// `pattern` must contain at least one `*`.
    fn new(pattern: &str) -> Self {
        let pieces: Vec<&str> = pattern.split('*').collect();
        let (prefix, suffix) = match pieces.as_slice() {
            [first, .., last] => (*first, *last),
            _ => (pattern, ""),
        };
        let middle = match pieces.len() {
            0..=2 => Box::default(),
            n => pieces[1..n - 1]
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| Box::<str>::from(*p))
                .collect(),
        };
        Self {
            prefix: prefix.into(),
            middle,
            suffix: suffix.into(),
        }
    }

    /// Anchors the prefix and suffix, then finds each middle piece leftmost-first; with `*` as the
    /// only wildcard, the leftmost choice never loses a match.
    fn matches(&self, text: &str) -> bool {
        if text.len() < self.prefix.len() + self.suffix.len()
            || !text.starts_with(&*self.prefix)
            || !text.ends_with(&*self.suffix)
        {
            return false;
        }
        let mut rest = &text[self.prefix.len()..text.len() - self.suffix.len()];
        for piece in &self.middle {
            match rest.find(&**piece) {
                Some(i) => rest = &rest[i + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn has_space_or_control(text: &str) -> bool {
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selects(selector: &str, email: &str) -> bool {
        let selector = UserSelector::parse(selector).expect("valid selector");
        UserEmail::parse(email).is_some_and(|user| selector.matches(&user))
    }

    #[test]
    fn exact_email_ignores_ascii_case() {
        assert!(selects("alice@sales.acme.test", "alice@sales.acme.test"));
        assert!(selects("Alice@Sales.ACME.test", "aLICE@sales.acme.TEST"));
        assert!(!selects("alice@sales.acme.test", "alice2@sales.acme.test"));
        assert!(!selects(
            "alice@sales.acme.test",
            "alice@sales.acme.test.evil"
        ));
        assert!(!selects("alice@sales.acme.test", "xalice@sales.acme.test"));
    }

    #[test]
    fn domain_is_exact_not_subdomains_nor_lookalikes() {
        assert!(selects("@acme.test", "x@acme.test"));
        assert!(selects("@ACME.test", "X@Acme.Test"));
        assert!(!selects("@acme.test", "x@evil-acme.test"));
        assert!(!selects("@acme.test", "x@sub.acme.test"));
        assert!(!selects("@acme.test", "x@acme.test.evil"));
        assert!(!selects("@acme.test", "acme.test@evil.test"));
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(selects("*@sales.acme.test", "bob@sales.acme.test"));
        assert!(selects("team-*@acme.test", "team-a@acme.test"));
        assert!(selects("team-*@acme.test", "team-@acme.test"));
        assert!(selects("TEAM-*@acme.test", "Team-Red@ACME.test"));
        assert!(selects("*-ops-*@acme.test", "eu-ops-1@acme.test"));
        assert!(selects("a*a@acme.test", "aa@acme.test"));
        assert!(selects("a**b@acme.test", "ab@acme.test"));
        assert!(selects("*.acme.test", "x@sub.acme.test"));
    }

    #[test]
    fn globs_do_not_over_match() {
        assert!(!selects("*@sales.acme.test", "bob@evil-sales.acme.test"));
        assert!(!selects("*@sales.acme.test", "bob@sub.sales.acme.test"));
        assert!(!selects("*@sales.acme.test", "bob@sales.acme.test.evil"));
        assert!(!selects("team-*@acme.test", "xteam-a@acme.test"));
        assert!(!selects("team-*@acme.test", "team-a@acme.testx"));
        assert!(!selects("team-*@acme.test", "team-a@sub.acme.test"));
        // Prefix and suffix may not share characters of the address.
        assert!(!selects("a*a@acme.test", "a@acme.test"));
        assert!(!selects("*-ops-*@acme.test", "eu-ops@acme.test"));
        // The dot is literal, not "any character".
        assert!(!selects("*@acme.test", "x@acmex test"));
        assert!(!selects("*@acme.test", "x@acmextest"));
    }

    #[test]
    fn star_matches_every_well_formed_address_only() {
        assert!(selects("*", "anyone@anywhere.test"));
        for bad in [
            "",
            "alice",
            "@acme.test",
            "alice@",
            "a@b@acme.test",
            "a b@acme.test",
            "a@acme.test\n",
        ] {
            assert!(!selects("*", bad), "{bad:?}");
        }
    }

    #[test]
    fn malformed_selectors_are_rejected_with_a_reason() {
        let cases = [
            ("", SelectorError::Empty),
            (" alice@acme.test", SelectorError::Whitespace),
            ("a@b@acme.test", SelectorError::TooManyAts),
            ("*@b@acme.test", SelectorError::TooManyAts),
            ("@", SelectorError::BadDomain),
            ("@.acme.test", SelectorError::BadDomain),
            ("group:vip", SelectorError::NestedGroup),
            ("alice", SelectorError::Unrecognized),
            ("alice@", SelectorError::Unrecognized),
        ];
        for (text, expected) in cases {
            assert_eq!(UserSelector::parse(text), Err(expected), "{text:?}");
        }
    }
}
