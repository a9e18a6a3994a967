//! Integration tests: the real gateway over gRPC, against the in-process Zoom emulator.

mod support;

mod admin;
mod admin_cli;
mod audit;
mod cli;
mod config_file;
mod crash;
mod deadline;
mod demo;
mod directory;
mod errors;
mod h2raw;
mod health;
mod isolation;
mod limits;
mod logs;
mod meetings;
mod metrics;
mod mtls;
mod postgres;
mod process;
mod quota;
mod reload;
mod replicas;
mod requests;
mod restart;
mod store_faults;
mod terminal;
mod timing;
mod tokens;
mod traces;
mod validation;
