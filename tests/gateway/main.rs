//! Integration tests: the real gateway over gRPC, against the in-process Zoom emulator.

mod support;

mod audit;
mod cli;
mod crash;
mod demo;
mod errors;
mod health;
mod isolation;
mod logs;
mod meetings;
mod mtls;
mod process;
mod restart;
mod store_faults;
mod tokens;
mod validation;
