//! Tests of the whole policy: config shape, decisions, validation paths, identity lookups, and a
//! property test against a naive reference model.

use proptest::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;

use super::*;
use crate::accounts::{Account, Plan};

const SCHEDULER_KEY: &str = "scheduler-key-0123456789";
const REPORTER_KEY: &str = "reporter-key-9876543210";

fn accounts(names: &[&str]) -> Accounts {
    Accounts::new(names.iter().map(|name| Account {
        name: AccountName::parse(name).expect("valid account name"),
        zoom_account_id: format!("zoom-{name}"),
        client_id: format!("client-{name}"),
        client_secret: SecretString::from("not-used"),
        plan: Plan::Pro,
        budget: Default::default(),
    }))
}

fn acme_accounts() -> Accounts {
    accounts(&["acme-sales", "acme-support", "acme-eu"])
}

fn account(name: &str) -> AccountName {
    AccountName::parse(name).expect("valid account name")
}

/// The part of the gateway config file this module owns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    user_groups: Vec<RawUserGroup>,
    #[serde(default)]
    callers: Vec<RawCaller>,
}

fn parse(toml_text: &str) -> PolicyFile {
    toml::from_str(toml_text).expect("valid policy TOML")
}

fn build(toml_text: &str) -> Result<Policy, PolicyError> {
    let file = parse(toml_text);
    Policy::build(&file.callers, &file.user_groups, &acme_accounts())
}

fn example() -> String {
    format!(
        r#"
[[user_groups]]
name = "vip"
members = ["alice@sales.acme.test", "@support.acme.test"]

[[callers]]
name = "scheduler"
api_key_sha256 = ["{scheduler}"]
mtls_sans = ["spiffe://acme.test/ns/prod/sa/scheduler", "scheduler.acme.test"]
  [[callers.grants]]
  accounts = ["acme-sales"]
  users = ["@sales.acme.test", "bob@support.acme.test", "team-*@acme.test", "group:vip"]
  operations = ["read", "list", "create", "update", "delete", "end"]
  fields = ["start_url", "password"]

[[callers]]
name = "reporter"
api_key_sha256 = ["{reporter}"]
  [[callers.grants]]
  accounts = ["*"]
  users = ["*"]
  operations = ["read", "list"]

  [[callers.grants]]
  accounts = ["acme-eu"]
  users = ["*@eu.acme.test"]
  operations = ["read"]
  fields = ["password"]

  [[callers.grants]]
  accounts = ["acme-eu", "acme-support"]
  users = ["boss@eu.acme.test"]
  operations = ["*"]
  fields = ["start_url"]

[[callers]]
name = "mtls-only"
mtls_sans = ["Billing.ACME.test"]
  [[callers.grants]]
  accounts = ["acme-support"]
  users = ["carol@support.acme.test"]
  operations = ["read"]
"#,
        scheduler = hash_api_key(SCHEDULER_KEY),
        reporter = hash_api_key(REPORTER_KEY),
    )
}

fn example_policy() -> Policy {
    build(&example()).expect("the example policy is valid")
}

fn caller(policy: &Policy, name: &str) -> Arc<Caller> {
    policy.caller(name).expect("caller is configured")
}

// === decisions ===

#[test]
fn decisions_name_the_grant_that_allowed_or_why_none_did() {
    let policy = example_policy();
    let reporter = caller(&policy, "reporter");
    let at = |caller, grant| Decision::Allowed(GrantRef { caller, grant });
    let eu = account("acme-eu");
    // The first grant in config order that covers the request decides.
    assert_eq!(
        reporter.decide(Operation::Read, &eu, "ann@eu.acme.test"),
        at(1, 0)
    );
    assert_eq!(
        reporter.decide(Operation::Delete, &eu, "boss@eu.acme.test"),
        at(1, 2)
    );
    assert_eq!(
        GrantRef {
            caller: 1,
            grant: 2
        }
        .to_string(),
        "callers[1].grants[2]"
    );
    let denied = |why| Decision::Denied(why);
    let sales = account("acme-sales");
    assert_eq!(
        reporter.decide(Operation::Delete, &sales, "ann@sales.acme.test"),
        denied(Denial::Account)
    );
    assert_eq!(
        reporter.decide(Operation::Delete, &eu, "ann@eu.acme.test"),
        denied(Denial::User)
    );
    let mtls = caller(&policy, "mtls-only");
    assert_eq!(
        mtls.decide(
            Operation::Delete,
            &account("acme-support"),
            "carol@support.acme.test"
        ),
        denied(Denial::Operation)
    );
    assert_eq!(
        mtls.decide(Operation::Read, &account("acme-support"), "not an email"),
        denied(Denial::NotAnEmail)
    );
}

#[test]
fn authentication_takes_a_bearer_key_from_any_front_end() {
    let policy = example_policy();
    let named = |authorization| {
        let identity = Identity {
            authorization,
            certificate: None,
        };
        policy
            .authenticate(&identity)
            .map(|caller| caller.name.clone())
    };
    let bearer = format!("Bearer {REPORTER_KEY}");
    assert_eq!(named(Some(&bearer)).as_deref(), Some("reporter"));
    let lowercase = format!("bearer  {SCHEDULER_KEY} ");
    assert_eq!(named(Some(&lowercase)).as_deref(), Some("scheduler"));
    let basic = format!("Basic {REPORTER_KEY}");
    assert_eq!(named(Some(&basic)), None);
    assert_eq!(named(Some(REPORTER_KEY)), None);
    assert_eq!(named(None), None);
}

#[test]
fn example_config_parses_and_builds() {
    let policy = example_policy();
    let names: Vec<&str> = policy.callers().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["scheduler", "reporter", "mtls-only"]);
    assert!(policy.caller("nobody").is_none());
}

#[test]
fn an_empty_policy_denies_everyone() {
    let policy = Policy::build(&[], &[], &acme_accounts()).expect("empty is valid");
    assert_eq!(policy.callers().count(), 0);
    assert!(policy.caller_by_api_key(SCHEDULER_KEY).is_none());
    assert!(
        policy
            .caller_by_sans(&["scheduler.acme.test".to_owned()])
            .is_none()
    );
}

#[test]
fn every_selector_kind_allows_its_users_and_no_others() {
    let scheduler = caller(&example_policy(), "scheduler");
    let sales = account("acme-sales");
    let allowed = [
        "anyone@sales.acme.test", // @domain
        "bob@support.acme.test",  // exact
        "team-red@acme.test",     // glob
        "alice@sales.acme.test",  // group member (exact)
        "dave@support.acme.test", // group member (@domain)
        "ANYONE@Sales.Acme.Test", // case-insensitive
        "Bob@SUPPORT.acme.test",
        "Team-Red@Acme.TEST",
    ];
    for user in allowed {
        assert!(scheduler.allows(Operation::Read, &sales, user), "{user}");
    }
    let denied = [
        "x@sub.sales.acme.test",  // subdomain of an @domain
        "x@evil-sales.acme.test", // look-alike domain
        "x@sales.acme.test.evil",
        "bob@support2.acme.test", // near an exact email
        "xteam-red@acme.test",    // glob anchored at the start
        "team-red@sub.acme.test", // glob anchored at the end
        "team-red@acme.test.evil",
        "alice@acme.test",
        "", // not an address
        "sales.acme.test",
        "a@b@sales.acme.test",
        " anyone@sales.acme.test",
    ];
    for user in denied {
        assert!(!scheduler.allows(Operation::Read, &sales, user), "{user:?}");
    }
}

#[test]
fn grants_are_scoped_to_their_accounts() {
    let scheduler = caller(&example_policy(), "scheduler");
    assert!(scheduler.allows(
        Operation::Delete,
        &account("acme-sales"),
        "a@sales.acme.test"
    ));
    assert!(!scheduler.allows(Operation::Delete, &account("acme-eu"), "a@sales.acme.test"));
    assert!(!scheduler.allows(
        Operation::Read,
        &account("acme-support"),
        "bob@support.acme.test"
    ));
    // An account that is not configured is never covered, not even by "*".
    let reporter = caller(&example_policy(), "reporter");
    assert!(reporter.allows(Operation::Read, &account("acme-support"), "x@y.test"));
    assert!(!reporter.allows(Operation::Read, &account("acme-gone"), "x@y.test"));
}

#[test]
fn operations_are_checked_one_by_one() {
    let policy = example_policy();
    let reporter = caller(&policy, "reporter");
    let support = account("acme-support");
    assert!(reporter.allows(Operation::Read, &support, "x@y.test"));
    assert!(reporter.allows(Operation::List, &support, "x@y.test"));
    for op in [
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::End,
    ] {
        assert!(!reporter.allows(op, &support, "x@y.test"), "{op}");
        // `operations = ["*"]` on the third grant.
        assert!(reporter.allows(op, &support, "boss@eu.acme.test"), "{op}");
    }
    let billing = caller(&policy, "mtls-only");
    assert!(billing.allows(Operation::Read, &support, "carol@support.acme.test"));
    assert!(!billing.allows(Operation::List, &support, "carol@support.acme.test"));
}

#[test]
fn accounts_for_lists_accounts_where_the_operation_is_granted() {
    let policy = example_policy();
    let reporter = caller(&policy, "reporter");
    let names = |op| -> Vec<String> {
        reporter
            .accounts_for(op)
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    assert_eq!(
        names(Operation::Read),
        ["acme-eu", "acme-sales", "acme-support"]
    );
    assert_eq!(names(Operation::End), ["acme-eu", "acme-support"]);
    let billing = caller(&policy, "mtls-only");
    assert_eq!(
        billing.accounts_for(Operation::Read),
        [account("acme-support")]
    );
    assert!(billing.accounts_for(Operation::Create).is_empty());
}

#[test]
fn visible_fields_are_the_union_of_the_grants_that_allow() {
    let policy = example_policy();
    let reporter = caller(&policy, "reporter");
    let eu = account("acme-eu");
    let both = FieldSet::EMPTY
        .with(SensitiveField::StartUrl)
        .with(SensitiveField::Password);
    // Grants 1 (none), 2 (password) and 3 (start_url) all allow this read.
    assert_eq!(
        reporter.visible_fields(Operation::Read, &eu, "boss@eu.acme.test"),
        both
    );
    // Only grants 1 and 2.
    assert_eq!(
        reporter.visible_fields(Operation::Read, &eu, "ann@eu.acme.test"),
        FieldSet::EMPTY.with(SensitiveField::Password)
    );
    // Grant 2 does not allow list, so its password does not show.
    assert_eq!(
        reporter.visible_fields(Operation::List, &eu, "ann@eu.acme.test"),
        FieldSet::EMPTY
    );
    // Grant 3 allows update but grant 2 does not: start_url only.
    assert_eq!(
        reporter.visible_fields(Operation::Update, &eu, "boss@eu.acme.test"),
        FieldSet::EMPTY.with(SensitiveField::StartUrl)
    );
    // Nothing allowed, nothing visible; fields default to none.
    let billing = caller(&policy, "mtls-only");
    let support = account("acme-support");
    assert!(
        billing
            .visible_fields(Operation::Read, &support, "carol@support.acme.test")
            .is_empty()
    );
    assert!(
        reporter
            .visible_fields(Operation::Read, &eu, "not-an-email")
            .is_empty()
    );
}

#[test]
fn star_in_a_group_covers_every_user() {
    let policy = build(&format!(
        r#"
[[user_groups]]
name = "everyone"
members = ["*"]
[[callers]]
name = "c"
api_key_sha256 = ["{}"]
  [[callers.grants]]
  accounts = ["acme-eu"]
  users = ["nobody@acme.test", "group:everyone"]
  operations = ["read"]
"#,
        hash_api_key("k")
    ))
    .expect("valid");
    assert!(caller(&policy, "c").allows(Operation::Read, &account("acme-eu"), "zed@z.test"));
}

#[test]
fn operation_and_field_names_round_trip() {
    for op in Operation::ALL {
        assert_eq!(Operation::parse(op.as_str()), Some(op));
        assert_eq!(op.to_string(), op.as_str());
    }
    assert_eq!(Operation::parse("Read"), None);
    for field in SensitiveField::ALL {
        assert_eq!(SensitiveField::parse(field.as_str()), Some(field));
    }
    let set: FieldSet = SensitiveField::ALL.into_iter().collect();
    assert_eq!(set.iter().collect::<Vec<_>>(), SensitiveField::ALL);
    assert_eq!(format!("{set:?}"), "{StartUrl, Password}");
}

// === identities ===

#[test]
fn api_keys_find_their_own_caller_only() {
    let policy = example_policy();
    let found = |key: &str| policy.caller_by_api_key(key).map(|c| c.name.clone());
    assert_eq!(found(SCHEDULER_KEY).as_deref(), Some("scheduler"));
    assert_eq!(found(REPORTER_KEY).as_deref(), Some("reporter"));
    assert_eq!(found("scheduler-key-012345678"), None);
    assert_eq!(found(&format!("{SCHEDULER_KEY} ")), None);
    assert_eq!(found(""), None);
    // The hash itself is not a key.
    assert_eq!(found(&hash_api_key(SCHEDULER_KEY)), None);
}

/// `n` callers, `caller-{i}` with the key `key-{i}`, each with one read grant.
fn many_callers(n: usize) -> Policy {
    let callers: Vec<RawCaller> = (0..n)
        .map(|i| RawCaller {
            name: format!("caller-{i}"),
            api_key_sha256: vec![hash_api_key(&format!("key-{i}"))],
            mtls_sans: Vec::new(),
            grants: vec![RawGrant {
                accounts: vec!["*".into()],
                users: vec!["*".into()],
                operations: vec!["read".into()],
                fields: Vec::new(),
            }],
            admin: None,
            weight: None,
        })
        .collect();
    Policy::build(&callers, &[], &acme_accounts()).expect("valid")
}

#[test]
fn each_of_ten_thousand_keys_finds_its_own_caller() {
    let policy = many_callers(10_000);
    for i in (0..10_000).step_by(997).chain([9_999]) {
        let found = policy.caller_by_api_key(&format!("key-{i}"));
        assert_eq!(found.map(|c| c.name.clone()), Some(format!("caller-{i}")));
    }
    assert!(policy.caller_by_api_key("key-10000").is_none());
    assert!(policy.caller_by_api_key("").is_none());
}

/// The lookup is by hash: with 10,000 callers it costs what it costs with 2, where a scan over
/// every hash grew with the number of callers. The bound is loose, for a shared machine and a
/// debug build; `cargo bench --bench auth` measures it properly.
#[test]
fn finding_a_caller_does_not_grow_with_the_number_of_callers() {
    fn fastest_round(policy: &Policy, keys: &[String]) -> std::time::Duration {
        (0..7)
            .map(|_| {
                let start = std::time::Instant::now();
                for key in keys {
                    std::hint::black_box(policy.caller_by_api_key(std::hint::black_box(key)));
                }
                start.elapsed()
            })
            .min()
            .unwrap()
    }
    // Unknown keys: the answer for every UNAUTHENTICATED request.
    let keys: Vec<String> = (0..2_000).map(|i| format!("unknown-{i}")).collect();
    let (few, many) = (many_callers(2), many_callers(10_000));
    let few_time = fastest_round(&few, &keys);
    let many_time = fastest_round(&many, &keys);
    assert!(
        many_time < few_time * 10,
        "2 callers: {few_time:?}, 10000 callers: {many_time:?} for {} lookups",
        keys.len()
    );
}

#[test]
fn uppercase_hashes_in_the_config_work() {
    let policy = build(&example().replace(
        &hash_api_key(SCHEDULER_KEY),
        &hash_api_key(SCHEDULER_KEY).to_ascii_uppercase(),
    ))
    .expect("valid");
    assert_eq!(
        policy
            .caller_by_api_key(SCHEDULER_KEY)
            .map(|c| c.name.clone())
            .as_deref(),
        Some("scheduler")
    );
}

#[test]
fn sans_find_their_caller_unless_ambiguous() {
    let policy = example_policy();
    let found = |sans: &[&str]| {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        policy.caller_by_sans(&sans).map(|c| c.name.clone())
    };
    assert_eq!(
        found(&["spiffe://acme.test/ns/prod/sa/scheduler"]).as_deref(),
        Some("scheduler")
    );
    assert_eq!(
        found(&["SCHEDULER.acme.test"]).as_deref(),
        Some("scheduler")
    );
    assert_eq!(found(&["billing.acme.test"]).as_deref(), Some("mtls-only"));
    assert_eq!(
        found(&["other.acme.test", "billing.acme.test"]).as_deref(),
        Some("mtls-only")
    );
    assert_eq!(
        found(&[
            "scheduler.acme.test",
            "spiffe://acme.test/ns/prod/sa/scheduler"
        ])
        .as_deref(),
        Some("scheduler")
    );
    // URIs compare exactly; unknown names identify nobody.
    assert_eq!(found(&["spiffe://acme.test/ns/prod/sa/Scheduler"]), None);
    assert_eq!(found(&["other.acme.test"]), None);
    assert_eq!(found(&[]), None);
    // A certificate naming two callers picks neither.
    assert_eq!(found(&["scheduler.acme.test", "billing.acme.test"]), None);
}

#[test]
fn a_generated_certificate_identifies_its_caller() {
    let mut params =
        rcgen::CertificateParams::new(vec!["billing.acme.test".to_owned()]).expect("params");
    params.subject_alt_names.push(rcgen::SanType::URI(
        "spiffe://acme.test/ns/prod/sa/billing"
            .try_into()
            .expect("ia5"),
    ));
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");

    let sans = sans_of_certificate(cert.der());
    assert_eq!(
        sans,
        ["billing.acme.test", "spiffe://acme.test/ns/prod/sa/billing"]
    );
    let found = example_policy().caller_by_sans(&sans);
    assert_eq!(found.map(|c| c.name.clone()).as_deref(), Some("mtls-only"));
}

#[test]
fn debug_output_never_shows_key_hashes() {
    let text = example();
    let file = parse(&text);
    let policy = example_policy();
    let scheduler = caller(&policy, "scheduler");
    for debug in [
        format!("{policy:?}"),
        format!("{scheduler:?}"),
        format!("{:?}", file.callers),
    ] {
        for key in [SCHEDULER_KEY, REPORTER_KEY] {
            assert!(!debug.contains(&hash_api_key(key)), "{debug}");
            assert!(!debug.contains(key), "{debug}");
        }
    }
}

// === validation ===

#[test]
fn unknown_config_keys_are_rejected() {
    let hash = hash_api_key("k");
    for bad in [
        format!("[[callers]]\nname = \"c\"\napi_key = [\"{hash}\"]"),
        "[[user_groups]]\nname = \"g\"\nmember = [\"*\"]".to_owned(),
        format!(
            "[[callers]]\nname = \"c\"\napi_key_sha256 = [\"{hash}\"]\n[[callers.grants]]\n\
             accounts = [\"*\"]\nusers = [\"*\"]\noperations = [\"*\"]\nfield = [\"password\"]"
        ),
    ] {
        assert!(toml::from_str::<PolicyFile>(&bad).is_err(), "{bad}");
    }
}

#[test]
fn errors_print_path_and_problem() {
    let err = build(&example().replace(
        "operations = [\"read\", \"list\"]",
        "operations = [\"read\", \"list\", \"destroy\"]",
    ))
    .expect_err("unknown operation");
    assert_eq!(
        err.to_string(),
        "callers[1].grants[0].operations[2]: unknown operation \"destroy\""
    );
    let err = build(&example().replace(&hash_api_key(REPORTER_KEY), "abc")).expect_err("bad hash");
    assert_eq!(
        err.to_string(),
        "callers[1].api_key_sha256[0]: expected 64 hex characters"
    );
}

#[test]
fn every_validation_error_names_its_path() {
    let scheduler_hash = hash_api_key(SCHEDULER_KEY);
    let reporter_hash = hash_api_key(REPORTER_KEY);
    type Kind = PolicyErrorKind;
    let cases: Vec<(&str, String, &str, Kind)> = vec![
        (
            "caller name",
            r#"name = "scheduler""#.into(),
            r#"name = "Scheduler""#,
            Kind::InvalidName("Scheduler".into()),
        ),
        (
            "duplicate caller",
            r#"name = "reporter""#.into(),
            r#"name = "scheduler""#,
            Kind::DuplicateCaller("scheduler".into()),
        ),
        (
            "group name",
            r#"name = "vip""#.into(),
            r#"name = "v_i_p""#,
            Kind::InvalidName("v_i_p".into()),
        ),
        ("hash", reporter_hash.clone(), "zz", Kind::InvalidKeyHash),
        (
            "hash reuse",
            reporter_hash.clone(),
            &scheduler_hash,
            Kind::DuplicateIdentity("callers[0].api_key_sha256[0]".into()),
        ),
        (
            "san reuse",
            r#"["Billing.ACME.test"]"#.into(),
            r#"["SCHEDULER.acme.test"]"#,
            Kind::DuplicateIdentity("callers[0].mtls_sans[1]".into()),
        ),
        (
            "san wildcard",
            r#"["Billing.ACME.test"]"#.into(),
            r#"["*.acme.test"]"#,
            Kind::InvalidSan {
                san: "*.acme.test".into(),
                reason: "wildcards cannot identify one caller",
            },
        ),
        (
            "no identity",
            r#"mtls_sans = ["Billing.ACME.test"]"#.into(),
            "mtls_sans = []",
            Kind::NoIdentity,
        ),
        (
            "unknown account",
            r#"accounts = ["acme-sales"]"#.into(),
            r#"accounts = ["acme-sales", "acme-gone"]"#,
            Kind::UnknownAccount("acme-gone".into()),
        ),
        (
            "invalid account",
            r#"accounts = ["acme-support"]"#.into(),
            r#"accounts = ["Acme"]"#,
            Kind::UnknownAccount("Acme".into()),
        ),
        (
            "star not alone",
            r#"accounts = ["*"]"#.into(),
            r#"accounts = ["*", "acme-eu"]"#,
            Kind::WildcardNotAlone,
        ),
        (
            "empty accounts",
            r#"accounts = ["acme-eu"]"#.into(),
            "accounts = []",
            Kind::Empty,
        ),
        (
            "unknown group",
            r#""group:vip""#.into(),
            r#""group:vips""#,
            Kind::UnknownGroup("vips".into()),
        ),
        (
            "bad selector",
            r#""team-*@acme.test""#.into(),
            r#""team""#,
            Kind::BadSelector {
                selector: "team".into(),
                reason: SelectorError::Unrecognized,
            },
        ),
        (
            "bad member",
            r#""@support.acme.test"]"#.into(),
            r#""@support.acme.test", "group:vip"]"#,
            Kind::BadSelector {
                selector: "group:vip".into(),
                reason: SelectorError::NestedGroup,
            },
        ),
        (
            "empty users",
            r#"users = ["carol@support.acme.test"]"#.into(),
            "users = []",
            Kind::Empty,
        ),
        (
            "empty operations",
            r#"operations = ["read"]
"#
            .into(),
            "operations = []\n",
            Kind::Empty,
        ),
        (
            "unknown field",
            r#"fields = ["start_url", "password"]"#.into(),
            r#"fields = ["start_url", "passcode"]"#,
            Kind::UnknownField("passcode".into()),
        ),
    ];
    let expected_paths = [
        "callers[0].name",
        "callers[1].name",
        "user_groups[0].name",
        "callers[1].api_key_sha256[0]",
        "callers[1].api_key_sha256[0]",
        "callers[2].mtls_sans[0]",
        "callers[2].mtls_sans[0]",
        "callers[2]",
        "callers[0].grants[0].accounts[1]",
        "callers[2].grants[0].accounts[0]",
        "callers[1].grants[0].accounts",
        "callers[1].grants[1].accounts",
        "callers[0].grants[0].users[3]",
        "callers[0].grants[0].users[2]",
        "user_groups[0].members[2]",
        "callers[2].grants[0].users",
        "callers[1].grants[1].operations",
        "callers[0].grants[0].fields[1]",
    ];
    assert_eq!(cases.len(), expected_paths.len());
    for ((label, from, to, kind), path) in cases.into_iter().zip(expected_paths) {
        let text = example();
        assert!(text.contains(&from), "{label}: {from} not in the example");
        let err = build(&text.replacen(&from, to, 1)).expect_err(label);
        assert_eq!(
            err,
            PolicyError {
                path: path.into(),
                kind
            },
            "{label}"
        );
    }
}

#[test]
fn structural_errors_name_their_path() {
    let hash = hash_api_key("k");
    let grantless = format!("[[callers]]\nname = \"c\"\napi_key_sha256 = [\"{hash}\"]");
    let err = build(&grantless).expect_err("no grants");
    assert_eq!(
        (err.path.as_str(), err.kind),
        ("callers[0].grants", PolicyErrorKind::Empty)
    );

    let memberless = "[[user_groups]]\nname = \"g\"\nmembers = []";
    let err = build(memberless).expect_err("no members");
    assert_eq!(
        (err.path.as_str(), err.kind),
        ("user_groups[0].members", PolicyErrorKind::Empty)
    );

    let group = "[[user_groups]]\nname = \"g\"\nmembers = [\"*\"]\n";
    let twice = format!("{group}{group}");
    let err = build(&twice).expect_err("duplicate group");
    assert_eq!(
        (err.path.as_str(), err.kind),
        (
            "user_groups[1].name",
            PolicyErrorKind::DuplicateGroup("g".into())
        )
    );

    let empty_key = format!(
        "[[callers]]\nname = \"c\"\napi_key_sha256 = [\"{}\"]",
        hash_api_key("")
    );
    let err = build(&empty_key).expect_err("empty key");
    assert_eq!(
        (err.path.as_str(), err.kind),
        (
            "callers[0].api_key_sha256[0]",
            PolicyErrorKind::EmptyKeyHash
        )
    );

    let same_caller_twice = format!(
        "[[callers]]\nname = \"c\"\napi_key_sha256 = [\"{hash}\", \"{}\"]",
        hash.to_ascii_uppercase()
    );
    let err = build(&same_caller_twice).expect_err("hash repeated");
    assert_eq!(
        (err.path.as_str(), err.kind),
        (
            "callers[0].api_key_sha256[1]",
            PolicyErrorKind::DuplicateIdentity("callers[0].api_key_sha256[0]".into())
        )
    );
}

// === property: decisions agree with a naive reference model ===

/// Reference semantics of one selector, written the obvious way.
fn reference_selects(selector: &str, groups: &[(String, Vec<String>)], email: &str) -> bool {
    let email = email.to_ascii_lowercase();
    let selector = selector.to_ascii_lowercase();
    let parts: Vec<&str> = email.split('@').collect();
    let [local, domain] = parts.as_slice() else {
        return false;
    };
    if local.is_empty() || domain.is_empty() {
        return false;
    }
    if let Some(group) = selector.strip_prefix("group:") {
        return groups
            .iter()
            .filter(|(name, _)| name == group)
            .flat_map(|(_, members)| members)
            .any(|member| reference_selects(member, groups, &email));
    }
    if selector == "*" {
        true
    } else if let Some(wanted) = selector.strip_prefix('@') {
        *domain == wanted
    } else if selector.contains('*') {
        let pattern: Vec<char> = selector.chars().collect();
        let text: Vec<char> = email.chars().collect();
        reference_glob(&pattern, &text)
    } else {
        email == selector
    }
}

/// Recursive wildcard matching: `*` tries every split.
fn reference_glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && reference_glob(rest, &text[1..]),
    }
}

fn listed(list: &[String], item: &str) -> bool {
    list.iter().any(|entry| entry == "*" || entry == item)
}

const PROP_ACCOUNTS: [&str; 3] = ["a-one", "b-two", "c-three"];

fn email_strategy() -> impl Strategy<Value = String> {
    let local = prop::collection::vec(
        prop::sample::select(vec!["a", "b", "team-", "x", "A", "Team-"]),
        1..4,
    )
    .prop_map(|parts| parts.concat());
    let domain = prop::sample::select(vec![
        "acme.test",
        "ACME.test",
        "sub.acme.test",
        "evil-acme.test",
        "acme.test.evil",
        "b.test",
    ]);
    (local, domain).prop_map(|(local, domain)| format!("{local}@{domain}"))
}

fn glob_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "*",
            "a",
            "b",
            "team-",
            "@",
            "acme.test",
            "x",
            ".test",
            "B",
            "sub.",
        ]),
        1..6,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("a glob with at most one @", |glob| {
        glob.contains('*') && glob != "*" && glob.matches('@').count() <= 1
    })
}

fn member_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        email_strategy(),
        prop::sample::select(vec![
            "@acme.test",
            "@ACME.Test",
            "@sub.acme.test",
            "@b.test"
        ])
        .prop_map(str::to_owned),
        glob_strategy(),
    ]
}

fn list_or_star(items: impl Strategy<Value = Vec<String>>) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![1 => Just(vec!["*".to_owned()]), 3 => items]
}

fn grant_strategy() -> impl Strategy<Value = RawGrant> {
    let accounts = list_or_star(
        prop::sample::subsequence(PROP_ACCOUNTS.to_vec(), 1..=3)
            .prop_map(|names| names.into_iter().map(str::to_owned).collect()),
    );
    let user = prop_oneof![
        3 => member_strategy(),
        1 => prop::sample::select(vec!["group:g0", "group:g1"]).prop_map(str::to_owned),
    ];
    let users = list_or_star(prop::collection::vec(user, 1..4));
    let operations = list_or_star(
        prop::sample::subsequence(Operation::ALL.to_vec(), 1..=6)
            .prop_map(|ops| ops.into_iter().map(|op| op.as_str().to_owned()).collect()),
    );
    let fields = prop::sample::subsequence(vec!["start_url", "password"], 0..=2)
        .prop_map(|fields| fields.into_iter().map(str::to_owned).collect());
    (accounts, users, operations, fields).prop_map(|(accounts, users, operations, fields)| {
        RawGrant {
            accounts,
            users,
            operations,
            fields,
        }
    })
}

fn groups_strategy() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    let members = || {
        prop::collection::vec(
            prop_oneof![6 => member_strategy(), 1 => Just("*".to_owned())],
            1..4,
        )
    };
    (members(), members()).prop_map(|(g0, g1)| vec![("g0".to_owned(), g0), ("g1".to_owned(), g1)])
}

fn decision_strategy() -> impl Strategy<Value = (Operation, &'static str, String)> {
    let user = prop_oneof![
        8 => email_strategy(),
        1 => prop::sample::select(vec!["", "acme.test", "a@b@acme.test", "@acme.test", "a@"])
            .prop_map(str::to_owned),
    ];
    (
        prop::sample::select(Operation::ALL.to_vec()),
        prop::sample::select(PROP_ACCOUNTS.to_vec()),
        user,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decisions_agree_with_the_reference_model(
        groups in groups_strategy(),
        grants in prop::collection::vec(grant_strategy(), 1..4),
        decisions in prop::collection::vec(decision_strategy(), 1..16),
    ) {
        let raw_groups: Vec<RawUserGroup> = groups
            .iter()
            .map(|(name, members)| RawUserGroup { name: name.clone(), members: members.clone() })
            .collect();
        let raw_caller = RawCaller {
            name: "prop".to_owned(),
            api_key_sha256: vec![hash_api_key("prop-key")],
            mtls_sans: Vec::new(),
            grants: grants.clone(),
            admin: None,
            weight: None,
        };
        let policy = Policy::build(&[raw_caller], &raw_groups, &accounts(&PROP_ACCOUNTS))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let caller = policy.caller("prop").ok_or_else(|| TestCaseError::fail("caller missing"))?;

        for (op, account_name, user) in decisions {
            let allowing: Vec<&RawGrant> = grants
                .iter()
                .filter(|g| listed(&g.accounts, account_name) && listed(&g.operations, op.as_str()))
                .filter(|g| g.users.iter().any(|s| reference_selects(s, &groups, &user)))
                .collect();
            let expected_fields: FieldSet = allowing
                .iter()
                .flat_map(|g| &g.fields)
                .filter_map(|f| SensitiveField::parse(f))
                .collect();
            let account = account(account_name);
            prop_assert_eq!(
                caller.allows(op, &account, &user),
                !allowing.is_empty(),
                "{} {} {:?}",
                op,
                account_name,
                user
            );
            prop_assert_eq!(caller.visible_fields(op, &account, &user), expected_fields);
        }

        for op in Operation::ALL {
            let expected: Vec<&str> = PROP_ACCOUNTS
                .iter()
                .copied()
                .filter(|name| {
                    grants
                        .iter()
                        .any(|g| listed(&g.accounts, name) && listed(&g.operations, op.as_str()))
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let actual: Vec<&str> = caller.accounts_for(op).iter().map(|a| a.as_str()).collect();
            prop_assert_eq!(actual, expected);
        }
    }
}

#[test]
fn admin_roles_are_parsed_and_write_includes_read() {
    let key = hash_api_key("ops-key");
    let policy = build(&format!(
        r#"
[[callers]]
name = "platform"
api_key_sha256 = ["{key}"]
admin = "write"

[[callers]]
name = "viewer"
mtls_sans = ["viewer.acme.test"]
admin = "read"
  [[callers.grants]]
  accounts = ["*"]
  users = ["*"]
  operations = ["read"]
"#
    ))
    .expect("an admin needs no meeting grant");
    let platform = caller(&policy, "platform");
    assert!(platform.is_admin(AdminRole::Read) && platform.is_admin(AdminRole::Write));
    assert!(platform.accounts_for(Operation::Read).is_empty());
    let viewer = caller(&policy, "viewer");
    assert!(viewer.is_admin(AdminRole::Read) && !viewer.is_admin(AdminRole::Write));
    let scheduler = caller(&example_policy(), "scheduler");
    assert!(!scheduler.is_admin(AdminRole::Read));

    let bad = build(&format!(
        "[[callers]]\nname = \"x\"\napi_key_sha256 = [\"{key}\"]\nadmin = \"root\"\n"
    ))
    .unwrap_err();
    assert_eq!(bad.path, "callers[0].admin");
    assert!(bad.to_string().contains("root"));
    let no_grants = build(&format!(
        "[[callers]]\nname = \"x\"\napi_key_sha256 = [\"{key}\"]\n"
    ))
    .unwrap_err();
    assert_eq!(no_grants.path, "callers[0].grants");
}
