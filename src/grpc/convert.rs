//! Proto <-> domain conversion: request validation into Zoom bodies, Zoom meetings into protos.
//!
//! Validation follows Zoom's documented ranges so a bad request is refused here, naming its
//! field, instead of spending the account's Zoom budget on a 400.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use prost_types::{ListValue, Struct, Timestamp, value::Kind};
use serde_json::{Map, Number, Value};

use crate::error::{Error, FieldViolation};
use crate::meetings::{MeetingList, MeetingView, UserRef};
use crate::proto;
use crate::routing::normalize_email;
use crate::zoom::{self, ListMeetings, MeetingListKind, ZoomMeeting};

const MAX_TOPIC_CHARS: usize = 200;
const MAX_AGENDA_CHARS: usize = 2000;
const MAX_PASSWORD_CHARS: usize = 10;
const MAX_PAGE_SIZE: i32 = 300;

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

// === requests ===

/// Reads the `user` oneof of a request.
pub fn user_ref(user: Option<&proto::create_meeting_request::User>) -> Result<UserRef, Error> {
    use proto::create_meeting_request::User;
    match user {
        Some(User::UserEmail(email)) => parse_email(email),
        Some(User::UserId(id)) => parse_user_id(id),
        None => Err(Error::invalid("user", "set user_email or user_id")),
    }
}

/// Reads the `user` oneof of a list request.
pub fn list_user_ref(user: Option<&proto::list_meetings_request::User>) -> Result<UserRef, Error> {
    use proto::list_meetings_request::User;
    match user {
        Some(User::UserEmail(email)) => parse_email(email),
        Some(User::UserId(id)) => parse_user_id(id),
        None => Err(Error::invalid("user", "set user_email or user_id")),
    }
}

fn parse_email(email: &str) -> Result<UserRef, Error> {
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

fn parse_user_id(id: &str) -> Result<UserRef, Error> {
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

/// Builds Zoom's create body from a meeting.
pub fn create_body(meeting: Option<&proto::Meeting>) -> Result<Map<String, Value>, Error> {
    let default = proto::Meeting::default();
    let meeting = meeting.unwrap_or(&default);
    let mut violations = Violations::default();
    let mut body = Map::new();
    for path in [
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
    ] {
        if is_set(meeting, path) {
            write_field(meeting, path, &mut body, &mut violations);
        }
    }
    if meeting.r#type == proto::MeetingType::Personal as i32 {
        violations.add("meeting.type", "personal meetings cannot be created");
    }
    check_recurrence_type(meeting, &body, &mut violations);
    violations.finish(body)
}

/// Builds Zoom's update body from the fields named in the mask (or every set field without one).
pub fn update_body(
    meeting: Option<&proto::Meeting>,
    mask: Option<&prost_types::FieldMask>,
) -> Result<Map<String, Value>, Error> {
    let default = proto::Meeting::default();
    let meeting = meeting.unwrap_or(&default);
    let mut violations = Violations::default();
    let mut body = Map::new();
    let paths: Vec<String> = match mask {
        Some(mask) if !mask.paths.is_empty() => mask.paths.clone(),
        _ => UPDATABLE
            .iter()
            .filter(|path| is_set(meeting, path))
            .map(|path| (*path).to_owned())
            .collect(),
    };
    if paths.is_empty() {
        violations.add("update_mask", "name at least one field to change");
    }
    for (i, path) in paths.iter().enumerate() {
        if !UPDATABLE.contains(&path.as_str()) {
            violations.add(
                format!("update_mask.paths[{i}]"),
                format!(
                    "`{path}` cannot be updated; use one of {}",
                    UPDATABLE.join(", ")
                ),
            );
            continue;
        }
        write_field(meeting, path, &mut body, &mut violations);
    }
    if body.get("type").and_then(Value::as_i64) == Some(proto::MeetingType::Personal as i64) {
        violations.add("meeting.type", "a meeting cannot become a personal meeting");
    }
    violations.finish(body)
}

/// Fields an update may name.
const UPDATABLE: [&str; 10] = [
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

fn is_set(meeting: &proto::Meeting, path: &str) -> bool {
    match path {
        "topic" => !meeting.topic.is_empty(),
        "type" => meeting.r#type != 0,
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
    meeting: &proto::Meeting,
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
        "type" => match proto::MeetingType::try_from(meeting.r#type) {
            Ok(proto::MeetingType::Unspecified) | Err(_) => {
                v.add(field, format!("unknown meeting type {}", meeting.r#type));
            }
            Ok(kind) => {
                body.insert("type".into(), (kind as i32).into());
            }
        },
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
            let default = proto::Recurrence::default();
            let recurrence = meeting.recurrence.as_ref().unwrap_or(&default);
            if let Some(value) = recurrence_body(recurrence, v) {
                body.insert("recurrence".into(), value);
            }
        }
        "settings" => {
            let settings = meeting.settings.clone().unwrap_or_default();
            match struct_to_json(&settings, &field) {
                Ok(value) => {
                    body.insert("settings".into(), Value::Object(value));
                }
                Err(violation) => v.0.push(violation),
            }
        }
        "extra" => {
            let extra = meeting.extra.clone().unwrap_or_default();
            match struct_to_json(&extra, &field) {
                Ok(value) => {
                    for (key, value) in value {
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
                                body.insert(key, value);
                            }
                        }
                    }
                }
                Err(violation) => v.0.push(violation),
            }
        }
        _ => v.add(field, "unknown field"),
    }
}

fn check_recurrence_type(meeting: &proto::Meeting, body: &Map<String, Value>, v: &mut Violations) {
    let recurring_fixed = proto::MeetingType::RecurringFixedTime as i64;
    if body.contains_key("recurrence")
        && body.get("type").and_then(Value::as_i64) != Some(recurring_fixed)
    {
        v.add(
            "meeting.recurrence",
            "only a RECURRING_FIXED_TIME meeting has a recurrence",
        );
    }
    if meeting.r#type == recurring_fixed as i32 && meeting.recurrence.is_none() {
        v.add(
            "meeting.recurrence",
            "a RECURRING_FIXED_TIME meeting needs a recurrence",
        );
    }
}

fn recurrence_body(r: &proto::Recurrence, v: &mut Violations) -> Option<Value> {
    use proto::recurrence::Type;
    let at = |name: &str| format!("meeting.recurrence.{name}");
    let before = v.0.len();
    let mut body = Map::new();
    let kind = Type::try_from(r.r#type).unwrap_or(Type::Unspecified);
    let max_interval = match kind {
        Type::Daily => 99,
        Type::Weekly => 50,
        Type::Monthly => 10,
        Type::Unspecified => {
            v.add(
                at("type"),
                format!("must be DAILY, WEEKLY or MONTHLY, not {}", r.r#type),
            );
            0
        }
    };
    body.insert("type".into(), r.r#type.into());
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

/// Reads a list request into Zoom's query.
pub fn list_query(request: &proto::ListMeetingsRequest) -> Result<ListMeetings, Error> {
    use proto::list_meetings_request::Type;
    let mut violations = Violations::default();
    let kind = match Type::try_from(request.r#type) {
        Ok(Type::Unspecified | Type::Scheduled) => MeetingListKind::Scheduled,
        Ok(Type::Live) => MeetingListKind::Live,
        Ok(Type::Upcoming) => MeetingListKind::Upcoming,
        Ok(Type::UpcomingMeetings) => MeetingListKind::UpcomingMeetings,
        Ok(Type::PreviousMeetings) => MeetingListKind::PreviousMeetings,
        Err(_) => {
            violations.add("type", format!("unknown list type {}", request.r#type));
            MeetingListKind::Scheduled
        }
    };
    let page_size = match request.page_size {
        0 => None,
        size @ 1..=MAX_PAGE_SIZE => Some(size as u32),
        _ => {
            violations.add("page_size", format!("must be 1 to {MAX_PAGE_SIZE}"));
            None
        }
    };
    let token = &request.page_token;
    if token.len() > 512 || token.chars().any(|c| c.is_control()) {
        violations.add("page_token", "is not a page token this service returned");
    }
    violations.finish(ListMeetings {
        kind,
        page_size,
        next_page_token: (!token.is_empty()).then(|| token.clone()),
    })
}

// === responses ===

/// Converts a meeting the caller may see into its proto.
pub fn meeting_to_proto(view: MeetingView) -> proto::Meeting {
    meeting_proto(view.account.as_str(), view.meeting)
}

/// Converts a page of meetings into the list response.
pub fn list_to_proto(list: MeetingList) -> proto::ListMeetingsResponse {
    let account = list.account.as_str();
    proto::ListMeetingsResponse {
        meetings: list
            .meetings
            .into_iter()
            .map(|m| meeting_proto(account, m))
            .collect(),
        next_page_token: list.next_page_token,
        total_size: i32::try_from(list.total_records).unwrap_or(i32::MAX),
    }
}

fn meeting_proto(account: &str, m: ZoomMeeting) -> proto::Meeting {
    proto::Meeting {
        id: m.id,
        uuid: m.uuid.unwrap_or_default(),
        account: account.to_owned(),
        host_id: m.host_id.unwrap_or_default(),
        host_email: m.host_email.unwrap_or_default(),
        topic: m.topic.unwrap_or_default(),
        r#type: m
            .kind
            .and_then(|k| i32::try_from(k).ok())
            .unwrap_or_default(),
        start_time: m.start_time.as_deref().and_then(zoom_to_timestamp),
        duration_minutes: m
            .duration
            .and_then(|d| i32::try_from(d).ok())
            .unwrap_or_default(),
        timezone: m.timezone.unwrap_or_default(),
        agenda: m.agenda.unwrap_or_default(),
        password: m.password.unwrap_or_default(),
        join_url: m.join_url.unwrap_or_default(),
        start_url: m.start_url.unwrap_or_default(),
        create_time: m.created_at.as_deref().and_then(zoom_to_timestamp),
        status: m.status.unwrap_or_default(),
        recurrence: m.recurrence.map(recurrence_proto),
        occurrences: m
            .occurrences
            .into_iter()
            .map(|o| proto::Occurrence {
                occurrence_id: o.occurrence_id,
                start_time: o.start_time.as_deref().and_then(zoom_to_timestamp),
                duration_minutes: o
                    .duration
                    .and_then(|d| i32::try_from(d).ok())
                    .unwrap_or_default(),
                status: o.status.unwrap_or_default(),
            })
            .collect(),
        settings: m.settings.map(json_to_struct),
        extra: (!m.rest.is_empty()).then(|| json_to_struct(m.rest)),
    }
}

fn recurrence_proto(r: zoom::Recurrence) -> proto::Recurrence {
    let int = |v: Option<i64>| v.and_then(|v| i32::try_from(v).ok()).unwrap_or_default();
    proto::Recurrence {
        r#type: int(r.kind),
        repeat_interval: int(r.repeat_interval),
        weekly_days: r
            .weekly_days
            .unwrap_or_default()
            .split(',')
            .filter_map(|d| d.trim().parse().ok())
            .collect(),
        monthly_day: int(r.monthly_day),
        monthly_week: int(r.monthly_week),
        monthly_week_day: int(r.monthly_week_day),
        end_times: int(r.end_times),
        end_time: r.end_date_time.as_deref().and_then(zoom_to_timestamp),
    }
}

// === time and Struct helpers ===

/// Formats a timestamp as Zoom's GMT form `yyyy-MM-ddTHH:mm:ssZ`.
fn timestamp_to_zoom(ts: &Timestamp) -> Option<String> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    let time = DateTime::<Utc>::from_timestamp(ts.seconds, nanos)?;
    Some(time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn zoom_to_timestamp(text: &str) -> Option<Timestamp> {
    let time = DateTime::parse_from_rfc3339(text).ok()?;
    Some(Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).ok()?,
    })
}

/// Converts a protobuf Struct to a JSON object; whole numbers become JSON integers, as Zoom expects.
fn struct_to_json(value: &Struct, field: &str) -> Result<Map<String, Value>, FieldViolation> {
    value
        .fields
        .iter()
        .map(|(key, value)| {
            let path = format!("{field}.{key}");
            Ok((key.clone(), value_to_json(value, &path)?))
        })
        .collect()
}

fn value_to_json(value: &prost_types::Value, path: &str) -> Result<Value, FieldViolation> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::Number(Number::from(*n as i64))
            } else {
                Number::from_f64(*n)
                    .map(Value::Number)
                    .ok_or_else(|| FieldViolation::new(path, "is not a finite number"))?
            }
        }
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s, path)?),
        Some(Kind::ListValue(list)) => Value::Array(
            list.values
                .iter()
                .enumerate()
                .map(|(i, v)| value_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn json_to_struct(map: Map<String, Value>) -> Struct {
    Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(value: Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(result: Result<Map<String, Value>, Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_meeting_becomes_zoom_body() {
        let meeting = proto::Meeting {
            topic: "Planning".into(),
            r#type: proto::MeetingType::Scheduled as i32,
            start_time: Some(Timestamp {
                seconds: 1_900_000_000,
                nanos: 0,
            }),
            duration_minutes: 45,
            timezone: "Europe/Berlin".into(),
            settings: Some(json_to_struct(
                serde_json::json!({"waiting_room": true, "jbh_time": 5})
                    .as_object()
                    .cloned()
                    .unwrap(),
            )),
            ..Default::default()
        };
        let body = create_body(Some(&meeting)).unwrap();
        assert_eq!(
            Value::Object(body),
            serde_json::json!({
                "topic": "Planning", "type": 2, "start_time": "2030-03-17T17:46:40Z",
                "duration": 45, "timezone": "Europe/Berlin",
                "settings": {"waiting_room": true, "jbh_time": 5}
            })
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let meeting = proto::Meeting {
            topic: "t".repeat(201),
            r#type: 7,
            duration_minutes: 1441,
            timezone: "Mars/Olympus".into(),
            password: "far-too-long-1".into(),
            ..Default::default()
        };
        assert_eq!(
            violations(create_body(Some(&meeting))),
            [
                "meeting.topic",
                "meeting.type",
                "meeting.duration_minutes",
                "meeting.timezone",
                "meeting.password"
            ]
        );
    }

    #[test]
    fn extra_cannot_override_typed_or_zoom_owned_fields_or_schedule_for_others() {
        let extra = serde_json::json!({
            "topic": "x",
            "schedule_for": "boss@x.test",
            "host_email": "boss@x.test",
            "template_id": "t1",
        });
        let meeting = proto::Meeting {
            extra: Some(json_to_struct(extra.as_object().cloned().unwrap())),
            ..Default::default()
        };
        assert_eq!(
            violations(create_body(Some(&meeting))),
            [
                "meeting.extra.host_email",
                "meeting.extra.schedule_for",
                "meeting.extra.topic"
            ]
        );
    }

    #[test]
    fn recurrence_needs_its_type_and_valid_ranges() {
        let mut meeting = proto::Meeting {
            r#type: proto::MeetingType::RecurringFixedTime as i32,
            ..Default::default()
        };
        assert_eq!(
            violations(create_body(Some(&meeting))),
            ["meeting.recurrence"]
        );
        meeting.recurrence = Some(proto::Recurrence {
            r#type: 2,
            repeat_interval: 51,
            weekly_days: vec![2, 8],
            end_times: 3,
            ..Default::default()
        });
        assert_eq!(
            violations(create_body(Some(&meeting))),
            [
                "meeting.recurrence.repeat_interval",
                "meeting.recurrence.weekly_days"
            ]
        );
        meeting.recurrence = Some(proto::Recurrence {
            r#type: 2,
            repeat_interval: 1,
            weekly_days: vec![2, 4],
            end_times: 3,
            ..Default::default()
        });
        let body = create_body(Some(&meeting)).unwrap();
        assert_eq!(
            body["recurrence"],
            serde_json::json!({"type": 2, "repeat_interval": 1, "weekly_days": "2,4", "end_times": 3})
        );
    }

    #[test]
    fn update_reads_only_masked_fields() {
        let meeting = proto::Meeting {
            topic: "New".into(),
            agenda: "ignored".into(),
            ..Default::default()
        };
        let mask = prost_types::FieldMask {
            paths: vec!["topic".into()],
        };
        let body = update_body(Some(&meeting), Some(&mask)).unwrap();
        assert_eq!(Value::Object(body), serde_json::json!({"topic": "New"}));

        let mask = prost_types::FieldMask {
            paths: vec!["topic".into(), "host_email".into()],
        };
        assert_eq!(
            violations(update_body(Some(&meeting), Some(&mask))),
            ["update_mask.paths[1]"]
        );
        assert_eq!(violations(update_body(None, None)), ["update_mask"]);
    }

    #[test]
    fn users_are_checked() {
        use proto::create_meeting_request::User;
        assert!(matches!(user_ref(None), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            user_ref(Some(&User::UserEmail(String::new()))),
            Err(Error::InvalidArgument(v)) if v[0].field == "user_email"
        ));
        assert!(matches!(
            user_ref(Some(&User::UserId("../../admin".into()))),
            Err(Error::InvalidArgument(v)) if v[0].field == "user_id"
        ));
        assert_eq!(
            user_ref(Some(&User::UserEmail("Ann@X.test".into()))).unwrap(),
            UserRef::Email("ann@x.test".into())
        );
    }

    #[test]
    fn emails_with_control_or_format_characters_are_invalid() {
        use proto::create_meeting_request::User;
        for bad in [
            "a\u{1b}[2J@x.test",
            "a\u{1b}]0;x\u{7}@x.test",
            "a\0@x.test",
            "a\u{7f}@x.test",
            "moc.live\u{202e}@x.test",
            "a\u{200b}@x.test",
            "ann@x.test\n",
        ] {
            let result = user_ref(Some(&User::UserEmail(bad.into())));
            let Err(Error::InvalidArgument(v)) = result else {
                panic!("{bad:?} is accepted: {result:?}");
            };
            assert_eq!(v[0].field, "user_email", "{bad:?}");
            assert!(
                !v[0]
                    .description
                    .chars()
                    .any(crate::routing::is_control_or_format),
                "{:?}",
                v[0].description
            );
        }
        let list = list_user_ref(Some(&proto::list_meetings_request::User::UserEmail(
            "a\u{202e}@x.test".into(),
        )));
        assert!(matches!(list, Err(Error::InvalidArgument(v)) if v[0].field == "user_email"));
    }

    #[test]
    fn zoom_times_round_trip() {
        let ts = zoom_to_timestamp("2030-03-17T17:46:40Z").unwrap();
        assert_eq!(ts.seconds, 1_900_000_000);
        assert_eq!(
            timestamp_to_zoom(&ts).as_deref(),
            Some("2030-03-17T17:46:40Z")
        );
        assert!(
            timestamp_to_zoom(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_none()
        );
        assert!(
            timestamp_to_zoom(&Timestamp {
                seconds: 0,
                nanos: -1
            })
            .is_none()
        );
    }
}
