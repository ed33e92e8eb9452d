//! Address ranges in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`, or a
//! single address), as the configuration writes trunks and agent networks.

use std::net::IpAddr;
use std::str::FromStr;

/// One range: the network address (host bits cleared) and its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or address/prefix")]
    Address(String),
    #[error("{0:?}: the prefix must be 0-32 for IPv4, 0-128 for IPv6")]
    Prefix(String),
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(ip) as u128, self.prefix, 32) == u32::from(net) as u128
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(ip), self.prefix, 128) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `bits` with all but the top `prefix` of its `width` bits cleared.
fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u128::MAX << (width - prefix);
    let keep = if width == 128 {
        keep
    } else {
        keep & ((1u128 << width) - 1)
    };
    bits & keep
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(s.to_string()))?;
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| CidrError::Prefix(s.to_string()))?,
        };
        let net = match ip {
            IpAddr::V4(v4) => IpAddr::V4((mask(u32::from(v4) as u128, prefix, 32) as u32).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask(u128::from(v6), prefix, 128).into()),
        };
        Ok(Cidr { net, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// A list of ranges; empty contains nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<Cidr>);

impl Networks {
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, CidrError> {
        items
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// Loopback and the private ranges (RFC 1918, RFC 4193), where agents'
/// phones sit by default.
pub const PRIVATE: [&str; 6] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1",
    "fc00::/7",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses_and_nothing_else() {
        let c: Cidr = "192.168.1.77/24".parse().unwrap();
        assert_eq!(c.to_string(), "192.168.1.0/24");
        assert!(c.contains(ip("192.168.1.1")) && c.contains(ip("192.168.1.255")));
        assert!(!c.contains(ip("192.168.2.1")));
        assert!(c.contains(ip("::ffff:192.168.1.9")), "v4-mapped");
        let one: Cidr = "203.0.113.5".parse().unwrap();
        assert!(one.contains(ip("203.0.113.5")) && !one.contains(ip("203.0.113.6")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let private = Networks::parse(&PRIVATE).unwrap();
        assert!(private.contains(ip("10.1.2.3")) && private.contains(ip("127.0.0.2")));
        assert!(private.contains(ip("172.31.0.1")) && !private.contains(ip("172.32.0.1")));
        assert!(!private.contains(ip("198.51.100.1")));
        assert!(!Networks::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        assert!(matches!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::Address(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "host.example".parse::<Cidr>(),
            Err(CidrError::Address(_))
        ));
        assert!(Networks::parse(&["10.0.0.0/8", "nonsense"]).is_err());
    }
}
