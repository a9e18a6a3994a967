//! Integration tests: the real gateway over gRPC, against the in-process Zoom emulator.

mod support;

mod audit;
mod cli;
mod config_file;
mod demo;
mod errors;
mod health;
mod isolation;
mod logs;
mod meetings;
mod mtls;
mod restart;
mod terminal;
mod tokens;
mod validation;
