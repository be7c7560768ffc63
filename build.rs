//! Compiles etcd's wire protos (written by us under proto/) with protox, a pure-Rust
//! protobuf compiler, so the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "etcdserverpb/rpc.proto",
        "v3lockpb/v3lock.proto",
        "v3electionpb/v3election.proto",
        "metastorepb/peer.proto",
        "metastorepb/raft_internal.proto",
        "metastorepb/raft_storage.proto",
        "leasepb/lease.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".")
        // Maps encode in key order, so equal state encodes to equal bytes on every member
        // (Maintenance.Hash hashes the stored membership).
        .btree_map(".")
        .generate_default_stubs(true)
        // prost's codec, but txns decode at any depth etcd accepts (src/proto/codec.rs)
        .codec_path("crate::proto::codec::EtcdCodec")
        .compile_fds(fds)?;
    Ok(())
}
