//! What a request may ask, checked before anything is looked up or sent: user and meeting ids,
//! and Zoom's create and update bodies built from a meeting's fields.
//!
//! The rules follow Zoom's documented ranges, so a bad request is refused here, naming its field,
//! instead of spending the account's Zoom budget on a 400; and the gateway's own security rules
//! (fields only Zoom sets, no `schedule_for`) hold for every front end alike.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::UserRef;
use crate::error::{Error, FieldViolation};
use crate::routing::normalize_email;
use crate::zoom::{ListMeetings, MeetingListKind};

const MAX_TOPIC_CHARS: usize = 200;
const MAX_AGENDA_CHARS: usize = 2000;
const MAX_PASSWORD_CHARS: usize = 10;
const MAX_PAGE_SIZE: i32 = 300;

/// Reads a create's `request_id` (AIP-155): empty for none, else a UUID other than the nil
/// UUID, kept lowercased so that one id is one id however it is spelt.
pub fn request_id(text: &str) -> Result<Option<String>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    let groups: Vec<&str> = text.split('-').collect();
    let shaped = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()));
    if !shaped {
        return Err(Error::invalid(
            "request_id",
            "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000",
        ));
    }
    if text.bytes().all(|b| b == b'0' || b == b'-') {
        return Err(Error::invalid("request_id", "must not be the nil UUID"));
    }
    Ok(Some(text.to_ascii_lowercase()))
}

/// Zoom's meeting types (`type`): instant, scheduled, recurring without and with a fixed time,
/// personal, screen share only.
const MEETING_TYPES: [i32; 6] = [1, 2, 3, PERSONAL, RECURRING_FIXED_TIME, 10];
const PERSONAL: i32 = 4;
const RECURRING_FIXED_TIME: i32 = 8;

/// Top-level keys of the typed fields; `extra` may not set them.
const TYPED_KEYS: [&str; 9] = [
    "topic",
    "type",
    "start_time",
    "duration",
    "timezone",
    "agenda",
    "password",
    "recurrence",
    "settings",
];

/// Top-level keys only Zoom writes; `extra` may not set them either.
const ZOOM_OWNED_KEYS: [&str; 9] = [
    "id",
    "uuid",
    "host_id",
    "host_email",
    "join_url",
    "start_url",
    "created_at",
    "status",
    "occurrences",
];

/// Collects every violation of a request before answering, so the caller fixes them at once.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    fn finish<T>(self, value: T) -> Result<T, Error> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

/// A point in time as a front end sent it, not yet checked to be one: seconds and nanoseconds
/// since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

/// A meeting's fields as a request sets them, under the API's names; a zero or empty value is
/// unset, except where an update mask names the field.
#[derive(Clone, Debug, Default)]
pub struct MeetingDraft {
    pub topic: String,
    /// Zoom's meeting type number; 0 when unset.
    pub kind: i32,
    pub start_time: Option<Timestamp>,
    pub duration_minutes: i32,
    pub timezone: String,
    pub agenda: String,
    pub password: String,
    pub recurrence: Option<RecurrenceDraft>,
    /// Zoom's `settings` object, passed through.
    pub settings: Option<Map<String, Value>>,
    /// Further top-level keys of Zoom's body.
    pub extra: Option<Map<String, Value>>,
}

/// A recurrence as a request sets it, in Zoom's terms.
#[derive(Clone, Debug, Default)]
pub struct RecurrenceDraft {
    /// 1 daily, 2 weekly, 3 monthly; 0 when unset.
    pub kind: i32,
    pub repeat_interval: i32,
    pub weekly_days: Vec<i32>,
    pub monthly_day: i32,
    pub monthly_week: i32,
    pub monthly_week_day: i32,
    pub end_times: i32,
    pub end_time: Option<Timestamp>,
}

// === ids and users ===

/// Reads a user named by email: lowercased, refused when it is no address or holds control or
/// format characters.
pub fn user_email(email: &str) -> Result<UserRef, Error> {
    // Checked before anything else: such an address must not reach a probe, a log line or the
    // audit log, where a terminal would later interpret it. The character is named, not echoed.
    if let Some(c) = email
        .chars()
        .find(|&c| crate::routing::is_control_or_format(c))
    {
        return Err(Error::invalid(
            "user_email",
            format!(
                "must not contain control or format characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if email.trim().is_empty() {
        return Err(Error::invalid("user_email", "must not be empty"));
    }
    normalize_email(email)
        .map(UserRef::Email)
        .ok_or_else(|| Error::invalid("user_email", "is not an email address"))
}

/// Reads a user named by Zoom user id; `me` is refused.
pub fn user_id(id: &str) -> Result<UserRef, Error> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if id.is_empty() {
        return Err(Error::invalid("user_id", "must not be empty"));
    }
    // Zoom reads `me` as the token's own user, which no grant can name.
    if id.eq_ignore_ascii_case("me") {
        return Err(Error::invalid(
            "user_id",
            "`me` is not allowed; name the user by id or email",
        ));
    }
    if !valid {
        return Err(Error::invalid(
            "user_id",
            "is not a Zoom user id (letters, digits, '-' and '_')",
        ));
    }
    Ok(UserRef::Id(id.to_owned()))
}

/// Checks a meeting id; Zoom's ids are positive 64-bit numbers.
pub fn meeting_id(id: i64) -> Result<i64, Error> {
    if id <= 0 {
        return Err(Error::invalid(
            "meeting_id",
            "must be a positive Zoom meeting id",
        ));
    }
    Ok(id)
}

/// Checks an occurrence id: Zoom's are digits (start times in milliseconds).
pub fn occurrence_id(id: &str) -> Result<Option<String>, Error> {
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > 20 || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::invalid(
            "occurrence_id",
            "must be a Zoom occurrence id (digits)",
        ));
    }
    Ok(Some(id.to_owned()))
}

// === meeting bodies ===

/// Builds Zoom's create body from a meeting.
pub fn create_body(meeting: &MeetingDraft) -> Result<Map<String, Value>, Error> {
    let mut violations = Violations::default();
    let mut body = Map::new();
    for path in FIELDS {
        if is_set(meeting, path) {
            write_field(meeting, path, &mut body, &mut violations);
        }
    }
    if meeting.kind == PERSONAL {
        violations.add("meeting.type", "personal meetings cannot be created");
    }
    check_recurrence_type(meeting, &body, &mut violations);
    violations.finish(body)
}

/// Builds Zoom's update body from the fields named in the mask (or every set field without one).
pub fn update_body(
    meeting: &MeetingDraft,
    mask: Option<&[String]>,
) -> Result<Map<String, Value>, Error> {
    let mut violations = Violations::default();
    let mut body = Map::new();
    let paths: Vec<String> = match mask {
        Some(mask) if !mask.is_empty() => mask.to_vec(),
        _ => FIELDS
            .iter()
            .filter(|path| is_set(meeting, path))
            .map(|path| (*path).to_owned())
            .collect(),
    };
    if paths.is_empty() {
        violations.add("update_mask", "name at least one field to change");
    }
    for (i, path) in paths.iter().enumerate() {
        if !FIELDS.contains(&path.as_str()) {
            violations.add(
                format!("update_mask.paths[{i}]"),
                format!(
                    "`{path}` cannot be updated; use one of {}",
                    FIELDS.join(", ")
                ),
            );
            continue;
        }
        write_field(meeting, path, &mut body, &mut violations);
    }
    if body.get("type").and_then(Value::as_i64) == Some(i64::from(PERSONAL)) {
        violations.add("meeting.type", "a meeting cannot become a personal meeting");
    }
    violations.finish(body)
}

/// Fields a request may set, in the order their violations are reported; an update may name any.
const FIELDS: [&str; 10] = [
    "topic",
    "type",
    "start_time",
    "duration_minutes",
    "timezone",
    "agenda",
    "password",
    "recurrence",
    "settings",
    "extra",
];

fn is_set(meeting: &MeetingDraft, path: &str) -> bool {
    match path {
        "topic" => !meeting.topic.is_empty(),
        "type" => meeting.kind != 0,
        "start_time" => meeting.start_time.is_some(),
        "duration_minutes" => meeting.duration_minutes != 0,
        "timezone" => !meeting.timezone.is_empty(),
        "agenda" => !meeting.agenda.is_empty(),
        "password" => !meeting.password.is_empty(),
        "recurrence" => meeting.recurrence.is_some(),
        "settings" => meeting.settings.is_some(),
        "extra" => meeting.extra.is_some(),
        _ => false,
    }
}

/// Validates one field and writes it into Zoom's body under Zoom's name.
fn write_field(
    meeting: &MeetingDraft,
    path: &str,
    body: &mut Map<String, Value>,
    v: &mut Violations,
) {
    let field = format!("meeting.{path}");
    match path {
        "topic" => {
            if meeting.topic.chars().count() > MAX_TOPIC_CHARS {
                v.add(field, format!("at most {MAX_TOPIC_CHARS} characters"));
            } else {
                body.insert("topic".into(), meeting.topic.clone().into());
            }
        }
        "type" => {
            if MEETING_TYPES.contains(&meeting.kind) {
                body.insert("type".into(), meeting.kind.into());
            } else {
                v.add(field, format!("unknown meeting type {}", meeting.kind));
            }
        }
        "start_time" => match meeting.start_time.as_ref().map(timestamp_to_zoom) {
            Some(Some(time)) => {
                body.insert("start_time".into(), time.into());
            }
            _ => v.add(field, "is not a valid time"),
        },
        "duration_minutes" => {
            if (1..=1440).contains(&meeting.duration_minutes) {
                body.insert("duration".into(), meeting.duration_minutes.into());
            } else {
                v.add(field, "must be 1 to 1440 minutes");
            }
        }
        "timezone" => {
            if chrono_tz::Tz::from_str(&meeting.timezone).is_ok() {
                body.insert("timezone".into(), meeting.timezone.clone().into());
            } else {
                v.add(
                    field,
                    format!("`{}` is not an IANA time zone", meeting.timezone),
                );
            }
        }
        "agenda" => {
            if meeting.agenda.chars().count() > MAX_AGENDA_CHARS {
                v.add(field, format!("at most {MAX_AGENDA_CHARS} characters"));
            } else {
                body.insert("agenda".into(), meeting.agenda.clone().into());
            }
        }
        "password" => {
            let password = &meeting.password;
            let allowed = |c: char| c.is_ascii_alphanumeric() || "@-_*".contains(c);
            if password.chars().count() > MAX_PASSWORD_CHARS {
                v.add(field, format!("at most {MAX_PASSWORD_CHARS} characters"));
            } else if !password.chars().all(allowed) {
                v.add(field, "only letters, digits and @ - _ * are allowed");
            } else {
                body.insert("password".into(), password.clone().into());
            }
        }
        "recurrence" => {
            let default = RecurrenceDraft::default();
            let recurrence = meeting.recurrence.as_ref().unwrap_or(&default);
            if let Some(value) = recurrence_body(recurrence, v) {
                body.insert("recurrence".into(), value);
            }
        }
        "settings" => {
            let settings = meeting.settings.clone().unwrap_or_default();
            body.insert("settings".into(), Value::Object(settings));
        }
        "extra" => {
            for (key, value) in meeting.extra.iter().flatten() {
                let refused = if key == "schedule_for" {
                    // It would move the meeting to a host no grant was checked for.
                    Some(
                        "scheduling for another user is not supported: create the meeting as that user",
                    )
                } else if TYPED_KEYS.contains(&key.as_str()) {
                    Some("use the typed field instead")
                } else if ZOOM_OWNED_KEYS.contains(&key.as_str()) {
                    Some("is set by Zoom, not by requests")
                } else {
                    None
                };
                match refused {
                    Some(why) => v.add(format!("meeting.extra.{key}"), why),
                    None => {
                        body.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        _ => v.add(field, "unknown field"),
    }
}

fn check_recurrence_type(meeting: &MeetingDraft, body: &Map<String, Value>, v: &mut Violations) {
    let recurring_fixed = i64::from(RECURRING_FIXED_TIME);
    if body.contains_key("recurrence")
        && body.get("type").and_then(Value::as_i64) != Some(recurring_fixed)
    {
        v.add(
            "meeting.recurrence",
            "only a RECURRING_FIXED_TIME meeting has a recurrence",
        );
    }
    if meeting.kind == RECURRING_FIXED_TIME && meeting.recurrence.is_none() {
        v.add(
            "meeting.recurrence",
            "a RECURRING_FIXED_TIME meeting needs a recurrence",
        );
    }
}

fn recurrence_body(r: &RecurrenceDraft, v: &mut Violations) -> Option<Value> {
    let at = |name: &str| format!("meeting.recurrence.{name}");
    let before = v.0.len();
    let mut body = Map::new();
    // Zoom's recurrence types: 1 daily, 2 weekly, 3 monthly.
    let max_interval = match r.kind {
        1 => 99,
        2 => 50,
        3 => 10,
        _ => {
            v.add(
                at("type"),
                format!("must be DAILY, WEEKLY or MONTHLY, not {}", r.kind),
            );
            0
        }
    };
    body.insert("type".into(), r.kind.into());
    if r.repeat_interval != 0 {
        if max_interval > 0 && !(1..=max_interval).contains(&r.repeat_interval) {
            v.add(
                at("repeat_interval"),
                format!("must be 1 to {max_interval}"),
            );
        }
        body.insert("repeat_interval".into(), r.repeat_interval.into());
    }
    if !r.weekly_days.is_empty() {
        if r.weekly_days.iter().any(|d| !(1..=7).contains(d)) {
            v.add(at("weekly_days"), "days are 1 (Sunday) to 7 (Saturday)");
        }
        let days: Vec<String> = r.weekly_days.iter().map(i32::to_string).collect();
        body.insert("weekly_days".into(), days.join(",").into());
    }
    if r.monthly_day != 0 {
        if !(1..=31).contains(&r.monthly_day) {
            v.add(at("monthly_day"), "must be 1 to 31");
        }
        body.insert("monthly_day".into(), r.monthly_day.into());
    }
    if r.monthly_week != 0 {
        if !matches!(r.monthly_week, -1 | 1..=4) {
            v.add(at("monthly_week"), "must be -1 (last week) or 1 to 4");
        }
        body.insert("monthly_week".into(), r.monthly_week.into());
    }
    if r.monthly_week_day != 0 {
        if !(1..=7).contains(&r.monthly_week_day) {
            v.add(at("monthly_week_day"), "must be 1 (Sunday) to 7 (Saturday)");
        }
        body.insert("monthly_week_day".into(), r.monthly_week_day.into());
    }
    if r.end_times != 0 {
        if !(1..=60).contains(&r.end_times) {
            v.add(at("end_times"), "must be 1 to 60");
        }
        body.insert("end_times".into(), r.end_times.into());
    }
    if let Some(end) = &r.end_time {
        if r.end_times != 0 {
            v.add(at("end_time"), "set end_time or end_times, not both");
        }
        match timestamp_to_zoom(end) {
            Some(end) => {
                body.insert("end_date_time".into(), end.into());
            }
            None => v.add(at("end_time"), "is not a valid time"),
        }
    }
    (v.0.len() == before).then_some(Value::Object(body))
}

/// Checks a page request of a user's meetings (`page_size` 0 means Zoom's default).
pub fn list_query(
    kind: MeetingListKind,
    page_size: i32,
    page_token: &str,
) -> Result<ListMeetings, Error> {
    let mut violations = Violations::default();
    let page_size = match page_size {
        0 => None,
        size @ 1..=MAX_PAGE_SIZE => Some(size as u32),
        _ => {
            violations.add("page_size", format!("must be 1 to {MAX_PAGE_SIZE}"));
            None
        }
    };
    let token = page_token;
    if token.len() > 512 || token.chars().any(|c| c.is_control()) {
        violations.add("page_token", "is not a page token this service returned");
    }
    violations.finish(ListMeetings {
        kind,
        page_size,
        next_page_token: (!token.is_empty()).then(|| token.to_owned()),
    })
}

/// Formats a timestamp as Zoom's GMT form `yyyy-MM-ddTHH:mm:ssZ`.
pub(crate) fn timestamp_to_zoom(ts: &Timestamp) -> Option<String> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    let time = DateTime::<Utc>::from_timestamp(ts.seconds, nanos)?;
    Some(time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(result: Result<Map<String, Value>, Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    /// Any front end gets the same rules from a draft, with no proto in sight.
    #[test]
    fn a_draft_follows_zoom_s_ranges_and_the_gateway_s_security_rules() {
        let extra = serde_json::json!({"schedule_for": "boss@x.test", "start_url": "https://x"});
        let draft = MeetingDraft {
            topic: "Review".into(),
            kind: 2,
            duration_minutes: 0,
            start_time: Some(Timestamp {
                seconds: 1_900_000_000,
                nanos: 0,
            }),
            extra: extra.as_object().cloned(),
            ..Default::default()
        };
        assert_eq!(
            fields(create_body(&draft)),
            ["meeting.extra.schedule_for", "meeting.extra.start_url"]
        );
        let draft = MeetingDraft {
            extra: None,
            ..draft
        };
        let body = create_body(&draft).unwrap();
        assert_eq!(
            Value::Object(body),
            serde_json::json!({"topic": "Review", "type": 2, "start_time": "2030-03-17T17:46:40Z"})
        );
        let personal = MeetingDraft {
            kind: PERSONAL,
            ..Default::default()
        };
        assert_eq!(fields(create_body(&personal)), ["meeting.type"]);
        let mask = ["agenda".to_owned()];
        let cleared = update_body(&MeetingDraft::default(), Some(&mask)).unwrap();
        assert_eq!(Value::Object(cleared), serde_json::json!({"agenda": ""}));
    }

    #[test]
    fn ids_and_pages_are_checked() {
        assert!(meeting_id(0).is_err());
        assert_eq!(meeting_id(85_746_065).unwrap(), 85_746_065);
        assert_eq!(occurrence_id("").unwrap(), None);
        assert!(occurrence_id("16488000000001x").is_err());
        assert!(user_id("me").is_err());
        assert_eq!(
            user_email("Ann@X.test").unwrap(),
            UserRef::Email("ann@x.test".into())
        );
        assert!(list_query(MeetingListKind::Scheduled, 301, "").is_err());
        assert!(list_query(MeetingListKind::Live, 300, "next\u{7}").is_err());
        let page = list_query(MeetingListKind::Live, 30, "abc").unwrap();
        assert_eq!(page.page_size, Some(30));
        assert_eq!(page.next_page_token.as_deref(), Some("abc"));
    }
}
