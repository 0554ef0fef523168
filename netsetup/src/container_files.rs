//! The files that tell a container who and where it is on the network:
//! /etc/hosts and /etc/resolv.conf, written as Docker writes them on its
//! default bridge (`../shared/docker/behaviour.md`).

use std::net::Ipv4Addr;

/// Docker's localhost lines, then the container's own address and name.
pub fn hosts_file(hostname: &str, address: Option<Ipv4Addr>) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    if let Some(address) = address {
        text += &format!("{address}\t{hostname}\n");
    }
    text
}

/// The host's resolv.conf without loopback nameservers, which mean the
/// host's own resolver and are unreachable from the container's network
/// namespace. When none is left, Docker (up to 27) falls back to Google's
/// public resolvers; so do we, so that the view matches.
pub fn resolv_conf(host: &str) -> String {
    let is_loopback = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words.next().is_some_and(|addr| addr.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
    };
    let mut kept: Vec<&str> = host.lines().filter(|l| !is_loopback(l)).collect();
    let has_nameserver = kept.iter().any(|l| l.split_whitespace().next() == Some("nameserver"));
    let mut text = String::new();
    if !has_nameserver {
        kept.retain(|l| !l.trim().is_empty());
    }
    for line in kept {
        text += line;
        text.push('\n');
    }
    if !has_nameserver {
        text += "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_like_docker() {
        let hosts = hosts_file("0123456789ab", Some("172.17.0.2".parse().unwrap()));
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(hosts.ends_with("172.17.0.2\t0123456789ab\n"));
        assert!(!hosts_file("x", None).contains("\tx\n"));
    }

    #[test]
    fn loopback_nameservers_are_dropped() {
        let host = "# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\noptions edns0\n";
        assert_eq!(resolv_conf(host), "# generated\nsearch example.org\nnameserver 10.0.0.2\noptions edns0\n");
    }

    #[test]
    fn only_loopback_falls_back_to_public_resolvers() {
        let text = resolv_conf("nameserver 127.0.0.53\nsearch lan\n");
        assert_eq!(text, "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert_eq!(resolv_conf(""), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
}
