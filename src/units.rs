//! Sizes and counts as trowel prints them for people. One formatter for every front end (the
//! log, `replay --summary`, the debugger, `trowel warm`), so a layer has the same size wherever it
//! is shown.

/// `word` for one, `words` for any other count (`1 layer`, `0 layers`, `2 lines`).
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}

/// Bytes in decimal units, as kaniko and the registry tools print them: `999 B`, `1.5 kB`,
/// `116.6 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    // 999,950 bytes rounds to 1000.0 kB at one decimal: that is 1.0 MB.
    while (v >= 1000.0 || (u > 0 && v >= 999.95)) && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn decimal_units_with_one_decimal() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(999_949), "999.9 kB");
        assert_eq!(bytes(999_950), "1.0 MB");
        assert_eq!(bytes(1500), "1.5 kB");
        assert_eq!(bytes(300_000), "300.0 kB");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(bytes(116_600_000), "116.6 MB");
        assert_eq!(bytes(2_500_000_000), "2.5 GB");
        assert_eq!(bytes(7_000_000_000_000_000), "7000.0 TB");
    }
}
