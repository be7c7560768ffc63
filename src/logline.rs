//! etcd's log lines (the ones harnesses wait on, and the process's own), in the format,
//! at the level and to the outputs the logging flags choose; `tracing` events from the
//! rest of the crate are written the same way (see [`Layer`]).

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use std::path::PathBuf;

/// UTC civil time from a unix timestamp: (year, month, day, hour, minute, second, micros).
fn civil(now: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
        d.subsec_micros(),
    )
}

/// zap's levels, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    /// zap's DPanicLevel: logged, and (in production) nothing more.
    DPanic,
    Panic,
    Fatal,
}

impl Level {
    /// zap's Level.Set: the lower- or upper-case name.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" | "" => Level::Info,
            "warn" => Level::Warn,
            "error" => Level::Error,
            "dpanic" => Level::DPanic,
            "panic" => Level::Panic,
            "fatal" => Level::Fatal,
            _ => return None,
        })
    }

    /// The name zap writes in a JSON line.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::DPanic => "dpanic",
            Level::Panic => "panic",
            Level::Fatal => "fatal",
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stderr,
    Stdout,
    /// Appended to (created if missing), as zap opens its file sinks.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// zap's JSON lines (etcd 3.5's only format, 3.6's default).
    Json,
    /// zap's console encoder: tab-separated time, level, caller, message, JSON fields.
    Console,
    /// etcd 3.4's `--logger capnslog`: `date time L | pkg: message`.
    Capnslog,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub level: Level,
    pub outputs: Vec<Output>,
    pub format: Format,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: Level::Info,
            outputs: vec![Output::Stderr],
            format: Format::Json,
        }
    }
}

/// Where and how lines are written, once `init` has run (a process's `--logger`,
/// `--log-level`, `--log-outputs`, `--log-format`). Without it (an embedding host), lines
/// go to stderr at info level in the format of the `logger` argument.
struct Sink {
    level: Level,
    format: Format,
    outputs: Vec<Mutex<Box<dyn Write + Send>>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Open the outputs and keep the settings for every line from now on.
pub fn init(settings: &LogSettings) -> std::io::Result<()> {
    let mut outputs: Vec<Mutex<Box<dyn Write + Send>>> = Vec::new();
    for out in &settings.outputs {
        let w: Box<dyn Write + Send> = match out {
            Output::Stderr => Box::new(std::io::stderr()),
            Output::Stdout => Box::new(std::io::stdout()),
            Output::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("open {}: {e}", path.display()))
                    })?,
            ),
        };
        outputs.push(Mutex::new(w));
    }
    let _ = SINK.set(Sink {
        level: settings.level,
        format: settings.format,
        outputs,
    });
    Ok(())
}

/// Whether a line at `level` is written.
pub fn enabled(level: Level) -> bool {
    level >= SINK.get().map_or(Level::Info, |s| s.level)
}

/// An info line (etcd's readiness lines are info: `--log-level warn` hides them).
pub fn info(logger: &str, pkg: &str, msg: &str, fields: &[(&str, String)]) {
    line(logger, Level::Info, pkg, msg, fields);
}

/// A warning line.
pub fn warn(logger: &str, pkg: &str, msg: &str, fields: &[(&str, String)]) {
    line(logger, Level::Warn, pkg, msg, fields);
}

/// The line etcd logs before it exits on an error it cannot go on from (zap's `fatal`
/// level; capnslog's `C`, which its Fatal uses).
pub fn fatal(logger: &str, pkg: &str, msg: &str, fields: &[(&str, String)]) {
    line(logger, Level::Fatal, pkg, msg, fields);
}

/// One line at `level`, if the level is enabled.
pub fn line(logger: &str, level: Level, pkg: &str, msg: &str, fields: &[(&str, String)]) {
    if !enabled(level) {
        return;
    }
    let format = match SINK.get() {
        Some(s) => s.format,
        None if logger == "capnslog" => Format::Capnslog,
        None => Format::Json,
    };
    let mut text = render(format, SystemTime::now(), level, pkg, msg, fields);
    text.push('\n');
    match SINK.get() {
        Some(sink) => {
            for out in &sink.outputs {
                let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = w.write_all(text.as_bytes());
                let _ = w.flush();
            }
        }
        None => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

/// A line in zap's JSON or console encoding, or capnslog's text.
fn render(
    format: Format,
    now: SystemTime,
    level: Level,
    pkg: &str,
    msg: &str,
    fields: &[(&str, String)],
) -> String {
    let (y, mo, d, h, mi, s, us) = civil(now);
    let fields_json = || {
        let mut out = String::new();
        for (k, v) in fields {
            out.push_str(&format!(
                ",{}:{}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_default()
            ));
        }
        out
    };
    match format {
        Format::Capnslog => {
            let short = match level {
                Level::Debug => 'D',
                Level::Info => 'I',
                Level::Warn => 'W',
                Level::Error => 'E',
                Level::DPanic | Level::Panic | Level::Fatal => 'C',
            };
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06} {short} | {pkg}: {msg}")
        }
        Format::Console => {
            let fields = fields_json();
            let mut line = format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z\t{}\t{pkg}\t{msg}",
                us / 1000,
                level.name().to_uppercase()
            );
            if !fields.is_empty() {
                line.push_str(&format!("\t{{{}}}", &fields[1..]));
            }
            line
        }
        Format::Json => format!(
            r#"{{"level":"{}","ts":"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z","caller":"{pkg}","msg":{}{}}}"#,
            level.name(),
            us / 1000,
            serde_json::to_string(msg).unwrap_or_default(),
            fields_json()
        ),
    }
}

/// A `tracing` layer writing the crate's events as log lines like the ones above:
/// metastore's own at the chosen level, other crates' (openraft, hyper) at warn and above.
pub struct Layer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let level = level_of(meta.level());
        let ours = meta.target().starts_with("metastore");
        enabled(level) && (ours || level >= Level::Warn)
    }

    /// The most verbose level written: callsites above it are never enabled, and `log`
    /// records from crates that use the `log` macros (sled) are filtered by `log`'s own
    /// max level (set from this at init) instead of each reaching the subscriber.
    fn max_level_hint(&self) -> Option<tracing_subscriber::filter::LevelFilter> {
        use tracing_subscriber::filter::LevelFilter;
        Some(if enabled(Level::Debug) {
            LevelFilter::TRACE
        } else if enabled(Level::Info) {
            LevelFilter::INFO
        } else if enabled(Level::Warn) {
            LevelFilter::WARN
        } else {
            LevelFilter::ERROR
        })
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        let fields: Vec<(&str, String)> = v.fields.iter().map(|(k, v)| (*k, v.clone())).collect();
        let level = level_of(event.metadata().level());
        line("zap", level, event.metadata().target(), &v.message, &fields);
    }
}

fn level_of(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push((field.name(), format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats() {
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        let f = [("address", "127.0.0.1:2379".to_string())];
        assert_eq!(
            render(Format::Json, t, Level::Info, "embed", "serving", &f),
            r#"{"level":"info","ts":"2000-02-29T00:00:00.000Z","caller":"embed","msg":"serving","address":"127.0.0.1:2379"}"#
        );
        assert_eq!(
            render(Format::Console, t, Level::Warn, "embed", "serving", &f),
            "2000-02-29T00:00:00.000Z\tWARN\tembed\tserving\t{\"address\":\"127.0.0.1:2379\"}"
        );
        assert_eq!(
            render(Format::Capnslog, t, Level::Info, "embed", "serving", &f),
            "2000-02-29 00:00:00.000000 I | embed: serving"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(UNIX_EPOCH), (1970, 1, 1, 0, 0, 0, 0));
        let t = UNIX_EPOCH + Duration::from_secs(1_795_425_000);
        assert_eq!(civil(t).0, 2026);
        assert_eq!(
            civil(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            (2000, 2, 29, 0, 0, 0, 0)
        );
    }
}
