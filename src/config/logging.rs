//! `--logger`, `--log-level`, `--log-outputs` and `--log-format` (etcd's
//! embed/config_logging.go), checked and parsed into [`LogSettings`].

use std::path::PathBuf;

use super::{Config, Error};
pub use crate::logline::{Format, Level, LogSettings, Output};

impl Config {
    /// The logging the flags ask for, with etcd's errors for what it refuses.
    pub fn log_settings(&self) -> Result<LogSettings, Error> {
        let level = if self.debug {
            Level::Debug
        } else {
            Level::parse(&self.log_level).ok_or_else(|| {
                Error::Invalid(format!("unrecognized level: {:?}", self.log_level))
            })?
        };
        // --log-outputs wins over 3.4's deprecated --log-output.
        let outputs_text = if !self.is_given("log-outputs") && self.is_given("log-output") {
            self.flag("log-output").to_string()
        } else {
            self.log_outputs.clone().unwrap_or_default()
        };
        let names: Vec<&str> = outputs_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let names = if names.is_empty() {
            vec!["default"]
        } else {
            names
        };
        let format = match self.logger.as_str() {
            "zap" => match self.flag("log-format") {
                "json" | "" => Format::Json,
                "console" => Format::Console,
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown log format: {other}, supported values json, console"
                    )))
                }
            },
            "capnslog" => {
                if names.len() != 1 {
                    return Err(Error::Invalid(format!(
                        "--logger=capnslog supports only 1 value in '--log-outputs', got {names:?}"
                    )));
                }
                if !["default", "stderr", "stdout"].contains(&names[0]) {
                    return Err(Error::Invalid(format!(
                        "unknown log-output {:?} (only supports \"default\", \"stderr\", \"stdout\")",
                        names[0]
                    )));
                }
                Format::Capnslog
            }
            other => return Err(Error::Invalid(format!("unknown logger option {other:?}"))),
        };
        if names.len() > 1 && names.contains(&"default") {
            return Err(Error::Invalid(
                "multi logoutput for \"default\" is not supported yet".into(),
            ));
        }
        let mut outputs = Vec::new();
        for name in names {
            let out = match name {
                // journald reads a service's stderr; etcd falls back to stderr too
                "default" | "stderr" | "systemd/journal" => Output::Stderr,
                "stdout" => Output::Stdout,
                path => Output::File(PathBuf::from(path)),
            };
            if !outputs.contains(&out) {
                outputs.push(out);
            }
        }
        Ok(LogSettings {
            level,
            outputs,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<LogSettings, Error> {
        let cfg = Config::from_args(
            std::iter::once("metastore")
                .chain(args.iter().copied())
                .map(String::from),
        )?;
        cfg.log_settings()
    }

    #[test]
    fn levels_outputs_and_formats() {
        assert_eq!(settings(&[]).unwrap(), LogSettings::default());
        let s = settings(&["--log-level", "warn", "--log-outputs", "stdout,/tmp/x.log"]).unwrap();
        assert_eq!(s.level, Level::Warn);
        assert_eq!(
            s.outputs,
            vec![Output::Stdout, Output::File(PathBuf::from("/tmp/x.log"))]
        );
        assert_eq!(settings(&["--debug"]).unwrap().level, Level::Debug);
        assert_eq!(
            settings(&["--log-output", "stdout"]).unwrap().outputs,
            vec![Output::Stdout]
        );
        assert_eq!(
            settings(&["--log-format", "console"]).unwrap().format,
            Format::Console
        );
        assert_eq!(
            settings(&["--logger", "capnslog"]).unwrap().format,
            Format::Capnslog
        );
    }

    #[test]
    fn etcds_refusals() {
        let e = |args: &[&str]| settings(args).unwrap_err().to_string();
        assert_eq!(e(&["--log-level", "loud"]), "unrecognized level: \"loud\"");
        assert_eq!(
            e(&["--log-outputs", "default,stdout"]),
            "multi logoutput for \"default\" is not supported yet"
        );
        assert_eq!(
            e(&["--log-format", "xml"]),
            "unknown log format: xml, supported values json, console"
        );
        assert_eq!(e(&["--logger", "glog"]), "unknown logger option \"glog\"");
        assert_eq!(
            e(&["--logger", "capnslog", "--log-outputs", "/tmp/x.log"]),
            "unknown log-output \"/tmp/x.log\" (only supports \"default\", \"stderr\", \"stdout\")"
        );
    }
}
