//! Where `http` steps may connect, and the limits they run under.
//!
//! Two independent checks, both of which must pass:
//!
//! - **Host names**: with an allow-list ([`HttpPolicy::allow_host`]), a URL's
//!   host must be on it (exact name, IP literal, or `*.example.com` for any
//!   subdomain). Without one, any host name is accepted.
//! - **Addresses**: every address a host resolves to (or an IP literal) must
//!   be public, or inside a network allowed with [`HttpPolicy::allow_network`]
//!   / [`HttpPolicy::allow_ip`]. Loopback, private (RFC 1918, unique local),
//!   link-local (including cloud metadata at 169.254.169.254), carrier-grade
//!   NAT, multicast, unspecified and reserved ranges are refused, also when
//!   written as IPv4-mapped IPv6 addresses.
//!
//! Address checks happen in the DNS resolver the HTTP client uses, so they
//! apply to the addresses actually connected to (a name cannot be re-pointed
//! at an internal address between the check and the connection). Redirects are
//! not followed and proxies from the environment are not used, so neither can
//! route around the checks.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// An IP network in CIDR notation, e.g. `10.0.0.0/8` or `::1/128` (an
/// [`ipnet::IpNet`]; a bare address is the network of that one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork(IpNet);

impl IpNetwork {
    /// A network; `None` when `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        IpNet::new(addr, prefix).ok().map(IpNetwork)
    }

    /// The network holding exactly one address.
    pub fn host(addr: IpAddr) -> Self {
        IpNetwork(IpNet::from(addr))
    }

    /// True if `ip` is inside this network (IPv4-mapped IPv6 addresses count
    /// as their IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not an IP network such as 10.0.0.0/8");
        let s = s.trim();
        if s.contains('/') {
            s.parse::<IpNet>().map(IpNetwork).map_err(|_| bad())
        } else {
            s.parse().map(IpNetwork::host).map_err(|_| bad())
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// IPv4 networks that are not the public internet (IANA special-purpose
/// registry, the ranges an SSRF filter must refuse).
const INTERNAL_V4: [Ipv4Net; 14] = [
    v4(0, 0, 0, 0, 8),       // "this network", including 0.0.0.0
    v4(10, 0, 0, 0, 8),      // private
    v4(100, 64, 0, 0, 10),   // carrier-grade NAT
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local, cloud metadata
    v4(172, 16, 0, 0, 12),   // private
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // documentation
    v4(192, 168, 0, 0, 16),  // private
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // documentation
    v4(203, 0, 113, 0, 24),  // documentation
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, including 255.255.255.255
];

/// IPv6 networks that are not the public internet.
const INTERNAL_V6: [Ipv6Net; 7] = [
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique local
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),     // site-local (deprecated)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
];

/// IPv6 networks whose last 32 bits are an IPv4 address, judged as that
/// address: NAT64 and the deprecated IPv4-compatible form.
const CARRIES_V4: [Ipv6Net; 2] = [
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
];

/// True for addresses that are not on the public internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    INTERNAL_V4.iter().any(|n| n.contains(&ip))
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    if INTERNAL_V6.iter().any(|n| n.contains(&ip)) {
        return true;
    }
    if CARRIES_V4.iter().any(|n| n.contains(&ip)) {
        let [.., a, b, c, d] = ip.octets();
        return is_internal_v4(Ipv4Addr::new(a, b, c, d));
    }
    false
}

/// Why a request was refused before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

/// Safety settings and limits of the [`Http`](super::Http) handler.
///
/// The default refuses internal addresses, accepts any public host, and
/// limits responses to 4 MiB, attempts to 30 s and `Retry-After` to 300 s.
///
/// ```
/// use tasker_engine::handlers::{Http, HttpPolicy};
/// use std::time::Duration;
///
/// let policy = HttpPolicy::default()
///     .allow_host("api.example.com")
///     .allow_host("*.payments.example.com")
///     .allow_network("10.20.0.0/16".parse().unwrap())
///     .max_response_bytes(1 << 20)
///     .default_timeout(Duration::from_secs(10));
/// let handler = Http::new(policy);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPolicy {
    /// Host names a URL may use; `None` accepts any. Lowercase; an entry
    /// `*.example.com` matches every subdomain of `example.com`.
    pub allowed_hosts: Option<Vec<String>>,
    /// Networks that may be connected to even though they are internal.
    pub allowed_networks: Vec<IpNetwork>,
    /// Refuse internal addresses (loopback, private, link-local, …) outside
    /// `allowed_networks`. Default true.
    pub deny_internal: bool,
    /// Largest response body read, in bytes; larger responses fail the
    /// attempt permanently. Default 4 MiB.
    pub max_response_bytes: usize,
    /// Per-attempt timeout when the step config sets none. Default 30 s.
    pub default_timeout: Duration,
    /// Time allowed to establish a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Longest `Retry-After` honoured; longer requests are cut to this.
    /// Default 300 s (the engine also caps at `backoff.max_backoff_seconds`).
    pub max_retry_after: Duration,
    /// If set, `headers_from_env` may only read variables whose names start
    /// with one of these prefixes. Default: any variable.
    pub env_var_prefixes: Option<Vec<String>>,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            allowed_hosts: None,
            allowed_networks: Vec::new(),
            deny_internal: true,
            max_response_bytes: 4 * 1024 * 1024,
            default_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(300),
            env_var_prefixes: None,
        }
    }
}

impl HttpPolicy {
    /// Adds a host to the allow-list (and turns the allow-list on): an exact
    /// name or IP literal, or `*.example.com` for its subdomains.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        let host = host
            .into()
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        self.allowed_hosts.get_or_insert_with(Vec::new).push(host);
        self
    }

    /// Allows connecting to an internal network, e.g. `10.20.0.0/16`.
    pub fn allow_network(mut self, network: IpNetwork) -> Self {
        self.allowed_networks.push(network);
        self
    }

    /// Allows connecting to one internal address, e.g. `127.0.0.1` in tests.
    pub fn allow_ip(self, ip: IpAddr) -> Self {
        self.allow_network(IpNetwork::host(ip))
    }

    /// Allows every internal address (trusted templates on a private network only).
    pub fn allow_internal(mut self) -> Self {
        self.deny_internal = false;
        self
    }

    /// Sets the largest response body accepted, in bytes.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Sets the per-attempt timeout used when a step sets none.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Sets the connection timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the longest `Retry-After` honoured.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Restricts `headers_from_env` to variables starting with `prefix`
    /// (may be called several times).
    pub fn env_var_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_var_prefixes
            .get_or_insert_with(Vec::new)
            .push(prefix.into());
        self
    }

    /// May the process connect to `ip`?
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allowed_networks.iter().any(|n| n.contains(ip))
            || !(self.deny_internal && is_internal(ip))
    }

    /// Checks a URL before anything is sent: scheme, host allow-list, and
    /// the address when the host is an IP literal (names are checked when
    /// resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Denied> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Denied(format!(
                "URL scheme `{}` is not allowed (http or https only)",
                url.scheme()
            )));
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => {
                // IPv6 literals come bracketed; the URL parser has already
                // normalised IPv4 forms such as `0x7f000001`.
                let bare = h.trim_start_matches('[').trim_end_matches(']');
                match bare.parse::<IpAddr>() {
                    Ok(ip) => HostRef::Ip(ip),
                    Err(_) => HostRef::Name(h.trim_end_matches('.').to_ascii_lowercase()),
                }
            }
            _ => return Err(Denied("URL has no host".into())),
        };
        if let Some(allowed) = &self.allowed_hosts {
            let ok = allowed.iter().any(|pattern| host.matches(pattern));
            if !ok {
                return Err(Denied(format!(
                    "host `{}` is not in the allowed hosts",
                    host.text()
                )));
            }
        }
        if let HostRef::Ip(ip) = host
            && !self.ip_allowed(ip)
        {
            return Err(Denied(format!(
                "address {ip} is internal and not allowed (HttpPolicy::allow_network)"
            )));
        }
        Ok(())
    }

    /// Checks an environment variable name against `env_var_prefixes`.
    pub fn env_var_allowed(&self, name: &str) -> bool {
        self.env_var_prefixes
            .as_ref()
            .is_none_or(|p| p.iter().any(|p| name.starts_with(p.as_str())))
    }
}

enum HostRef {
    Name(String),
    Ip(IpAddr),
}

impl HostRef {
    fn text(&self) -> String {
        match self {
            HostRef::Name(n) => n.clone(),
            HostRef::Ip(ip) => ip.to_string(),
        }
    }

    fn matches(&self, pattern: &str) -> bool {
        match self {
            HostRef::Name(name) => match pattern.strip_prefix("*.") {
                Some(suffix) => name
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                None => name == pattern,
            },
            HostRef::Ip(ip) => pattern
                .parse::<IpAddr>()
                .is_ok_and(|p| canonical(p) == canonical(*ip)),
        }
    }
}

/// The DNS resolver of the handler's client: resolves with the system
/// resolver and keeps only the addresses the policy allows.
pub(super) struct PolicyResolver {
    pub(super) policy: Arc<HttpPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.ip_allowed(a.ip()))
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                let addrs: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                return Err(Box::new(Denied(format!(
                    "host `{host}` resolves to internal address(es) {} that are not allowed (HttpPolicy::allow_network)",
                    addrs.join(", ")
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn internal_ranges() {
        for a in [
            "127.0.0.1",
            "127.9.9.9",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2001:db8::1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "fec0::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(ip(a)), "{a} should be internal");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "::8.8.8.8",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            assert!(!is_internal(ip(a)), "{a} should be public");
        }
    }

    #[test]
    fn networks() {
        let n: IpNetwork = "10.20.0.0/16".parse().unwrap();
        assert!(n.contains(ip("10.20.3.4")));
        assert!(!n.contains(ip("10.21.0.1")));
        assert!(n.contains(ip("::ffff:10.20.0.9")));
        let n: IpNetwork = "172.16.0.0/12".parse().unwrap();
        assert!(n.contains(ip("172.31.0.1")) && !n.contains(ip("172.32.0.1")));
        let one: IpNetwork = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpNetwork = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
        assert!("nope/8".parse::<IpNetwork>().is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<IpNetwork>()
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
    }

    #[test]
    fn default_policy_refuses_internal_literals_only() {
        let p = HttpPolicy::default();
        assert!(p.check_url(&url("https://api.example.com/x")).is_ok());
        assert!(p.check_url(&url("http://8.8.8.8/")).is_ok());
        for bad in [
            "http://127.0.0.1:8080/",
            "http://10.0.0.1/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://[::ffff:7f00:1]/",
            "http://0x7f000001/",
            "http://2130706433/",
        ] {
            let err = p.check_url(&url(bad)).unwrap_err();
            assert!(err.0.contains("not allowed"), "{bad}: {err}");
        }
        assert!(p.check_url(&url("ftp://example.com/")).is_err());
        assert!(p.check_url(&url("file:///etc/passwd")).is_err());
    }

    #[test]
    fn allowed_networks_and_hosts() {
        let p = HttpPolicy::default().allow_ip(ip("127.0.0.1"));
        assert!(p.check_url(&url("http://127.0.0.1:9/")).is_ok());
        assert!(p.check_url(&url("http://127.0.0.2:9/")).is_err());
        assert!(p.check_url(&url("http://[::1]:9/")).is_err());

        let p = HttpPolicy::default()
            .allow_host("API.example.com.")
            .allow_host("*.svc.example.com")
            .allow_host("[::1]")
            .allow_ip(ip("::1"));
        assert!(p.check_url(&url("https://api.example.com/")).is_ok());
        assert!(p.check_url(&url("https://API.EXAMPLE.COM./")).is_ok());
        assert!(p.check_url(&url("https://a.svc.example.com/")).is_ok());
        assert!(p.check_url(&url("https://a.b.svc.example.com/")).is_ok());
        assert!(p.check_url(&url("http://[::1]:80/")).is_ok());
        for bad in [
            "https://svc.example.com/",
            "https://evilsvc.example.com/",
            "https://example.com/",
            "https://api.example.com.evil.org/",
            "http://8.8.8.8/",
        ] {
            let err = p.check_url(&url(bad)).unwrap_err();
            assert!(err.0.contains("allowed hosts"), "{bad}: {err}");
        }
        assert!(
            HttpPolicy::default()
                .allow_internal()
                .check_url(&url("http://10.1.1.1/"))
                .is_ok()
        );
    }

    #[test]
    fn env_var_prefixes() {
        assert!(HttpPolicy::default().env_var_allowed("HOME"));
        let p = HttpPolicy::default().env_var_prefix("TASKER_SECRET_");
        assert!(p.env_var_allowed("TASKER_SECRET_API"));
        assert!(!p.env_var_allowed("AWS_SECRET_ACCESS_KEY"));
    }

    #[tokio::test]
    async fn resolver_filters_internal_addresses() {
        use reqwest::dns::Resolve;
        let deny = PolicyResolver {
            policy: Arc::new(HttpPolicy::default()),
        };
        let err = deny
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("internal"), "{err}");
        let allow = PolicyResolver {
            policy: Arc::new(HttpPolicy::default().allow_ip(ip("127.0.0.1"))),
        };
        let addrs: Vec<SocketAddr> = allow
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip() == ip("127.0.0.1")), "{addrs:?}");
    }
}
