//! The Zoom REST operations the gateway calls, each with the rate-limit category Zoom files it
//! under (see `shared/zoom-api.md`: Create is LIGHT in the current spec, List is MEDIUM).

use std::fmt;

/// Zoom's rate-limit categories; each has its own per-second and daily budget per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateCategory {
    Light,
    Medium,
    Heavy,
}

impl RateCategory {
    pub const fn as_str(self) -> &'static str {
        match self {
            RateCategory::Light => "light",
            RateCategory::Medium => "medium",
            RateCategory::Heavy => "heavy",
        }
    }
}

/// One Zoom REST operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /users/{userId}`
    GetUser,
    /// `GET /users`
    ListUsers,
    /// `POST /users/{userId}/meetings`
    CreateMeeting,
    /// `GET /meetings/{meetingId}`
    GetMeeting,
    /// `PATCH /meetings/{meetingId}`
    UpdateMeeting,
    /// `DELETE /meetings/{meetingId}`
    DeleteMeeting,
    /// `GET /users/{userId}/meetings`
    ListMeetings,
    /// `PUT /meetings/{meetingId}/status`
    EndMeeting,
}

impl Endpoint {
    /// The category whose budget a call spends.
    pub const fn category(self) -> RateCategory {
        match self {
            Endpoint::ListMeetings | Endpoint::ListUsers => RateCategory::Medium,
            Endpoint::GetUser
            | Endpoint::CreateMeeting
            | Endpoint::GetMeeting
            | Endpoint::UpdateMeeting
            | Endpoint::DeleteMeeting
            | Endpoint::EndMeeting => RateCategory::Light,
        }
    }

    /// Whether a call changes something in Zoom, so that it may only be sent once.
    pub const fn mutates(self) -> bool {
        matches!(
            self,
            Endpoint::CreateMeeting
                | Endpoint::UpdateMeeting
                | Endpoint::DeleteMeeting
                | Endpoint::EndMeeting
        )
    }

    /// Whether sending the call twice does what sending it once does, so a call that got no
    /// answer may go again: reads, an update (the same body again) and a delete (see
    /// [`crate::zoom::ZoomCall::done_when_gone`]). Not a create (a second meeting) nor an end.
    pub const fn idempotent(self) -> bool {
        !matches!(self, Endpoint::CreateMeeting | Endpoint::EndMeeting)
    }

    /// Whether Zoom counts the call against its host's 100 creates and updates of the day.
    pub const fn counts_per_user(self) -> bool {
        matches!(self, Endpoint::CreateMeeting | Endpoint::UpdateMeeting)
    }

    /// A stable name for logs, spans and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Endpoint::GetUser => "get_user",
            Endpoint::ListUsers => "list_users",
            Endpoint::CreateMeeting => "create_meeting",
            Endpoint::GetMeeting => "get_meeting",
            Endpoint::UpdateMeeting => "update_meeting",
            Endpoint::DeleteMeeting => "delete_meeting",
            Endpoint::ListMeetings => "list_meetings",
            Endpoint::EndMeeting => "end_meeting",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_zoom_s_table() {
        assert_eq!(Endpoint::CreateMeeting.category(), RateCategory::Light);
        assert_eq!(Endpoint::GetMeeting.category(), RateCategory::Light);
        assert_eq!(Endpoint::GetUser.category(), RateCategory::Light);
        assert_eq!(Endpoint::ListMeetings.category(), RateCategory::Medium);
        assert_eq!(Endpoint::ListUsers.category(), RateCategory::Medium);
        assert!(Endpoint::DeleteMeeting.mutates());
        assert!(!Endpoint::GetUser.mutates());
    }
}
