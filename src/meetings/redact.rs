//! What a caller sees of a meeting: the fields that let someone start it as host or join it
//! without the passcode are removed unless a grant names them.

use serde_json::Value;

use crate::policy::{FieldSet, SensitiveField};
use crate::zoom::ZoomMeeting;

/// Zoom keys that carry the meeting passcode in some form.
const PASSWORD_KEYS: [&str; 3] = ["h323_password", "pstn_password", "encrypted_password"];
/// Zoom keys that let their holder claim the host role, like `start_url`.
const HOST_KEYS: [&str; 1] = ["dynamic_host_key"];

/// Removes the fields of `meeting` outside `visible`.
pub(super) fn redact(meeting: &mut ZoomMeeting, visible: FieldSet) {
    if !visible.contains(SensitiveField::StartUrl) {
        meeting.start_url = None;
        for key in HOST_KEYS {
            meeting.rest.remove(key);
        }
    }
    if !visible.contains(SensitiveField::Password) {
        meeting.password = None;
        for key in PASSWORD_KEYS {
            meeting.rest.remove(key);
        }
        if let Some(join_url) = meeting.join_url.as_mut() {
            *join_url = strip_query_param(join_url, "pwd");
        }
        // Each exception carries a personal join link that skips authentication.
        let exceptions = meeting
            .settings
            .as_mut()
            .and_then(|settings| settings.get_mut("authentication_exception"))
            .and_then(Value::as_array_mut);
        for exception in exceptions.into_iter().flatten() {
            if let Some(exception) = exception.as_object_mut() {
                exception.remove("join_url");
            }
        }
    }
}

/// Returns `url` without the query parameter `name` (Zoom embeds the passcode in `pwd`).
fn strip_query_param(url: &str, name: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meeting() -> ZoomMeeting {
        serde_json::from_value(json!({
            "id": 81234567890_i64,
            "host_email": "ann@x.test",
            "password": "abc123",
            "h323_password": "975310",
            "pstn_password": "975310",
            "encrypted_password": "Zm9v",
            "dynamic_host_key": "654321",
            "join_url": "https://z.test/j/81234567890?pwd=Zm9v",
            "start_url": "https://z.test/s/81234567890?zak=secret",
            "settings": {
                "waiting_room": true,
                "authentication_exception": [
                    {"name": "Guest", "email": "guest@y.test", "join_url": "https://z.test/j/1?tk=x"}
                ]
            },
            "template_id": "t1"
        }))
        .unwrap()
    }

    #[test]
    fn nothing_sensitive_is_left_without_a_grant() {
        let mut m = meeting();
        redact(&mut m, FieldSet::EMPTY);
        let shown = serde_json::to_string(&m).unwrap();
        for secret in ["abc123", "975310", "Zm9v", "654321", "zak=", "tk=x"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(m.join_url.as_deref(), Some("https://z.test/j/81234567890"));
        assert!(
            shown.contains("guest@y.test"),
            "the exception itself stays: {shown}"
        );
        assert!(shown.contains("template_id"));
    }

    #[test]
    fn each_grant_shows_its_own_fields_only() {
        let mut host = meeting();
        redact(&mut host, FieldSet::EMPTY.with(SensitiveField::StartUrl));
        assert!(host.start_url.is_some() && host.rest.contains_key("dynamic_host_key"));
        assert!(host.password.is_none() && !host.rest.contains_key("pstn_password"));

        let mut guest = meeting();
        redact(&mut guest, FieldSet::EMPTY.with(SensitiveField::Password));
        assert!(guest.start_url.is_none() && !guest.rest.contains_key("dynamic_host_key"));
        assert_eq!(guest.password.as_deref(), Some("abc123"));
        assert!(guest.join_url.unwrap().contains("pwd=Zm9v"));
    }

    #[test]
    fn strips_only_the_passcode_parameter() {
        assert_eq!(
            strip_query_param("https://z.test/j/1?pwd=abc&uname=x", "pwd"),
            "https://z.test/j/1?uname=x"
        );
        assert_eq!(
            strip_query_param("https://z.test/j/1?pwd=abc", "pwd"),
            "https://z.test/j/1"
        );
        assert_eq!(
            strip_query_param("https://z.test/j/1", "pwd"),
            "https://z.test/j/1"
        );
        assert_eq!(
            strip_query_param("https://z.test/j/1?pwdx=1", "pwd"),
            "https://z.test/j/1?pwdx=1"
        );
    }
}
