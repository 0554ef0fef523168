//! RFC 3339 timestamps in UTC, as the state file, the log and `list` show them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

pub fn rfc3339(secs: u64, nanos: u32) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::new(secs, nanos)).to_string()
}

pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_instants() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(super::rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(super::rfc3339(1_798_761_599, 0), "2026-12-31T23:59:59.000000000Z");
    }
}
