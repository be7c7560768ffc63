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
    // The JSON gateway's encoding: protobuf's JSON mapping with etcd's proto field names
    // (grpc-gateway's OrigName), unknown fields skipped as etcd's gateway skips them.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    pbjson_build::Builder::new()
        .register_descriptors(&prost::Message::encode_to_vec(&fds))?
        .out_dir(&out)
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .btree_map(["."])
        .build(&[
            ".mvccpb",
            ".authpb",
            ".etcdserverpb",
            ".v3lockpb",
            ".v3electionpb",
        ])?;
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
