//! The `metastore` binary: etcd's command line, `metastore bench ...` or
//! `metastore snapshot save|status|restore ...`.

mod bench;
mod etcdutl;

use metastore::config::Config;
use metastore::embed::Server;

/// jemalloc rather than glibc's malloc (issue 16): glibc's per-thread arenas keep what a
/// burst of requests freed (about 37 MiB after `make bench`'s put workloads, given back
/// only by `malloc_trim`), and its malloc and free were about a sixth of the server's CPU
/// under put 100/1000. A program embedding the library picks its own allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings: a background thread gives freed pages back to the system about a
/// second after they fall idle, rather than only when later allocations happen to purge.
/// (jemalloc reads the C string `malloc_conf`, `_rjem_`-prefixed as this crate builds it.)
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("bench") {
        std::process::exit(bench::main(&args[2..]));
    }
    if args.get(1).map(String::as_str) == Some("snapshot") {
        std::process::exit(etcdutl::main(&args[2..]));
    }
    let cfg = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("metastore: {e}");
            std::process::exit(2);
        }
    };
    let settings = cfg.log_settings().unwrap_or_default();
    if let Err(e) = metastore::logline::init(&settings) {
        eprintln!("metastore: {e}");
        std::process::exit(2);
    }
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(metastore::logline::Layer);
    // RUST_LOG, when set, narrows what the layer writes (for debugging metastore itself).
    match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => registry.with(filter).init(),
        Err(_) => registry.init(),
    }
    for var in Config::unknown_env_vars() {
        tracing::warn!("unrecognized environment variable {var}");
    }
    for (flag, value, why) in cfg.no_effect_flags() {
        metastore::logline::warn(
            &cfg.logger,
            "etcdmain",
            "flag has no effect in metastore",
            &[
                ("flag", flag),
                ("value", value),
                ("reason", why.to_string()),
            ],
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let logger = cfg.logger.clone();
    let code = rt.block_on(async move {
        let server = match Server::start(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("metastore: {e}");
                return 1;
            }
        };
        tokio::select! {
            _ = wait_for_signal() => {}
            e = server.member.fatal() => {
                // etcd's lg.Fatal: log and exit at once; the state cannot be trusted to
                // advance, so nothing more is served from it.
                metastore::logline::fatal(
                    &logger,
                    "etcdserver",
                    "stopping the member after a fatal error",
                    &[("error", e)],
                );
                return 1;
            }
        }
        server.close().await;
        0
    });
    std::process::exit(code);
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
