//! Malformed requests get INVALID_ARGUMENT naming the field, before any Zoom call; no input panics.

use proptest::prelude::*;
use tonic::Code;
use zoomgate::proto;

use crate::support::*;

async fn create_status(client: &mut Client, request: proto::CreateMeetingRequest) -> tonic::Status {
    client
        .create_meeting(request)
        .await
        .expect_err("request is refused")
}

#[tokio::test]
async fn each_bad_field_is_named() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;
    let user = |email: &str| Some(proto::create_meeting_request::User::UserEmail(email.into()));

    let cases: Vec<(&str, proto::CreateMeetingRequest)> = vec![
        (
            "user",
            proto::CreateMeetingRequest {
                user: None,
                meeting: Some(scheduled("x")),
                ..Default::default()
            },
        ),
        (
            "user_email",
            proto::CreateMeetingRequest {
                user: user(""),
                meeting: Some(scheduled("x")),
                ..Default::default()
            },
        ),
        (
            "user_id",
            proto::CreateMeetingRequest {
                user: Some(proto::create_meeting_request::User::UserId("me".into())),
                meeting: Some(scheduled("x")),
                ..Default::default()
            },
        ),
        ("meeting.duration_minutes", {
            let mut m = scheduled("x");
            m.duration_minutes = 1441;
            proto::CreateMeetingRequest {
                user: user("alice@sales.acme.test"),
                meeting: Some(m),
                ..Default::default()
            }
        }),
        ("meeting.timezone", {
            let mut m = scheduled("x");
            m.timezone = "Atlantis/Capital".into();
            proto::CreateMeetingRequest {
                user: user("alice@sales.acme.test"),
                meeting: Some(m),
                ..Default::default()
            }
        }),
        ("meeting.topic", {
            let m = scheduled(&"t".repeat(201));
            proto::CreateMeetingRequest {
                user: user("alice@sales.acme.test"),
                meeting: Some(m),
                ..Default::default()
            }
        }),
        ("meeting.type", {
            let mut m = scheduled("x");
            m.r#type = 5;
            proto::CreateMeetingRequest {
                user: user("alice@sales.acme.test"),
                meeting: Some(m),
                ..Default::default()
            }
        }),
    ];
    for (field, request) in cases {
        let status = create_status(&mut client, request).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()], "{field}");
        assert!(
            status.message().contains(field),
            "{field}: {}",
            status.message()
        );
    }

    let status = client
        .get_meeting(proto::GetMeetingRequest {
            meeting_id: -4,
            occurrence_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["meeting_id"]);
    let status = client
        .list_meetings(proto::ListMeetingsRequest {
            user: Some(proto::list_meetings_request::User::UserEmail(
                "alice@sales.acme.test".into(),
            )),
            page_size: 301,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_size"]);

    // None of these reached Zoom.
    assert_eq!(gateway.zoom.total_requests(SALES_ZOOM_ID), 0);
    assert_eq!(gateway.zoom.token_fetches(SALES_ZOOM_ID), 0);
    gateway.stop().await;
}

fn arbitrary_meeting() -> impl Strategy<Value = proto::Meeting> {
    (
        ".{0,260}",
        prop_oneof![Just(0), Just(2), Just(8), any::<i32>()],
        prop_oneof![
            Just(None),
            (any::<i64>(), any::<i32>()).prop_map(|(s, n)| Some(prost_types::Timestamp {
                seconds: s,
                nanos: n
            }))
        ],
        any::<i32>(),
        prop_oneof![
            Just(String::new()),
            Just("Europe/Berlin".to_owned()),
            ".{0,40}"
        ],
        ".{0,12}",
        prop::option::of((
            any::<i32>(),
            any::<i32>(),
            prop::collection::vec(any::<i32>(), 0..4),
            any::<i32>(),
        )),
    )
        .prop_map(
            |(topic, kind, start_time, duration, timezone, password, recurrence)| proto::Meeting {
                topic,
                r#type: kind,
                start_time,
                duration_minutes: duration,
                timezone,
                password,
                recurrence: recurrence.map(|(t, interval, days, end_times)| proto::Recurrence {
                    r#type: t,
                    repeat_interval: interval,
                    weekly_days: days,
                    end_times,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
}

#[test]
fn no_input_panics_the_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (gateway, client) = runtime.block_on(async {
        let gateway = TestGateway::spawn().await;
        let client = gateway.client(ADMIN_KEY).await;
        (gateway, client)
    });
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        email in prop_oneof![Just("alice@sales.acme.test".to_owned()), ".{0,40}"],
        meeting in arbitrary_meeting(),
        id in any::<i64>(),
        occurrence in ".{0,24}",
        page_size in any::<i32>(),
    )| {
        let mut client = client.clone();
        runtime.block_on(async {
            let allowed = [Code::Ok, Code::InvalidArgument, Code::NotFound];
            let create = client
                .create_meeting(proto::CreateMeetingRequest {
                    user: Some(proto::create_meeting_request::User::UserEmail(email.clone())),
                    meeting: Some(meeting),
                    ..Default::default()
                })
                .await;
            let code = create.as_ref().map(|_| Code::Ok).unwrap_or_else(|s| s.code());
            prop_assert!(allowed.contains(&code), "create: {:?}", create);
            let get = client.get_meeting(proto::GetMeetingRequest { meeting_id: id, occurrence_id: occurrence }).await;
            let code = get.as_ref().map(|_| Code::Ok).unwrap_or_else(|s| s.code());
            prop_assert!(allowed.contains(&code), "get: {:?}", get);
            let list = client
                .list_meetings(proto::ListMeetingsRequest {
                    user: Some(proto::list_meetings_request::User::UserEmail(email)),
                    page_size,
                    ..Default::default()
                })
                .await;
            let code = list.as_ref().map(|_| Code::Ok).unwrap_or_else(|s| s.code());
            prop_assert!(allowed.contains(&code), "list: {:?}", list);
            Ok(())
        })?;
    });
    runtime.block_on(gateway.stop());
}
