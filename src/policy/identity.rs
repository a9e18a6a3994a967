//! Caller identities: API key hashes and the subject alternative names of client certificates.

use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a front end knows of who is calling, before the policy names a caller. No `Debug`:
/// the authorization holds the API key.
#[derive(Clone, Copy, Default)]
pub struct Identity<'a> {
    /// The `authorization` header, e.g. `Bearer <api key>`.
    pub authorization: Option<&'a str>,
    /// The DER leaf certificate the TLS layer verified, if the client presented one.
    pub certificate: Option<&'a [u8]>,
}

impl<'a> Identity<'a> {
    /// The API key of a `Bearer` authorization (scheme without case, surrounding spaces trimmed).
    pub fn bearer_token(&self) -> Option<&'a str> {
        let (scheme, key) = self.authorization?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
    }
}

/// Returns the lowercase hex SHA-256 of an API key, for the `zoomgate hash-key` CLI and tests;
/// the config holds only this hash, never the key.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(digest_api_key(key))
}

/// Returns the DNS and URI subject alternative names of a DER certificate, in certificate order.
///
/// Returns an empty list for anything that does not parse: such a peer has no identity.
pub fn sans_of_certificate(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

pub(super) fn digest_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses the config form of a key hash: exactly 64 hex digits, either case.
pub(super) fn parse_key_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

/// Why a configured SAN cannot identify a caller.
pub(super) fn san_problem(san: &str) -> Option<&'static str> {
    if san.is_empty() {
        Some("empty")
    } else if san.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or a control character")
    } else if san.contains('*') {
        Some("wildcards cannot identify one caller")
    } else {
        None
    }
}

/// The form SANs are compared in: URIs (they contain `:`) exactly, DNS names ASCII-lowercased.
pub(super) fn normalize_san(san: &str) -> String {
    if san.contains(':') {
        san.to_owned()
    } else {
        san.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, SanType};

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            parse_key_hash(&hash_api_key("k")),
            Some(digest_api_key("k"))
        );
    }

    #[test]
    fn key_hashes_must_be_64_hex_digits() {
        let good = hash_api_key("k");
        assert!(parse_key_hash(&good.to_ascii_uppercase()).is_some());
        for bad in [
            &good[..63],
            &format!("{good}0"),
            &good.replace(|c: char| c.is_ascii_digit(), "g"),
            "",
        ] {
            assert!(parse_key_hash(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sans_of_a_certificate_lists_dns_and_uri_names() {
        let mut params = CertificateParams::new(vec!["scheduler.acme.test".to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::URI(
            "spiffe://acme.test/ns/prod/sa/scheduler"
                .try_into()
                .unwrap(),
        ));
        params
            .subject_alt_names
            .push(SanType::Rfc822Name("ops@acme.test".try_into().unwrap()));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();

        assert_eq!(
            sans_of_certificate(cert.der()),
            [
                "scheduler.acme.test",
                "spiffe://acme.test/ns/prod/sa/scheduler"
            ]
        );
    }

    #[test]
    fn garbage_has_no_sans() {
        assert!(sans_of_certificate(b"").is_empty());
        assert!(sans_of_certificate(b"not a certificate").is_empty());
        let cert = rcgen::generate_simple_self_signed(vec!["a.acme.test".to_owned()]).unwrap();
        let der = cert.cert.der();
        assert!(sans_of_certificate(&der[..der.len() / 2]).is_empty());
    }

    #[test]
    fn dns_sans_compare_without_case_and_uris_exactly() {
        assert_eq!(normalize_san("Scheduler.ACME.test"), "scheduler.acme.test");
        assert_eq!(
            normalize_san("spiffe://acme.test/ns/prod/sa/Scheduler"),
            "spiffe://acme.test/ns/prod/sa/Scheduler"
        );
        assert!(san_problem("*.acme.test").is_some());
        assert!(san_problem("").is_some());
        assert!(san_problem("a b").is_some());
        assert!(san_problem("scheduler.acme.test").is_none());
    }
}
