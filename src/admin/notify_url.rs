//! Which addresses paygate may send agency notifications to (contract section 7).
//!
//! Link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services live there) are
//! always refused; loopback and private ranges only with `PAYGATE_NOTIFY_ALLOW_PRIVATE=true`.
//! Names are checked here only when they are obviously local (`localhost`); the delivery worker
//! checks every address a name resolves to before it connects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Longest `notify_url` accepted; longer is surely not a real endpoint.
pub const MAX_NOTIFY_URL_CHARS: usize = 2_048;

/// Parses and vets a `notify_url`.
pub fn parse(value: &str, allow_private: bool) -> Result<Url, String> {
    if value.chars().count() > MAX_NOTIFY_URL_CHARS {
        return Err(format!(
            "must be at most {MAX_NOTIFY_URL_CHARS} characters long"
        ));
    }
    let url = Url::parse(value).map_err(|err| format!("must be an absolute URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".to_owned());
    }
    let ip = match url.host() {
        None => return Err("must name a host".to_owned()),
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost"))
                .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
    };
    match ip.map(|ip| classify(ip, allow_private)) {
        Some(Err(reason)) => Err(reason),
        _ => Ok(url),
    }
}

/// Ok when a connection to `ip` is allowed.
pub fn classify(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if is_link_local(ip) {
        return Err("must not be a link-local address".to_owned());
    }
    if !allow_private && is_private(ip) {
        return Err(
            "must not be a loopback or private address (PAYGATE_NOTIFY_ALLOW_PRIVATE is off)"
                .to_owned(),
        );
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT, is as internal as 10/8.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7, unique local addresses.
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6 == Ipv6Addr::UNSPECIFIED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_http_and_https_urls_are_accepted() {
        for url in [
            "https://dvc.hanoi.gov.vn/paygate/notify",
            "http://203.0.113.7:8443/hook",
        ] {
            assert!(parse(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn link_local_is_refused_even_when_private_is_allowed() {
        for url in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]/x",
            "http://[::ffff:169.254.1.1]/",
        ] {
            assert!(parse(url, true).is_err(), "{url}");
        }
    }

    #[test]
    fn loopback_and_private_need_the_switch() {
        for url in [
            "http://127.0.0.1:9000/",
            "http://localhost/x",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
        ] {
            assert!(parse(url, false).is_err(), "{url}");
            assert!(parse(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_schemes_relative_urls_and_credentials_are_refused() {
        for url in [
            "ftp://example.com/",
            "/notify",
            "https://user:pw@example.com/",
            "mailto:a@b.vn",
        ] {
            assert!(parse(url, true).is_err(), "{url}");
        }
    }
}
