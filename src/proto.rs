//! Generated protobuf and gRPC code for `zoomgate.v1`; nothing hand-written.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("zoomgate.v1");

/// Encoded descriptor set of the zoomgate protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("zoomgate_descriptor");
