//! The generated `/etc/hosts` and the host's `/etc/resolv.conf` that a RUN sees.
//!
//! RUN shares the host's network, so the host's resolver configuration is the right one (even
//! a `127.0.0.53` stub resolver is reachable). `/etc/hosts` maps `localhost` and the sandbox's
//! hostname to the loopback address, plus the `--add-host` entries.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;

/// The host resolver configuration a RUN gets.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Bigger than any real resolv.conf; keeps a strange host file from being slurped whole.
const RESOLV_CONF_LIMIT: u64 = 64 * 1024;

/// Checks a hostname for `sethostname` and for use in `/etc/hosts`.
pub(super) fn check_hostname(hostname: &str) -> Result<(), String> {
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(format!("hostname {hostname:?} must be 1 to 64 bytes long"));
    }
    if !hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
        return Err(format!("hostname {hostname:?} may only contain letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// Checks one `(name, ip)` extra host: the ip must parse and the name must not be able to
/// inject anything into the hosts file.
pub(super) fn check_extra_host(name: &str, ip: &str) -> Result<(), String> {
    if ip.parse::<IpAddr>().is_err() {
        return Err(format!("extra host {name:?}: {ip:?} is not an IP address"));
    }
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'#') {
        return Err(format!("extra host name {name:?} is empty or contains whitespace, control characters or '#'"));
    }
    Ok(())
}

/// `/etc/hosts` for the sandbox.
pub(super) fn hosts_file(hostname: &str, extra_hosts: &[(String, String)]) -> String {
    let mut s = format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (name, ip) in extra_hosts {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

/// The host's `/etc/resolv.conf`, or `None` when the host has none (the image's own file, if
/// any, is then left visible).
pub(super) fn host_resolv_conf() -> Option<String> {
    let mut s = String::new();
    File::open(HOST_RESOLV_CONF).ok()?.take(RESOLV_CONF_LIMIT).read_to_string(&mut s).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lists_localhost_hostname_and_extras() {
        let h = hosts_file("box", &[("db".into(), "10.0.0.5".into()), ("v6".into(), "fd00::1".into())]);
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.5\tdb\nfd00::1\tv6\n"
        );
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(check_hostname("buildkitsandbox").is_ok());
        assert!(check_hostname("a.b-c_d").is_ok());
        assert!(check_hostname("").is_err());
        assert!(check_hostname(&"x".repeat(65)).is_err());
        assert!(check_hostname("evil\n1.2.3.4 bank").is_err());
    }

    #[test]
    fn extra_hosts_cannot_inject_lines() {
        assert!(check_extra_host("db", "10.0.0.5").is_ok());
        assert!(check_extra_host("db", "not-an-ip").is_err());
        assert!(check_extra_host("db\n1.2.3.4 x", "10.0.0.5").is_err());
        assert!(check_extra_host("a b", "10.0.0.5").is_err());
        assert!(check_extra_host("", "10.0.0.5").is_err());
    }
}
