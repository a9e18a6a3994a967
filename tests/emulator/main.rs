//! Integration tests of the Zoom emulator, over real HTTP on loopback.

mod faults;
mod fidelity;
mod meetings;
mod oauth;
mod ratelimit;
mod scopes;
mod support;
mod users;
mod webhooks;
