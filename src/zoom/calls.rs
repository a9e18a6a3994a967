//! Zoom calls as values: each names its [`Endpoint`] and can be sent again with a new token, so
//! one choke point (`meetings::upstream`) can admit, time and retry every call the same way.

use std::future::Future;

use serde_json::{Map, Value};

use super::{
    AccessToken, Endpoint, ListMeetings, MeetingPage, UserPage, ZoomClient, ZoomError, ZoomMeeting,
    ZoomUser,
};

/// One Zoom REST call, ready to send with an account's token.
pub trait ZoomCall: Sync {
    type Output: Send;

    fn endpoint(&self) -> Endpoint;

    fn send(
        &self,
        zoom: &ZoomClient,
        token: &AccessToken,
    ) -> impl Future<Output = Result<Self::Output, ZoomError>> + Send;

    /// What a retry that finds its target gone means, if an earlier try may have done that:
    /// a delete whose first try got no answer and whose second gets Zoom's 404.
    fn done_when_gone(&self) -> Option<Self::Output> {
        None
    }
}

/// `GET /users/{user}`: a user by id or email.
pub struct GetUser<'a> {
    pub user: &'a str,
}

/// `POST /users/{user}/meetings` with Zoom's create body.
pub struct CreateMeeting<'a> {
    pub user: &'a str,
    pub body: &'a Map<String, Value>,
}

/// `GET /meetings/{id}`, optionally one occurrence.
pub struct GetMeeting<'a> {
    pub id: i64,
    pub occurrence_id: Option<&'a str>,
}

/// `PATCH /meetings/{id}` with Zoom's update body.
pub struct UpdateMeeting<'a> {
    pub id: i64,
    pub occurrence_id: Option<&'a str>,
    pub body: &'a Map<String, Value>,
}

/// `DELETE /meetings/{id}`, the whole series without an occurrence.
pub struct DeleteMeeting<'a> {
    pub id: i64,
    pub occurrence_id: Option<&'a str>,
}

/// `PUT /meetings/{id}/status` with `{"action":"end"}`.
pub struct EndMeeting {
    pub id: i64,
}

/// `GET /users`: one page of the account's active users.
pub struct ListUsers<'a> {
    pub page_size: u32,
    pub next_page_token: Option<&'a str>,
}

impl ZoomCall for ListUsers<'_> {
    type Output = UserPage;

    fn endpoint(&self) -> Endpoint {
        Endpoint::ListUsers
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<UserPage, ZoomError> {
        zoom.list_users(token, self.page_size, self.next_page_token)
            .await
    }
}

/// `GET /users/{user}/meetings`: one page.
pub struct ListMeetingsOf<'a> {
    pub user: &'a str,
    pub query: &'a ListMeetings,
}

impl ZoomCall for GetUser<'_> {
    type Output = ZoomUser;

    fn endpoint(&self) -> Endpoint {
        Endpoint::GetUser
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<ZoomUser, ZoomError> {
        zoom.get_user(token, self.user).await
    }
}

impl ZoomCall for CreateMeeting<'_> {
    type Output = ZoomMeeting;

    fn endpoint(&self) -> Endpoint {
        Endpoint::CreateMeeting
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<ZoomMeeting, ZoomError> {
        zoom.create_meeting(token, self.user, self.body).await
    }
}

impl ZoomCall for GetMeeting<'_> {
    type Output = ZoomMeeting;

    fn endpoint(&self) -> Endpoint {
        Endpoint::GetMeeting
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<ZoomMeeting, ZoomError> {
        zoom.get_meeting(token, self.id, self.occurrence_id).await
    }
}

impl ZoomCall for UpdateMeeting<'_> {
    type Output = ();

    fn endpoint(&self) -> Endpoint {
        Endpoint::UpdateMeeting
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<(), ZoomError> {
        zoom.update_meeting(token, self.id, self.occurrence_id, self.body)
            .await
    }
}

impl ZoomCall for DeleteMeeting<'_> {
    type Output = ();

    fn endpoint(&self) -> Endpoint {
        Endpoint::DeleteMeeting
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<(), ZoomError> {
        zoom.delete_meeting(token, self.id, self.occurrence_id)
            .await
    }

    fn done_when_gone(&self) -> Option<()> {
        Some(())
    }
}

impl ZoomCall for EndMeeting {
    type Output = ();

    fn endpoint(&self) -> Endpoint {
        Endpoint::EndMeeting
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<(), ZoomError> {
        zoom.end_meeting(token, self.id).await
    }
}

impl ZoomCall for ListMeetingsOf<'_> {
    type Output = MeetingPage;

    fn endpoint(&self) -> Endpoint {
        Endpoint::ListMeetings
    }

    async fn send(&self, zoom: &ZoomClient, token: &AccessToken) -> Result<MeetingPage, ZoomError> {
        zoom.list_meetings(token, self.user, self.query).await
    }
}
