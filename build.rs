//! Compiles etcd's wire protos (written by us under proto/) with protox, a pure-Rust
//! protobuf compiler, so the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "etcdserverpb/rpc.proto",
        "v3lockpb/v3lock.proto",
        "v3electionpb/v3election.proto",
        "metastorepb/peer.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".")
        // Commands and their results travel through the raft log with serde (openraft's
        // requirement), so every message derives it.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
