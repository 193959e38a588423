//! Human spellings of quantities in the config: sizes (`"64KiB"`,
//! `"1GiB"`, `"10MB"`, `"4096"`), durations (`"250ms"`, `"5s"`, `"10m"`,
//! `"2h"`, `"1d"`) and file modes (`"0644"`).

use std::time::Duration;

/// Parses a size: a whole number with an optional unit B, KB, MB, GB, TB
/// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024); case-insensitive
/// units, optional space before the unit.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a size: expected a number such as \"64KiB\" or \"1GiB\""
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}`: number too large"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}`: size too large"))
}

/// Parses a duration: a whole number followed by ms, s, m, h or d.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() || unit.trim().is_empty() {
        return Err(format!("`{s}` is not a duration: expected a number and a unit such as \"250ms\", \"5s\" or \"10m\""));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}`: number too large"))?;
    let millis_per: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" | "sec" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "`{s}`: unknown duration unit `{other}` (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(millis_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}`: duration too large"))
}

/// Parses an octal file mode such as "0644" or "755".
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim().trim_start_matches("0o");
    if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("`{s}` is not an octal file mode such as \"0644\""));
    }
    u32::from_str_radix(t, 8).map_err(|e| format!("`{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert!(parse_size("1XB")
            .unwrap_err()
            .contains("unknown size unit `xb`"));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999999TiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert_eq!(parse_mode("0o2750"), Ok(0o2750));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("").is_err());
    }
}
