//! Zoom REST payloads: the fields a gateway uses, typed, plus everything else kept verbatim.
//!
//! Field sets follow Zoom's Meetings and Users OpenAPI (`meeting`, `meetingCreate`, `meetings`,
//! `user`). Only the ids are required; every other field may be absent or `null`, because Zoom
//! omits fields freely (no `start_time` on instant meetings, no `password` when passcodes are
//! off). Times stay strings as Zoom sent them, so an unexpected format never fails a whole call.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A meeting as returned by create (201), get (200) and, abridged, by list. Deserialize is
/// written by hand below (one pass, no `flatten` buffering); keep its key list in step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZoomMeeting {
    /// Meeting number; int64 because meeting ids exceed 10 digits.
    pub id: i64,
    /// Id of this meeting instance; every instance gets a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// 1 instant, 2 scheduled, 3 recurring without fixed time, 4 PMI, 8 recurring, 10 screen share.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agenda: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
    /// Host link that starts the meeting as the host; expires after two hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// `waiting` or `started`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub occurrences: Vec<Occurrence>,
    /// About 65 keys; kept as JSON since the gateway passes them through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Map<String, Value>>,
    /// Every other field Zoom sent, so nothing is lost.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Reads a meeting in one pass over Zoom's object. The derived form with `#[serde(flatten)]`
/// buffers the whole object (settings included) into serde's `Content` and deserializes it a
/// second time from there; this visitor puts each key straight where it belongs.
impl<'de> Deserialize<'de> for ZoomMeeting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MeetingVisitor)
    }
}

struct MeetingVisitor;

impl<'de> serde::de::Visitor<'de> for MeetingVisitor {
    type Value = ZoomMeeting;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Zoom meeting object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ZoomMeeting, A::Error> {
        use serde::de::Error as _;
        let mut id = None;
        let mut m = ZoomMeeting {
            id: 0,
            uuid: None,
            host_id: None,
            host_email: None,
            topic: None,
            kind: None,
            start_time: None,
            duration: None,
            timezone: None,
            agenda: None,
            password: None,
            join_url: None,
            start_url: None,
            created_at: None,
            status: None,
            recurrence: None,
            occurrences: Vec::new(),
            settings: None,
            rest: Map::new(),
        };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match &*key {
                "id" => id = Some(map.next_value::<i64>()?),
                "uuid" => m.uuid = map.next_value()?,
                "host_id" => m.host_id = map.next_value()?,
                "host_email" => m.host_email = map.next_value()?,
                "topic" => m.topic = map.next_value()?,
                "type" => m.kind = map.next_value()?,
                "start_time" => m.start_time = map.next_value()?,
                "duration" => m.duration = map.next_value()?,
                "timezone" => m.timezone = map.next_value()?,
                "agenda" => m.agenda = map.next_value()?,
                "password" => m.password = map.next_value()?,
                "join_url" => m.join_url = map.next_value()?,
                "start_url" => m.start_url = map.next_value()?,
                "created_at" => m.created_at = map.next_value()?,
                "status" => m.status = map.next_value()?,
                "recurrence" => m.recurrence = map.next_value()?,
                "occurrences" => {
                    m.occurrences = map
                        .next_value::<Option<Vec<Occurrence>>>()?
                        .unwrap_or_default()
                }
                "settings" => m.settings = map.next_value()?,
                _ => {
                    let value = map.next_value::<Value>()?;
                    m.rest.insert(key.into_owned(), value);
                }
            }
        }
        m.id = id.ok_or_else(|| A::Error::missing_field("id"))?;
        Ok(m)
    }
}

/// A key borrowed from the input when it has no escapes, so known keys cost no allocation.
struct KeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}

/// Recurrence of a type-8 meeting.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    /// 1 daily, 2 weekly, 3 monthly.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<i64>,
    /// Comma-separated days, "1" = Sunday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_days: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_day: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_week: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_week_day: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_times: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One occurrence of a recurring meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// Start time in epoch milliseconds, as a string (e.g. `"1648194360000"`).
    pub occurrence_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// `available` or `deleted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One page of `GET /users` (active users of the account).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct UserPage {
    /// Token of the next page; `None` on the last page. Expires after 15 min.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub next_page_token: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub users: Vec<ListedUser>,
}

/// A user as `GET /users` lists it: no account fields, and no id while pending.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ListedUser {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// One page of `GET /users/{userId}/meetings`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeetingPage {
    /// Token of the next page; `None` on the last page (Zoom sends `""` there). Expires after 15 min.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_records: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub meetings: Vec<ZoomMeeting>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A user as returned by `GET /users/{userId}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoomUser {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// 1 Basic, 2 Licensed, 4 Unassigned, 99 None.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<i64>,
    /// `pending`, `active` or `inactive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Zoom account that owns the user; confirms routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmi: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Which meetings `list_meetings` returns (Zoom's `type` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MeetingListKind {
    /// Scheduled, unexpired meetings (Zoom's default); never instant meetings.
    #[default]
    Scheduled,
    Live,
    Upcoming,
    UpcomingMeetings,
    PreviousMeetings,
}

impl MeetingListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::Upcoming => "upcoming",
            Self::UpcomingMeetings => "upcoming_meetings",
            Self::PreviousMeetings => "previous_meetings",
        }
    }
}

/// Query of `list_meetings`; `Default` asks for Zoom's first page of scheduled meetings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListMeetings {
    pub kind: MeetingListKind,
    /// 1..=300; Zoom's default is 30.
    pub page_size: Option<u32>,
    pub next_page_token: Option<String>,
}

/// Reads `null` as an empty list, since Zoom sends `null` and `[]` interchangeably.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads `""` or `null` as `None`.
fn empty_as_none<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meeting_keeps_unknown_fields_and_tolerates_missing_ones() {
        let meeting: ZoomMeeting = serde_json::from_value(json!({
            "id": 92674392836_i64,
            "type": 2,
            "topic": "Planning",
            "pstn_password": "123456",
            "tracking_fields": [{"field": "team", "value": "a"}],
            "occurrences": null
        }))
        .unwrap();
        assert_eq!(meeting.id, 92_674_392_836);
        assert_eq!(meeting.kind, Some(2));
        assert_eq!(meeting.start_time, None);
        assert!(meeting.occurrences.is_empty());
        assert_eq!(meeting.rest["pstn_password"], "123456");
        assert!(meeting.rest.contains_key("tracking_fields"));

        let round_trip = serde_json::to_value(&meeting).unwrap();
        assert_eq!(round_trip["pstn_password"], "123456");
        assert_eq!(round_trip["type"], 2);
    }

    #[test]
    fn meeting_without_id_is_rejected() {
        assert!(serde_json::from_value::<ZoomMeeting>(json!({"topic": "x"})).is_err());
    }

    #[test]
    fn recurrence_and_occurrences_are_typed() {
        let meeting: ZoomMeeting = serde_json::from_value(json!({
            "id": 1,
            "recurrence": {"type": 2, "weekly_days": "2,4", "end_times": 3},
            "occurrences": [{"occurrence_id": "1648194360000", "status": "available", "duration": 30}]
        }))
        .unwrap();
        let recurrence = meeting.recurrence.unwrap();
        assert_eq!(recurrence.kind, Some(2));
        assert_eq!(recurrence.weekly_days.as_deref(), Some("2,4"));
        assert_eq!(meeting.occurrences[0].occurrence_id, "1648194360000");
        assert_eq!(meeting.occurrences[0].duration, Some(30));
    }

    #[test]
    fn last_page_has_no_next_token() {
        let page: MeetingPage = serde_json::from_value(json!({
            "next_page_token": "", "page_size": 30, "total_records": 0, "meetings": []
        }))
        .unwrap();
        assert_eq!(page.next_page_token, None);
        let page: MeetingPage =
            serde_json::from_value(json!({"next_page_token": "abc", "meetings": [{"id": 7}]}))
                .unwrap();
        assert_eq!(page.next_page_token.as_deref(), Some("abc"));
        assert_eq!(page.meetings[0].id, 7);
    }

    #[test]
    fn user_keeps_account_id_and_extra_fields() {
        let user: ZoomUser = serde_json::from_value(json!({
            "id": "KDcuGIm1QgePTO8WbOqwIQ", "email": "jchill@example.com", "type": 2,
            "account_id": "q6gBJVO5TzexKYTb_I2rpg", "group_ids": null, "cluster": "us04"
        }))
        .unwrap();
        assert_eq!(user.account_id.as_deref(), Some("q6gBJVO5TzexKYTb_I2rpg"));
        assert!(user.group_ids.is_empty());
        assert_eq!(user.rest["cluster"], "us04");
    }
}
