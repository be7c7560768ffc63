//! `metastore snapshot save|status|restore` (etcd: etcdctl snapshot, etcdutl snapshot).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use metastore::config::Config;
use metastore::snapshot::{self, status};

#[derive(Debug, Parser)]
#[command(name = "metastore snapshot")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Stream a snapshot of the store at ENDPOINT to FILE.
    Save {
        file: PathBuf,
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoints: String,
    },
    /// Hash, revision, key count and size of a snapshot file.
    Status {
        file: PathBuf,
        #[arg(short = 'w', long = "write-out", default_value = "simple")]
        write_out: String,
    },
    /// Build a new member's data dir from an etcd snapshot file.
    Restore {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long)]
        data_dir: Option<String>,
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        #[arg(long)]
        skip_hash_check: bool,
    },
}

pub fn main(args: &[String]) -> i32 {
    let args = match Args::try_parse_from(
        std::iter::once("metastore snapshot".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return 2;
        }
    };
    match run(args.cmd) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Save { file, endpoints } => save(file, endpoints),
        Cmd::Status { file, write_out } => {
            let st = status::status(&file).map_err(|e| e.to_string())?;
            let size = status::human_bytes(st.total_size);
            match write_out.as_str() {
                "json" => println!(
                    r#"{{"hash":{},"revision":{},"totalKey":{},"totalSize":{}}}"#,
                    st.hash, st.revision, st.total_key, st.total_size
                ),
                "table" => {
                    println!("+----------+----------+------------+------------+");
                    println!("|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |");
                    println!("+----------+----------+------------+------------+");
                    println!(
                        "| {:8x} | {:8} | {:10} | {:>10} |",
                        st.hash, st.revision, st.total_key, size
                    );
                    println!("+----------+----------+------------+------------+");
                }
                _ => println!("{:x}, {}, {}, {size}", st.hash, st.revision, st.total_key),
            }
            Ok(())
        }
        Cmd::Restore {
            file,
            name,
            data_dir,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| format!("{name}.etcd"));
            let cfg = Config::from_args(vec![
                "metastore".to_string(),
                format!("--name={name}"),
                format!("--data-dir={data_dir}"),
                format!("--initial-cluster={initial_cluster}"),
                format!("--initial-cluster-token={initial_cluster_token}"),
                format!("--initial-advertise-peer-urls={initial_advertise_peer_urls}"),
            ])
            .map_err(|e| e.to_string())?;
            eprintln!("restoring snapshot {file:?} into data-dir {data_dir:?}");
            let tty = std::io::stderr().is_terminal();
            let mut progress = |done: u64, all: u64| {
                if tty {
                    eprint!(
                        "\r{} of {}",
                        status::human_bytes(done),
                        status::human_bytes(all)
                    );
                    let _ = std::io::stderr().flush();
                }
            };
            let s =
                metastore::server::restore::restore(&cfg, &file, skip_hash_check, &mut progress)
                    .map_err(|e| match e {
                        // etcd's own text, without our layer's prefix
                        metastore::server::Error::Internal(m) => m,
                        other => other.to_string(),
                    })?;
            if tty {
                eprintln!();
            }
            eprintln!(
                "restored snapshot: revision {}, compacted at {}, {} key versions, {} leases, {} users, {} roles",
                s.revision, s.compact_revision, s.key_versions, s.leases, s.users, s.roles
            );
            Ok(())
        }
    }
}

fn save(file: PathBuf, endpoints: String) -> Result<(), String> {
    if endpoints.contains(',') {
        return Err("snapshot must be requested to one selected node, not multiple".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let part = PathBuf::from(format!("{}.part", file.display()));
    rt.block_on(async {
        let mut client = etcd_client::Client::connect([endpoints], None)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = client.snapshot().await.map_err(|e| e.to_string())?;
        let mut out = std::fs::File::create(&part).map_err(|e| e.to_string())?;
        let mut total = 0u64;
        while let Some(m) = stream.message().await.map_err(|e| e.to_string())? {
            out.write_all(m.blob()).map_err(|e| e.to_string())?;
            total += m.blob().len() as u64;
        }
        out.sync_all().map_err(|e| e.to_string())?;
        if !snapshot::has_trailer(total) {
            return Err(format!("snapshot of {total} bytes has no sha256 trailer"));
        }
        std::fs::rename(&part, &file).map_err(|e| e.to_string())?;
        println!("Snapshot saved at {}", file.display());
        Ok(())
    })
}
