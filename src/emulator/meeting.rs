//! The meeting model: request-body validation, recurrence occurrences, and Zoom's JSON shapes.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Zoom caps `recurrence.end_times` at 60.
const MAX_OCCURRENCES: usize = 60;

/// One invalid field in a `Validation Failed.` (code 300) answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn invalid(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: "Invalid field.".to_owned(),
        }
    }
}

/// The fields of a create or update body, each present only if sent.
#[derive(Debug, Default)]
pub struct MeetingInput {
    pub topic: Option<String>,
    pub meeting_type: Option<u8>,
    pub start_time: Option<String>,
    pub duration: Option<u32>,
    pub timezone: Option<String>,
    pub password: Option<String>,
    pub agenda: Option<String>,
    pub recurrence: Option<Value>,
    pub settings: Option<Map<String, Value>>,
    pub tracking_fields: Option<Vec<Value>>,
    pub pre_schedule: Option<bool>,
    pub template_id: Option<String>,
    pub default_password: Option<bool>,
}

impl MeetingInput {
    /// Checks types and ranges as the description states them; collects every bad field.
    pub fn parse(body: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut input = MeetingInput::default();
        let text = |key: &str, max: usize, errors: &mut Vec<FieldError>| match body.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::invalid(key));
                None
            }
        };
        input.topic = text("topic", 200, &mut errors);
        input.agenda = text("agenda", 2000, &mut errors);
        input.password = text("password", 10, &mut errors);
        input.template_id = text("template_id", usize::MAX, &mut errors);
        input.start_time = text("start_time", 64, &mut errors);
        input.timezone = text("timezone", 64, &mut errors);
        if let Some(tz) = &input.timezone
            && tz.parse::<Tz>().is_err()
        {
            errors.push(FieldError::invalid("timezone"));
        }
        match body.get("type") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(t @ (1 | 2 | 3 | 8 | 10)) => input.meeting_type = Some(t as u8),
                _ => errors.push(FieldError::invalid("type")),
            },
        }
        match body.get("duration") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(d @ 1..=1440) => input.duration = Some(d as u32),
                _ => errors.push(FieldError::invalid("duration")),
            },
        }
        for (key, slot) in [
            ("pre_schedule", &mut input.pre_schedule),
            ("default_password", &mut input.default_password),
        ] {
            match body.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => *slot = Some(*b),
                Some(_) => errors.push(FieldError::invalid(key)),
            }
        }
        match body.get("settings") {
            None | Some(Value::Null) => {}
            Some(Value::Object(settings)) => input.settings = Some(settings.clone()),
            Some(_) => errors.push(FieldError::invalid("settings")),
        }
        match body.get("tracking_fields") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items))
                if items
                    .iter()
                    .all(|i| i.get("field").is_some_and(Value::is_string)) =>
            {
                input.tracking_fields = Some(items.clone());
            }
            Some(_) => errors.push(FieldError::invalid("tracking_fields")),
        }
        match body.get("recurrence") {
            None | Some(Value::Null) => {}
            Some(value) => match Recurrence::parse(value) {
                Ok(_) => input.recurrence = Some(value.clone()),
                Err(field) => errors.push(field),
            },
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        }
    }
}

/// Parses `start_time`: with `Z` or an offset it is absolute; without, local time in `tz`.
pub fn parse_start_time(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok()?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// A validated `recurrence` object.
#[derive(Clone, Debug, PartialEq)]
pub struct Recurrence {
    kind: u8,
    interval: u32,
    weekly_days: Vec<u32>,
    monthly_day: Option<u32>,
    monthly_week: Option<i64>,
    monthly_week_day: Option<u32>,
    end_times: Option<usize>,
    end_date_time: Option<DateTime<Utc>>,
}

impl Recurrence {
    pub fn parse(value: &Value) -> Result<Self, FieldError> {
        let bad = |f: &str| FieldError::invalid(&format!("recurrence.{f}"));
        let obj = value
            .as_object()
            .ok_or_else(|| FieldError::invalid("recurrence"))?;
        let int = |key: &str| -> Result<Option<i64>, FieldError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| bad(key)),
            }
        };
        let kind = match int("type")? {
            Some(t @ 1..=3) => t as u8,
            _ => return Err(bad("type")),
        };
        let interval = match int("repeat_interval")? {
            None => 1,
            Some(i @ 1..=90) => i as u32,
            Some(_) => return Err(bad("repeat_interval")),
        };
        let weekly_days = match obj.get("weekly_days") {
            None | Some(Value::Null) => vec![1],
            Some(Value::String(s)) => s
                .split(',')
                .map(|d| d.trim().parse::<u32>().ok().filter(|d| (1..=7).contains(d)))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| bad("weekly_days"))?,
            Some(_) => return Err(bad("weekly_days")),
        };
        let monthly_day = match int("monthly_day")? {
            None => None,
            Some(d @ 1..=31) => Some(d as u32),
            Some(_) => return Err(bad("monthly_day")),
        };
        let monthly_week = match int("monthly_week")? {
            None => None,
            Some(w @ (-1 | 1..=4)) => Some(w),
            Some(_) => return Err(bad("monthly_week")),
        };
        let monthly_week_day = match int("monthly_week_day")? {
            None => None,
            Some(d @ 1..=7) => Some(d as u32),
            Some(_) => return Err(bad("monthly_week_day")),
        };
        let end_times = match int("end_times")? {
            None => None,
            Some(n @ 1..=60) => Some(n as usize),
            Some(_) => return Err(bad("end_times")),
        };
        let end_date_time = match obj.get("end_date_time") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|_| bad("end_date_time"))?
                    .with_timezone(&Utc),
            ),
            Some(_) => return Err(bad("end_date_time")),
        };
        if end_times.is_some() && end_date_time.is_some() {
            return Err(bad("end_date_time"));
        }
        Ok(Self {
            kind,
            interval,
            weekly_days,
            monthly_day,
            monthly_week,
            monthly_week_day,
            end_times,
            end_date_time,
        })
    }

    /// The start times of the series, computed in the meeting's time zone.
    pub fn occurrences(&self, start: DateTime<Utc>, tz: Tz) -> Vec<DateTime<Utc>> {
        let local = start.with_timezone(&tz);
        let time = local.time();
        let first_date = local.date_naive();
        let limit = match (self.end_times, self.end_date_time) {
            (Some(n), _) => n,
            (None, Some(_)) => MAX_OCCURRENCES,
            (None, None) => 1,
        };
        let mut dates: Vec<NaiveDate> = Vec::new();
        let interval = i64::from(self.interval);
        // Bounded scan: at most 60 matches are needed and every period yields at least one
        // candidate, except months without the requested day, hence the generous bound.
        for period in 0..(MAX_OCCURRENCES as i64 * 3) {
            let candidates: Vec<NaiveDate> = match self.kind {
                1 => vec![first_date + Duration::days(period * interval)],
                2 => {
                    let sunday = first_date
                        - Duration::days(i64::from(first_date.weekday().num_days_from_sunday()));
                    let week = sunday + Duration::weeks(period * interval);
                    let mut days = self.weekly_days.clone();
                    days.sort_unstable();
                    days.dedup();
                    days.iter()
                        .map(|d| week + Duration::days(i64::from(*d) - 1))
                        .collect()
                }
                _ => month_candidate(first_date, period * interval, self)
                    .into_iter()
                    .collect(),
            };
            for date in candidates {
                if date >= first_date {
                    dates.push(date);
                }
            }
            if dates.len() >= limit {
                break;
            }
        }
        dates
            .into_iter()
            .filter_map(|d| tz.from_local_datetime(&d.and_time(time)).earliest())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| self.end_date_time.is_none_or(|end| *t <= end))
            .take(limit)
            .collect()
    }
}

/// The date in the month `months` after `first`'s month that a monthly recurrence names.
fn month_candidate(first: NaiveDate, months: i64, rec: &Recurrence) -> Option<NaiveDate> {
    let total = i64::from(first.year()) * 12 + i64::from(first.month0()) + months;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    match (rec.monthly_week, rec.monthly_week_day) {
        (Some(week), Some(weekday)) => {
            let first_of_month = NaiveDate::from_ymd_opt(year, month, 1)?;
            let offset = (7 + weekday as i64
                - 1
                - i64::from(first_of_month.weekday().num_days_from_sunday()))
                % 7;
            let first_match = first_of_month + Duration::days(offset);
            if week == -1 {
                let mut last = first_match;
                while (last + Duration::weeks(1)).month() == month {
                    last += Duration::weeks(1);
                }
                Some(last)
            } else {
                let date = first_match + Duration::weeks(week - 1);
                (date.month() == month).then_some(date)
            }
        }
        _ => NaiveDate::from_ymd_opt(year, month, rec.monthly_day.unwrap_or(first.day())),
    }
}

/// One occurrence of a recurring meeting.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub start_time: DateTime<Utc>,
    pub duration: u32,
    pub deleted: bool,
}

impl Occurrence {
    /// Zoom's occurrence id: the start time in epoch milliseconds.
    pub fn id(&self) -> String {
        self.start_time.timestamp_millis().to_string()
    }

    fn to_json(&self) -> Value {
        json!({
            "occurrence_id": self.id(),
            "start_time": zoom_time(self.start_time),
            "duration": self.duration,
            "status": if self.deleted { "deleted" } else { "available" },
        })
    }
}

/// A stored meeting.
#[derive(Clone, Debug)]
pub struct Meeting {
    pub id: i64,
    pub seq: u64,
    pub uuid: String,
    pub account_id: std::sync::Arc<str>,
    pub host_id: String,
    pub host_email: String,
    pub topic: String,
    pub meeting_type: u8,
    pub started: bool,
    /// When the running instance started; `meeting.ended` reports it.
    pub started_at: Option<DateTime<Utc>>,
    /// Set by DELETE; `PUT .../status {"action":"recover"}` clears it.
    pub deleted: bool,
    pub start_time: Option<DateTime<Utc>>,
    pub duration: u32,
    pub timezone: String,
    pub agenda: String,
    pub created_at: DateTime<Utc>,
    pub password: String,
    pub encrypted_password: String,
    pub zak: String,
    pub settings: Map<String, Value>,
    pub recurrence: Option<Value>,
    pub occurrences: Vec<Occurrence>,
    pub tracking_fields: Vec<Value>,
    pub pre_schedule: bool,
    pub template_id: Option<String>,
}

/// Formats a time as Zoom does: UTC, whole seconds, `Z`.
pub fn zoom_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random string of `len` characters from `alphabet`.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

pub const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The settings every new meeting starts with; the request's `settings` override them.
pub fn default_settings() -> Map<String, Value> {
    let defaults = json!({
        "host_video": false,
        "participant_video": false,
        "join_before_host": false,
        "jbh_time": 0,
        "mute_upon_entry": false,
        "watermark": false,
        "use_pmi": false,
        "approval_type": 2,
        "audio": "voip",
        "auto_recording": "none",
        "waiting_room": false,
        "meeting_authentication": false,
        "alternative_hosts": "",
        "encryption_type": "enhanced_encryption",
        "private_meeting": false,
        "email_notification": true,
        "registrants_email_notification": true,
        "show_share_button": false,
        "allow_multiple_devices": false,
        "continuous_meeting_chat": { "enable": false },
    });
    match defaults {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl Meeting {
    /// Recomputes the occurrences of a type-8 meeting after its schedule changed.
    pub fn refresh_occurrences(&mut self) {
        self.occurrences.clear();
        if self.meeting_type != 8 {
            return;
        }
        let (Some(start), Some(rec)) = (self.start_time, self.recurrence.as_ref()) else {
            return;
        };
        let tz = self.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
        if let Ok(rec) = Recurrence::parse(rec) {
            self.occurrences = rec
                .occurrences(start, tz)
                .into_iter()
                .map(|start_time| Occurrence {
                    start_time,
                    duration: self.duration,
                    deleted: false,
                })
                .collect();
        }
    }

    fn join_url(&self, base_url: &str) -> String {
        format!("{base_url}/j/{}?pwd={}", self.id, self.encrypted_password)
    }

    /// The body of `GET /meetings/{id}` (and of the 201 on create).
    ///
    /// With `occurrence`, the schedule fields describe that occurrence; past occurrences are
    /// left out unless `show_previous` (Zoom's `show_previous_occurrences`).
    pub fn to_json(
        &self,
        base_url: &str,
        now: DateTime<Utc>,
        occurrence: Option<&Occurrence>,
        show_previous: bool,
    ) -> Value {
        let mut body = json!({
            "uuid": self.uuid,
            "id": self.id,
            "host_id": self.host_id,
            "host_email": self.host_email,
            "assistant_id": "",
            "topic": self.topic,
            "type": self.meeting_type,
            "status": if self.started { "started" } else { "waiting" },
            "duration": self.duration,
            "timezone": self.timezone,
            "agenda": self.agenda,
            "created_at": zoom_time(self.created_at),
            "start_url": format!("{base_url}/s/{}?zak={}", self.id, self.zak),
            "join_url": self.join_url(base_url),
            "password": self.password,
            "h323_password": digits_of(&self.password),
            "pstn_password": digits_of(&self.password),
            "encrypted_password": self.encrypted_password,
            "dynamic_host_key": format!("{:06}", self.id % 1_000_000),
            "settings": Value::Object(self.settings.clone()),
            "pre_schedule": self.pre_schedule,
            "creation_source": "open_api",
        });
        let Value::Object(map) = &mut body else {
            return body;
        };
        let start = occurrence.map(|o| o.start_time).or(self.start_time);
        if let Some(start) = start {
            map.insert("start_time".into(), zoom_time(start).into());
        }
        if let Some(o) = occurrence {
            map.insert("duration".into(), o.duration.into());
        }
        if let Some(rec) = &self.recurrence
            && matches!(self.meeting_type, 3 | 8)
        {
            map.insert("recurrence".into(), rec.clone());
        }
        if self.meeting_type == 8 {
            let occurrences: Vec<Value> = match occurrence {
                Some(o) => vec![o.to_json()],
                None => self
                    .occurrences
                    .iter()
                    .filter(|o| {
                        show_previous || o.start_time + Duration::minutes(o.duration.into()) >= now
                    })
                    .map(Occurrence::to_json)
                    .collect(),
            };
            map.insert("occurrences".into(), occurrences.into());
        }
        if !self.tracking_fields.is_empty() {
            map.insert(
                "tracking_fields".into(),
                self.tracking_fields.clone().into(),
            );
        }
        if let Some(template_id) = &self.template_id {
            map.insert("template_id".into(), template_id.clone().into());
        }
        body
    }

    /// One item of `GET /users/{userId}/meetings`; `agenda` cut to 250 characters as Zoom does.
    pub fn to_list_item(&self, base_url: &str) -> Value {
        let mut item = json!({
            "uuid": self.uuid,
            "id": self.id,
            "host_id": self.host_id,
            "topic": self.topic,
            "type": self.meeting_type,
            "duration": self.duration,
            "timezone": self.timezone,
            "agenda": self.agenda.chars().take(250).collect::<String>(),
            "created_at": zoom_time(self.created_at),
            "join_url": self.join_url(base_url),
        });
        let start = self
            .occurrences
            .iter()
            .find(|o| !o.deleted)
            .map(|o| o.start_time)
            .or(self.start_time);
        if let (Value::Object(map), Some(start)) = (&mut item, start) {
            map.insert("start_time".into(), zoom_time(start).into());
        }
        item
    }

    /// `payload.object` of meeting webhooks (SPEC-WH `meeting.created` fields).
    pub fn webhook_object(&self, base_url: &str) -> Value {
        let mut object = json!({
            "uuid": self.uuid,
            "id": self.id,
            "host_id": self.host_id,
            "topic": self.topic,
            "type": self.meeting_type,
            "duration": self.duration,
            "timezone": self.timezone,
            "join_url": self.join_url(base_url),
            "password": self.password,
            "settings": {
                "use_pmi": self.settings.get("use_pmi").and_then(Value::as_bool).unwrap_or(false),
                "alternative_hosts": self.settings.get("alternative_hosts").and_then(Value::as_str).unwrap_or(""),
            },
        });
        if let (Value::Object(map), Some(start)) = (&mut object, self.start_time) {
            map.insert("start_time".into(), zoom_time(start).into());
        }
        object
    }
}

impl Meeting {
    /// `payload.object` of `meeting.started` / `meeting.ended`: SPEC-WH allows only these
    /// fields there and gives `id` as a string.
    pub fn lifecycle_object(
        &self,
        started_at: DateTime<Utc>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Value {
        let mut object = json!({
            "id": self.id.to_string(),
            "uuid": self.uuid,
            "host_id": self.host_id,
            "topic": self.topic,
            "type": self.meeting_type,
            "start_time": zoom_time(started_at),
            "timezone": self.timezone,
            "duration": self.duration,
        });
        if let (Value::Object(map), Some(end)) = (&mut object, ended_at) {
            map.insert("end_time".into(), zoom_time(end).into());
        }
        object
    }
}

/// A numeric passcode for phone and H.323 joins, derived from the meeting passcode.
fn digits_of(password: &str) -> String {
    password
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid date")
            .with_timezone(&Utc)
    }

    #[test]
    fn rejects_out_of_range_fields() {
        let body = json!({"topic": "x".repeat(201), "duration": 0, "type": 5});
        let Value::Object(body) = body else {
            panic!("object literal")
        };
        let errors = MeetingInput::parse(&body).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["topic", "type", "duration"]);
    }

    #[test]
    fn weekly_occurrences_follow_weekdays() {
        // 2030-01-01 is a Tuesday; weekly on Tuesday (3) and Thursday (5), four times.
        let rec = Recurrence::parse(&json!({"type": 2, "weekly_days": "3,5", "end_times": 4}))
            .expect("valid");
        let got = rec.occurrences(at("2030-01-01T09:00:00Z"), Tz::UTC);
        let want = [
            "2030-01-01T09:00:00Z",
            "2030-01-03T09:00:00Z",
            "2030-01-08T09:00:00Z",
            "2030-01-10T09:00:00Z",
        ];
        assert_eq!(got, want.map(at));
    }

    #[test]
    fn monthly_last_weekday_and_end_date() {
        // The last Friday (6) of each month, until the end of March 2030.
        let rec = Recurrence::parse(&json!({
            "type": 3, "monthly_week": -1, "monthly_week_day": 6,
            "end_date_time": "2030-03-31T00:00:00Z"
        }))
        .expect("valid");
        let got = rec.occurrences(at("2030-01-01T15:00:00Z"), Tz::UTC);
        let want = [
            "2030-01-25T15:00:00Z",
            "2030-02-22T15:00:00Z",
            "2030-03-29T15:00:00Z",
        ];
        assert_eq!(got, want.map(at));
    }

    #[test]
    fn local_start_time_uses_the_time_zone() {
        let tz: Tz = "America/New_York".parse().expect("known zone");
        assert_eq!(
            parse_start_time("2030-07-01T10:00:00", tz),
            Some(at("2030-07-01T14:00:00Z"))
        );
        assert_eq!(
            parse_start_time("2030-07-01T10:00:00Z", tz),
            Some(at("2030-07-01T10:00:00Z"))
        );
    }
}
