//! Proto <-> domain mapping: requests into the domain's values, Zoom meetings into protos. The
//! rules a request must follow live in [`crate::meetings::validate`], for every front end.

use chrono::DateTime;
use prost_types::{ListValue, Struct, Timestamp, value::Kind};
use serde_json::{Map, Number, Value};

use crate::error::{Error, FieldViolation};
use crate::meetings::validate::{self, MeetingDraft, RecurrenceDraft};
use crate::meetings::{MeetingList, MeetingView, UserRef};
use crate::proto;
use crate::zoom::{self, ListMeetings, MeetingListKind, ZoomMeeting};

// === requests ===

/// Reads the `user` oneof of a request.
pub fn user_ref(user: Option<&proto::create_meeting_request::User>) -> Result<UserRef, Error> {
    use proto::create_meeting_request::User;
    match user {
        Some(User::UserEmail(email)) => validate::user_email(email),
        Some(User::UserId(id)) => validate::user_id(id),
        None => Err(Error::invalid("user", "set user_email or user_id")),
    }
}

/// Reads the `user` oneof of a list request.
pub fn list_user_ref(user: Option<&proto::list_meetings_request::User>) -> Result<UserRef, Error> {
    use proto::list_meetings_request::User;
    match user {
        Some(User::UserEmail(email)) => validate::user_email(email),
        Some(User::UserId(id)) => validate::user_id(id),
        None => Err(Error::invalid("user", "set user_email or user_id")),
    }
}

/// Maps a request's meeting to the domain's draft; only what has no domain form is refused
/// here (a number that is not finite).
pub fn meeting_draft(meeting: Option<&proto::Meeting>) -> Result<MeetingDraft, Error> {
    let default = proto::Meeting::default();
    let meeting = meeting.unwrap_or(&default);
    let mut violations = Vec::new();
    let mut object = |value: &Option<Struct>, field: &str| {
        let value = value.as_ref()?;
        struct_to_json(value, field)
            .map_err(|violation| violations.push(violation))
            .ok()
    };
    let settings = object(&meeting.settings, "meeting.settings");
    let extra = object(&meeting.extra, "meeting.extra");
    let draft = MeetingDraft {
        topic: meeting.topic.clone(),
        kind: meeting.r#type,
        start_time: meeting.start_time.map(timestamp),
        duration_minutes: meeting.duration_minutes,
        timezone: meeting.timezone.clone(),
        agenda: meeting.agenda.clone(),
        password: meeting.password.clone(),
        recurrence: meeting.recurrence.as_ref().map(|r| RecurrenceDraft {
            kind: r.r#type,
            repeat_interval: r.repeat_interval,
            weekly_days: r.weekly_days.clone(),
            monthly_day: r.monthly_day,
            monthly_week: r.monthly_week,
            monthly_week_day: r.monthly_week_day,
            end_times: r.end_times,
            end_time: r.end_time.map(timestamp),
        }),
        settings,
        extra,
    };
    if violations.is_empty() {
        Ok(draft)
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

/// Reads a list request into Zoom's query.
pub fn list_query(request: &proto::ListMeetingsRequest) -> Result<ListMeetings, Error> {
    use proto::list_meetings_request::Type;
    let kind = match Type::try_from(request.r#type) {
        Ok(Type::Unspecified | Type::Scheduled) => Ok(MeetingListKind::Scheduled),
        Ok(Type::Live) => Ok(MeetingListKind::Live),
        Ok(Type::Upcoming) => Ok(MeetingListKind::Upcoming),
        Ok(Type::UpcomingMeetings) => Ok(MeetingListKind::UpcomingMeetings),
        Ok(Type::PreviousMeetings) => Ok(MeetingListKind::PreviousMeetings),
        Err(_) => Err(Error::invalid(
            "type",
            format!("unknown list type {}", request.r#type),
        )),
    };
    // Checked even when the type is unknown, so that every bad field is named at once.
    let query = validate::list_query(
        kind.clone().unwrap_or(MeetingListKind::Scheduled),
        request.page_size,
        &request.page_token,
    );
    super::both(kind, query).map(|(_, query)| query)
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

fn timestamp(ts: Timestamp) -> validate::Timestamp {
    validate::Timestamp {
        seconds: ts.seconds,
        nanos: ts.nanos,
    }
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

    fn create_body(meeting: Option<&proto::Meeting>) -> Result<Map<String, Value>, Error> {
        meeting_draft(meeting).and_then(|draft| validate::create_body(&draft))
    }

    fn timestamp_to_zoom(ts: &Timestamp) -> Option<String> {
        validate::timestamp_to_zoom(&timestamp(*ts))
    }

    fn update_body(
        meeting: Option<&proto::Meeting>,
        mask: Option<&prost_types::FieldMask>,
    ) -> Result<Map<String, Value>, Error> {
        let draft = meeting_draft(meeting)?;
        validate::update_body(&draft, mask.map(|mask| mask.paths.as_slice()))
    }

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
