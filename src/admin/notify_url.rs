//! Which addresses paygate may send agency notifications to.
//!
//! Every address falls in one of three classes ([`address_class`]):
//!
//! - forbidden, always refused: link-local (169.254.0.0/16, fe80::/10: cloud metadata services
//!   live there), unspecified and "this network" (0.0.0.0/8, ::), multicast (224.0.0.0/4,
//!   ff00::/8), reserved and broadcast (240.0.0.0/4), the 6to4 relay anycast 192.88.99.0/24,
//!   Teredo 2001::/32, and IPv6 outside global unicast 2000::/3 other than the ranges named
//!   below (the IPv4-compatible ::/96 and discard-only 100::/64 among them): none of them is
//!   ever a legitimate receiver;
//! - private, refused unless `PAYGATE_NOTIFY_ALLOW_PRIVATE=true` (for development and tests):
//!   loopback (127.0.0.0/8, ::1), private (10/8, 172.16/12, 192.168/16), carrier-grade NAT
//!   (100.64.0.0/10), benchmarking (198.18.0.0/15), IETF protocol assignments (192.0.0.0/24),
//!   the documentation ranges, unique local (fc00::/7), site-local (fec0::/10) and local-use
//!   NAT64 (64:ff9b:1::/48);
//! - public: everything else.
//!
//! An IPv6 address that embeds an IPv4 address which decides where its packets go (IPv4-mapped
//! ::ffff:0:0/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) has the
//! class of that IPv4 address, so `[::ffff:169.254.169.254]` is as forbidden as
//! `169.254.169.254`.
//!
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

/// Whom an address belongs to, for the notification address rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// An ordinary internet address: always allowed.
    Public,
    /// Inside some private network (loopback, RFC 1918, carrier-grade NAT, unique local, ...):
    /// refused unless `PAYGATE_NOTIFY_ALLOW_PRIVATE=true`, which development and test set-ups
    /// need to notify a receiver on the same machine or network.
    Private,
    /// Never a legitimate receiver, whatever the switch says: link-local (cloud metadata
    /// services live there), unspecified, multicast, broadcast and reserved addresses, and
    /// tunnels whose far end cannot be checked.
    Forbidden,
}

use AddressClass::{Forbidden, Private, Public};

/// One range of the address rule: its first address, prefix length, class and name.
struct Range<A> {
    first: A,
    prefix_len: u32,
    class: AddressClass,
    name: &'static str,
}

const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    prefix_len: u32,
    class: AddressClass,
    name: &'static str,
) -> Range<u32> {
    Range {
        first: u32::from_be_bytes([a, b, c, d]),
        prefix_len,
        class,
        name,
    }
}

const fn v6(first: u128, prefix_len: u32, class: AddressClass, name: &'static str) -> Range<u128> {
    Range {
        first,
        prefix_len,
        class,
        name,
    }
}

/// The IPv4 ranges that are not [`Public`]. Ranges do not overlap.
const V4_RANGES: &[Range<u32>] = &[
    // 0.0.0.0 reaches the local host on Linux, and nothing else in 0/8 is routable.
    v4(0, 0, 0, 0, 8, Forbidden, "\"this network\" (0.0.0.0/8)"),
    v4(10, 0, 0, 0, 8, Private, "private (10.0.0.0/8)"),
    v4(
        100,
        64,
        0,
        0,
        10,
        Private,
        "carrier-grade NAT (100.64.0.0/10)",
    ),
    v4(127, 0, 0, 0, 8, Private, "loopback (127.0.0.0/8)"),
    v4(169, 254, 0, 0, 16, Forbidden, "link-local (169.254.0.0/16)"),
    v4(172, 16, 0, 0, 12, Private, "private (172.16.0.0/12)"),
    v4(
        192,
        0,
        0,
        0,
        24,
        Private,
        "IETF protocol assignment (192.0.0.0/24)",
    ),
    v4(192, 0, 2, 0, 24, Private, "documentation (192.0.2.0/24)"),
    // Packets sent there go to whichever 6to4 relay is nearest, and on to anywhere.
    v4(
        192,
        88,
        99,
        0,
        24,
        Forbidden,
        "6to4 relay anycast (192.88.99.0/24)",
    ),
    v4(192, 168, 0, 0, 16, Private, "private (192.168.0.0/16)"),
    v4(198, 18, 0, 0, 15, Private, "benchmarking (198.18.0.0/15)"),
    v4(
        198,
        51,
        100,
        0,
        24,
        Private,
        "documentation (198.51.100.0/24)",
    ),
    v4(
        203,
        0,
        113,
        0,
        24,
        Private,
        "documentation (203.0.113.0/24)",
    ),
    v4(224, 0, 0, 0, 4, Forbidden, "multicast (224.0.0.0/4)"),
    // Reserved for future use, the limited broadcast 255.255.255.255 included.
    v4(
        240,
        0,
        0,
        0,
        4,
        Forbidden,
        "reserved or broadcast (240.0.0.0/4)",
    ),
];

/// The IPv6 ranges that are not [`Public`], after the ranges that embed an IPv4 address
/// (IPv4-mapped ::ffff:0:0/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96 and 6to4
/// 2002::/16) have been classified by that IPv4 address. The first range that holds an address
/// decides; the last one is every address outside global unicast 2000::/3 (the rest of it is
/// reserved and routed nowhere on the internet).
const V6_RANGES: &[Range<u128>] = &[
    v6(0, 128, Forbidden, "unspecified (::)"),
    v6(1, 128, Private, "loopback (::1)"),
    // A local-use NAT64 prefix translates to addresses of the local network's choosing.
    v6(
        0x0064_ff9b_0001 << 80,
        48,
        Private,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    // Teredo tunnels through a relay to an IPv4 address that is not checked here.
    v6(0x2001_0000 << 96, 32, Forbidden, "Teredo (2001::/32)"),
    v6(
        0x2001_0002_0000 << 80,
        48,
        Private,
        "benchmarking (2001:2::/48)",
    ),
    v6(
        0x2001_0db8 << 96,
        32,
        Private,
        "documentation (2001:db8::/32)",
    ),
    v6(0x2000 << 112, 3, Public, "global unicast (2000::/3)"),
    v6(0xfc00 << 112, 7, Private, "unique local (fc00::/7)"),
    v6(0xfe80 << 112, 10, Forbidden, "link-local (fe80::/10)"),
    v6(0xfec0 << 112, 10, Private, "site-local (fec0::/10)"),
    v6(0xff00 << 112, 8, Forbidden, "multicast (ff00::/8)"),
    // Everything else (::/8 with the IPv4-compatible ::/96, 100::/64 discard-only, ...) is
    // reserved; a prefix length of 1 with either first bit covers the rest.
    v6(0, 1, Forbidden, "reserved IPv6"),
    v6(1 << 127, 1, Forbidden, "reserved IPv6"),
];

fn find<A>(ranges: &'static [Range<A>], ip: A, bits: u32) -> Option<&'static Range<A>>
where
    A: Copy + PartialEq + std::ops::Shr<u32, Output = A>,
{
    ranges.iter().find(|range| {
        let shift = bits - range.prefix_len;
        // A shift by the full width overflows; no range here has prefix length 0.
        ip >> shift == range.first >> shift
    })
}

/// The IPv4 address an IPv6 address stands for, when it embeds one that decides where the
/// packets go: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), NAT64 with the
/// well-known prefix (64:ff9b::a.b.c.d), and 6to4 (2002:aabb:ccdd::/48, whose packets are
/// tunnelled to a.b.c.d).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    if bits >> 32 == 0xffff || bits >> 32 == 0xffff_0000 || bits >> 32 == 0x0064_ff9b << 64 {
        return Some(low32);
    }
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

/// The class of `ip` and the name of the range that decided it (`None` for a public address).
/// This one function is the whole address rule; [`classify`] applies the switch to it.
pub fn address_class(ip: IpAddr) -> (AddressClass, Option<&'static str>) {
    let v4_class = |ip: Ipv4Addr| match find(V4_RANGES, u32::from(ip), 32) {
        Some(range) => (range.class, Some(range.name)),
        None => (Public, None),
    };
    match ip {
        IpAddr::V4(ip) => v4_class(ip),
        IpAddr::V6(ip) => match embedded_v4(ip) {
            Some(inner) => v4_class(inner),
            None => match find(V6_RANGES, u128::from(ip), 128) {
                Some(range) if range.class != Public => (range.class, Some(range.name)),
                _ => (Public, None),
            },
        },
    }
}

/// Ok when paygate may connect to `ip` to deliver a notification; otherwise why not, as a
/// message for the `notify_url` field or an attempt's `last_error`.
pub fn classify(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    match address_class(ip) {
        (Public, _) => Ok(()),
        (Private, _) if allow_private => Ok(()),
        (Private, name) => Err(format!(
            "must not point at {} addresses (private addresses need \
             PAYGATE_NOTIFY_ALLOW_PRIVATE=true)",
            name.unwrap_or("private")
        )),
        (Forbidden, name) => Err(format!(
            "must not point at {} addresses (never allowed)",
            name.unwrap_or("reserved")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range of the rule with the addresses on both sides of each of its boundaries:
    /// its first and last address and the addresses just outside it.
    const TABLE: &[(&str, AddressClass)] = &[
        // 0.0.0.0/8
        ("0.0.0.0", Forbidden),
        ("0.255.255.255", Forbidden),
        ("1.0.0.0", Public),
        // 10.0.0.0/8
        ("9.255.255.255", Public),
        ("10.0.0.0", Private),
        ("10.255.255.255", Private),
        ("11.0.0.0", Public),
        // 100.64.0.0/10
        ("100.63.255.255", Public),
        ("100.64.0.0", Private),
        ("100.127.255.255", Private),
        ("100.128.0.0", Public),
        // 127.0.0.0/8
        ("126.255.255.255", Public),
        ("127.0.0.0", Private),
        ("127.0.0.1", Private),
        ("127.255.255.255", Private),
        ("128.0.0.0", Public),
        // 169.254.0.0/16
        ("169.253.255.255", Public),
        ("169.254.0.0", Forbidden),
        ("169.254.169.254", Forbidden),
        ("169.254.255.255", Forbidden),
        ("169.255.0.0", Public),
        // 172.16.0.0/12
        ("172.15.255.255", Public),
        ("172.16.0.0", Private),
        ("172.31.255.255", Private),
        ("172.32.0.0", Public),
        // 192.0.0.0/24 and 192.0.2.0/24
        ("191.255.255.255", Public),
        ("192.0.0.0", Private),
        ("192.0.0.255", Private),
        ("192.0.1.0", Public),
        ("192.0.1.255", Public),
        ("192.0.2.0", Private),
        ("192.0.2.255", Private),
        ("192.0.3.0", Public),
        // 192.88.99.0/24
        ("192.88.98.255", Public),
        ("192.88.99.0", Forbidden),
        ("192.88.99.255", Forbidden),
        ("192.88.100.0", Public),
        // 192.168.0.0/16
        ("192.167.255.255", Public),
        ("192.168.0.0", Private),
        ("192.168.255.255", Private),
        ("192.169.0.0", Public),
        // 198.18.0.0/15
        ("198.17.255.255", Public),
        ("198.18.0.0", Private),
        ("198.19.255.255", Private),
        ("198.20.0.0", Public),
        // 198.51.100.0/24
        ("198.51.99.255", Public),
        ("198.51.100.0", Private),
        ("198.51.100.255", Private),
        ("198.51.101.0", Public),
        // 203.0.113.0/24
        ("203.0.112.255", Public),
        ("203.0.113.0", Private),
        ("203.0.113.255", Private),
        ("203.0.114.0", Public),
        // 224.0.0.0/4 and 240.0.0.0/4, up to the broadcast address
        ("223.255.255.255", Public),
        ("224.0.0.0", Forbidden),
        ("239.255.255.255", Forbidden),
        ("240.0.0.0", Forbidden),
        ("255.255.255.254", Forbidden),
        ("255.255.255.255", Forbidden),
        // Ordinary addresses
        ("8.8.8.8", Public),
        ("14.160.0.1", Public),
        // :: and ::1, and the reserved ::/8 around them (::/96, IPv4-compatible, included)
        ("::", Forbidden),
        ("::1", Private),
        ("::2", Forbidden),
        ("::ffff:ffff", Forbidden),
        ("::1:0:0", Forbidden),
        // ::ffff:0:0/96, IPv4-mapped: the class of the IPv4 address
        ("::fffe:ffff:ffff", Forbidden),
        ("::ffff:0.0.0.0", Forbidden),
        ("::ffff:8.8.8.8", Public),
        ("::ffff:10.0.0.1", Private),
        ("::ffff:127.0.0.1", Private),
        ("::ffff:169.254.169.254", Forbidden),
        ("::ffff:224.0.0.1", Forbidden),
        ("::ffff:255.255.255.255", Forbidden),
        ("::1:0:0:0", Forbidden),
        // ::ffff:0:0:0/96, IPv4-translated
        ("::fffe:ffff:ffff:ffff", Forbidden),
        ("::ffff:0:0.0.0.0", Forbidden),
        ("::ffff:0:10.1.2.3", Private),
        ("::ffff:0:169.254.169.254", Forbidden),
        ("::ffff:0:8.8.8.8", Public),
        ("::ffff:1:0:0", Forbidden),
        // 64:ff9b::/96, NAT64: the class of the IPv4 address
        ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("64:ff9b::", Forbidden),
        ("64:ff9b::8.8.8.8", Public),
        ("64:ff9b::127.0.0.1", Private),
        ("64:ff9b::192.168.1.1", Private),
        ("64:ff9b::169.254.169.254", Forbidden),
        ("64:ff9b::240.0.0.1", Forbidden),
        ("64:ff9b::ffff:ffff", Forbidden),
        ("64:ff9b::1:0:0", Forbidden),
        // 64:ff9b:1::/48, local-use NAT64
        ("64:ff9b:0:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("64:ff9b:1::", Private),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Private),
        ("64:ff9b:2::", Forbidden),
        // 100::/64, discard-only, in reserved space; 2000::/3, global unicast
        ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("100::", Forbidden),
        ("100::ffff:ffff:ffff:ffff", Forbidden),
        ("100:0:0:1::", Forbidden),
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("2000::", Public),
        ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Public),
        ("4000::", Forbidden),
        // 2001::/32 (Teredo), 2001:2::/48 (benchmarking), 2001:db8::/32 (documentation)
        ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Public),
        ("2001::", Forbidden),
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("2001:1::", Public),
        ("2001:1:ffff:ffff:ffff:ffff:ffff:ffff", Public),
        ("2001:2::", Private),
        ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Private),
        ("2001:2:1::", Public),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", Public),
        ("2001:db8::", Private),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Private),
        ("2001:db9::", Public),
        // 2002::/16, 6to4: the class of the IPv4 address in bits 16-47
        ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Public),
        ("2002::", Forbidden),
        ("2002:808:808::1", Public),
        ("2002:7f00:1::1", Private),
        ("2002:a00:1::", Private),
        ("2002:a9fe:a9fe::1", Forbidden),
        ("2002:e000:1::", Forbidden),
        ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("2003::", Public),
        // Ordinary addresses
        ("2001:4860:4860::8888", Public),
        ("2405:4800::1", Public),
        // fc00::/7, unique local
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("fc00::", Private),
        ("fd00::1", Private),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Private),
        ("fe00::", Forbidden),
        // fe80::/10, link-local; fec0::/10, site-local; ff00::/8, multicast
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("fe80::", Forbidden),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
        ("fec0::", Private),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Private),
        ("ff00::", Forbidden),
        ("ff02::1", Forbidden),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Forbidden),
    ];

    #[test]
    fn every_range_has_its_class_on_both_sides_of_each_boundary() {
        for (text, expected) in TABLE {
            let ip: IpAddr = text.parse().unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(address_class(ip).0, *expected, "{text}");
        }
    }

    #[test]
    fn the_switch_admits_private_addresses_and_nothing_forbidden() {
        for (text, class) in TABLE {
            let ip: IpAddr = text.parse().unwrap();
            let (strict, relaxed) = (classify(ip, false), classify(ip, true));
            match class {
                Public => assert!(strict.is_ok() && relaxed.is_ok(), "{text}"),
                Private => {
                    let reason = strict.expect_err(text);
                    assert!(reason.contains("PAYGATE_NOTIFY_ALLOW_PRIVATE"), "{reason}");
                    assert!(relaxed.is_ok(), "{text}");
                }
                Forbidden => {
                    assert!(strict.is_err(), "{text}");
                    let reason = relaxed.expect_err(text);
                    assert!(reason.contains("never allowed"), "{reason}");
                }
            }
        }
    }

    #[test]
    fn a_refusal_names_the_range() {
        let reason = classify("::ffff:169.254.169.254".parse().unwrap(), true).unwrap_err();
        assert!(reason.contains("link-local (169.254.0.0/16)"), "{reason}");
        let reason = classify("10.1.2.3".parse().unwrap(), false).unwrap_err();
        assert!(reason.contains("private (10.0.0.0/8)"), "{reason}");
    }

    #[test]
    fn public_http_and_https_urls_are_accepted() {
        for url in [
            "https://dvc.hanoi.gov.vn/paygate/notify",
            "http://14.160.0.1:8443/hook",
            "http://[2405:4800::1]/hook",
        ] {
            assert!(parse(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn forbidden_addresses_are_refused_even_when_private_is_allowed() {
        for url in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]/x",
            "http://[::ffff:169.254.1.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
            "http://255.255.255.255/",
            "http://240.1.2.3/",
        ] {
            assert!(parse(url, true).is_err(), "{url}");
        }
    }

    #[test]
    fn loopback_and_private_need_the_switch() {
        for url in [
            "http://127.0.0.1:9000/",
            "http://localhost/x",
            "http://api.localhost./x",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://198.18.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[2002:c0a8:101::1]/",
            // Shorthand forms of IPv4 literals are addresses too.
            "http://0x7f.1/",
            "http://2130706433/",
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
