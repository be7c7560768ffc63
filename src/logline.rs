//! etcd's log lines that harnesses wait on, in the format of the chosen `--logger`.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// One line on stderr: capnslog's `date time L | pkg: msg`, or zap's JSON.
pub fn info(logger: &str, pkg: &str, msg: &str, fields: &[(&str, String)]) {
    line(logger, ('I', "info"), pkg, msg, fields);
}

/// The line etcd logs before it exits on an error it cannot go on from (zap's `fatal`
/// level; capnslog's `C`, which its Fatal uses).
pub fn fatal(logger: &str, pkg: &str, msg: &str, fields: &[(&str, String)]) {
    line(logger, ('C', "fatal"), pkg, msg, fields);
}

fn line(logger: &str, level: (char, &str), pkg: &str, msg: &str, fields: &[(&str, String)]) {
    let (y, mo, d, h, mi, s, us) = civil(SystemTime::now());
    let (short, long) = level;
    if logger == "capnslog" {
        eprintln!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06} {short} | {pkg}: {msg}");
    } else {
        let mut line = format!(
            r#"{{"level":"{long}","ts":"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z","caller":"{pkg}","msg":{}"#,
            us / 1000,
            serde_json::to_string(msg).unwrap_or_default()
        );
        for (k, v) in fields {
            line.push_str(&format!(
                ",{}:{}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_default()
            ));
        }
        line.push('}');
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
