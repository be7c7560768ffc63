//! Generated code for etcd's wire protos (proto/, compiled by build.rs), and the two things
//! the generated code needs from us: the gRPC codec (codec.rs) and the decoding of txns
//! nested deeper than prost allows (nested.rs).
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}
pub mod leasepb {
    tonic::include_proto!("leasepb");
}
pub mod authpb {
    tonic::include_proto!("authpb");
}
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
pub mod metastorepb {
    tonic::include_proto!("metastorepb");
}

pub mod codec;
pub mod nested;
