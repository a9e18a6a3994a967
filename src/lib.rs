//! zoomgate: a gRPC gateway in front of several Zoom accounts.
//!
//! # Layout
//! - [`config`]: TOML file and environment -> validated [`Config`].
//! - [`accounts`]: the fixed table of Zoom accounts and their credentials.
//! - [`token`]: per-account Server-to-Server token cache (early refresh, single flight).
//! - [`zoom`]: typed Zoom REST client and Zoom error codes.
//! - [`routing`]: which account owns a user or a meeting.
//! - [`directory`]: Zoom's user directory as the sync read it, and what contradicts it.
//! - [`policy`]: callers, their identities and grants; allow/deny and field redaction.
//! - [`admin`]: the platform team's use cases: accounts view, route overrides, explain, audit.
//! - [`quota`]: Zoom's budget per account: admission, fair share, daily caps, circuit breaker.
//! - [`meetings`]: the request path for meetings: route, authorize, call Zoom, record.
//! - [`store`]: durable state (meeting ledger, audit log) behind one trait; SQLite by default.
//! - [`grpc`]: tonic services, proto <-> domain conversion, the one error -> `Status` mapping.
//! - [`listener`]: accepted connections and the limits one client may hold of them.
//! - [`emulator`]: a faithful local Zoom for tests and `zoomgate demo`.
//! - [`ops`]: the ops HTTP listener (`/livez`, `/readyz`).
//! - [`reload`]: live config: the file watched, validated and swapped in.
//! - [`app`]: wiring, listeners, graceful shutdown.
//! - [`cli`]: the `zoomgate` command line.
//! - [`demo`]: `zoomgate demo`, an emulator and a gateway wired together.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod directory;
pub mod emulator;
pub mod error;
pub mod grpc;
pub mod listener;
pub mod meetings;
pub mod ops;
pub mod policy;
pub mod proto;
pub mod quota;
pub mod reload;
pub mod routing;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod zoom;

pub use app::App;
pub use config::Config;
pub use error::Error;
