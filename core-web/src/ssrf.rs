//! Outbound requests to URLs that users give (webhooks, callbacks) without letting them reach the
//! server's own network: server-side request forgery (SSRF) protection.
//!
//! A [`Guard`] checks a URL in two steps:
//!
//! 1. [`Guard::parse`]: `http` or `https`, a host, no user name or password;
//! 2. [`Guard::resolve`]: the host's addresses (an IP literal is its own address), every one of
//!    which must be public. One forbidden address refuses the URL, so a name with a public and a
//!    private record cannot be used to reach the private one.
//!
//! Forbidden ([`Class`]): loopback, private, shared (carrier-grade NAT), link-local, unique-local,
//! multicast, unspecified, broadcast, reserved and documentation ranges, and the cloud metadata
//! addresses (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`), for IPv4 and IPv6. IPv6
//! forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64
//! `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address. [`Guard::allow`] lets
//! networks through anyway (tests with a receiver on `127.0.0.1`, private deployments).
//!
//! Check at registration **and again when connecting**, and connect to the addresses
//! [`Guard::resolve`] returned, never to the name: a name can resolve to a public address when
//! registered and to `127.0.0.1` a minute later (DNS rebinding). [`Resolve`] is the resolver the
//! guard asks; tests swap in a [`StaticResolver`]. A name that does not resolve within the
//! guard's timeout ([`Guard::with_timeout`], 2 s by default) is refused as unresolvable.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use core_web::ssrf::{Class, Guard, Refused, StaticResolver};
//!
//! let resolver = StaticResolver::new()
//!     .with("hooks.example.com", ["93.184.215.14".parse().unwrap()])
//!     .with("internal.example.com", ["10.0.0.7".parse().unwrap()]);
//! let guard = Guard::new().with_resolver(resolver);
//!
//! let url = guard.parse("https://hooks.example.com/in").unwrap();
//! let addrs = guard.resolve(&url).await.unwrap();
//! assert_eq!(addrs[0].to_string(), "93.184.215.14:443");
//!
//! let url = guard.parse("http://internal.example.com/").unwrap();
//! assert!(matches!(guard.resolve(&url).await, Err(Refused::Forbidden { class: Class::Private, .. })));
//! assert_eq!(guard.parse("ftp://example.com/"), Err(Refused::Scheme));
//!
//! let url = guard.parse("http://[::ffff:127.0.0.1]:8080/").unwrap();
//! assert!(guard.resolve(&url).await.is_err());
//! let local = Guard::new().allow(["127.0.0.0/8".parse().unwrap()]);
//! assert!(local.resolve(&url).await.is_ok());
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

pub use ipnet::IpNet;
use url::{Host, Url};

/// Why an address may not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Class {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `fec0::/10`.
    Private,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    Shared,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// Cloud instance metadata: `169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`.
    Metadata,
    /// Not routable on the internet: `192.0.0.0/24`, `198.18.0.0/15`, `240.0.0.0/4`, the
    /// documentation ranges, `100::/64`, `2001:db8::/32`, IPv4-compatible IPv6.
    Reserved,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::Shared => "shared (carrier-grade NAT)",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Metadata => "cloud metadata",
            Self::Reserved => "reserved",
        })
    }
}

/// Why a URL was refused. The messages name the address and its class, never a URL's
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Not a URL.
    #[error("not a valid URL")]
    Malformed,
    /// Not `http` or `https`.
    #[error("the URL must be http:// or https://")]
    Scheme,
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// A user name or password in the URL.
    #[error("the URL must not carry a user name or password")]
    Credentials,
    /// The name does not resolve (or the resolver failed).
    #[error("{host} does not resolve")]
    Unresolvable {
        /// The host name.
        host: String,
    },
    /// An address the guard does not allow.
    #[error("{addr} is a {class} address")]
    Forbidden {
        /// The address.
        addr: IpAddr,
        /// Its class.
        class: Class,
    },
}

/// The class that forbids `ip`, or `None` for a public address.
pub fn classify(ip: IpAddr) -> Option<Class> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, c, d] = ip.octets();
    let class = match (a, b, c, d) {
        (169, 254, 169, 254) | (100, 100, 100, 200) => Class::Metadata,
        (0, ..) => Class::Unspecified,
        (127, ..) => Class::Loopback,
        (10, ..) => Class::Private,
        (172, 16..=31, ..) => Class::Private,
        (192, 168, ..) => Class::Private,
        (100, 64..=127, ..) => Class::Shared,
        (169, 254, ..) => Class::LinkLocal,
        (255, 255, 255, 255) => Class::Broadcast,
        (224..=239, ..) => Class::Multicast,
        (240..=255, ..) => Class::Reserved,
        (192, 0, 0, _) | (192, 0, 2, _) | (198, 18..=19, ..) => Class::Reserved,
        (198, 51, 100, _) | (203, 0, 113, _) => Class::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(Class::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Class::Loopback);
    }
    // Forms that carry an IPv4 address are as safe as that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let low_v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(low_v4);
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated): never routed.
        return Some(Class::Reserved);
    }
    if s[0] == 0x2002 {
        let embedded = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return classify_v4(embedded);
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some(Class::Metadata);
    }
    let class = match s[0] {
        x if x & 0xfe00 == 0xfc00 => Class::UniqueLocal,
        x if x & 0xffc0 == 0xfe80 => Class::LinkLocal,
        x if x & 0xffc0 == 0xfec0 => Class::Private,
        x if x & 0xff00 == 0xff00 => Class::Multicast,
        0x2001 if s[1] == 0x0db8 => Class::Reserved,
        0x0100 if s[1..4] == [0, 0, 0] => Class::Reserved,
        _ => return None,
    };
    Some(class)
}

/// What a [`Resolve`] returns.
pub type Resolving<'a> = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Resolves host names for a [`Guard`].
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host`.
    fn resolve<'a>(&'a self, host: &'a str) -> Resolving<'a>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolving<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed table of names, for tests: a name it does not know does not resolve. Clones share
/// the table, so a test can change what a name resolves to between two checks.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    names: Arc<std::sync::RwLock<HashMap<String, Vec<IpAddr>>>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `host` resolves to `addrs` (replacing what it resolved to).
    #[must_use]
    pub fn with(self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.set(host, addrs);
        self
    }

    /// From now on, `host` resolves to `addrs`.
    pub fn set(&self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        names.insert(host.to_ascii_lowercase(), addrs.into_iter().collect());
    }
}

impl Resolve for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolving<'a> {
        let found = self
            .names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&host.to_ascii_lowercase())
            .cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown name"))
        })
    }
}

/// Checks user-given URLs and their addresses (see the module docs).
#[derive(Clone)]
pub struct Guard {
    allow: Arc<[IpNet]>,
    resolver: Arc<dyn Resolve>,
    timeout: std::time::Duration,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("allow", &self.allow)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Guard {
    fn default() -> Self {
        Self::new()
    }
}

impl Guard {
    /// How long a name may take to resolve by default: 2 seconds.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

    /// Public addresses only, names resolved by the system within
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    pub fn new() -> Self {
        Self {
            allow: Arc::from(Vec::new()),
            resolver: Arc::new(SystemResolver),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// A name that takes longer than `timeout` to resolve counts as unresolvable.
    #[must_use]
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Also allows addresses in `networks` (such as `127.0.0.0/8` for a local test receiver).
    #[must_use]
    pub fn allow(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        let mut all = self.allow.to_vec();
        all.extend(networks);
        self.allow = Arc::from(all);
        self
    }

    /// Resolves names with `resolver`.
    #[must_use]
    pub fn with_resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// The networks allowed besides public addresses.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// `Ok` when `ip` may be reached: public, or in an allowed network.
    ///
    /// # Errors
    /// [`Refused::Forbidden`] with the address's class.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = match ip {
            // Judge a mapped address as the IPv4 address it is, for the allow list too.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match classify(ip) {
            Some(class) if !self.allow.iter().any(|net| net.contains(&ip)) => {
                Err(Refused::Forbidden { addr: ip, class })
            }
            _ => Ok(()),
        }
    }

    /// Parses `url`: `http` or `https`, with a host, without credentials. Addresses are not
    /// checked yet ([`resolve`](Self::resolve)).
    ///
    /// # Errors
    /// [`Refused::Malformed`], [`Refused::Scheme`], [`Refused::NoHost`] or
    /// [`Refused::Credentials`].
    pub fn parse(&self, url: &str) -> Result<Url, Refused> {
        let url = Url::parse(url).map_err(|_| Refused::Malformed)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::Credentials);
        }
        match url.host() {
            None => Err(Refused::NoHost),
            Some(Host::Domain("")) => Err(Refused::NoHost),
            Some(_) => Ok(url),
        }
    }

    /// The socket addresses to connect to for `url`: its host's addresses (an IP literal is its
    /// own), every one checked, with the URL's port. Connect to these, not to the name.
    ///
    /// # Errors
    /// [`Refused::Unresolvable`], or [`Refused::Forbidden`] for the first forbidden address.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, Refused> {
        let port = url.port_or_known_default().unwrap_or(80);
        let ips = match url.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => {
                let unresolvable = || Refused::Unresolvable {
                    host: name.to_owned(),
                };
                let ips = tokio::time::timeout(self.timeout, self.resolver.resolve(name))
                    .await
                    .map_err(|_| unresolvable())?
                    .map_err(|_| unresolvable())?;
                if ips.is_empty() {
                    return Err(unresolvable());
                }
                ips
            }
            None => return Err(Refused::NoHost),
        };
        for ip in &ips {
            self.check_ip(*ip)?;
        }
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// [`parse`](Self::parse) then [`resolve`](Self::resolve) (within the guard's timeout).
    ///
    /// # Errors
    /// As those two.
    pub async fn check(&self, url: &str) -> Result<(Url, Vec<SocketAddr>), Refused> {
        let url = self.parse(url)?;
        let addrs = self.resolve(&url).await?;
        Ok((url, addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<Class> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn every_forbidden_class_is_recognised_in_both_families() {
        let cases = [
            ("127.0.0.1", Class::Loopback),
            ("127.255.255.254", Class::Loopback),
            ("::1", Class::Loopback),
            ("10.1.2.3", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("192.168.1.1", Class::Private),
            ("fec0::1", Class::Private),
            ("100.64.0.1", Class::Shared),
            ("169.254.1.1", Class::LinkLocal),
            ("fe80::1", Class::LinkLocal),
            ("fc00::1", Class::UniqueLocal),
            ("fd12:3456::1", Class::UniqueLocal),
            ("224.0.0.1", Class::Multicast),
            ("239.255.255.250", Class::Multicast),
            ("ff02::1", Class::Multicast),
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::Unspecified),
            ("::", Class::Unspecified),
            ("255.255.255.255", Class::Broadcast),
            ("169.254.169.254", Class::Metadata),
            ("100.100.100.200", Class::Metadata),
            ("fd00:ec2::254", Class::Metadata),
            ("240.0.0.1", Class::Reserved),
            ("192.0.2.1", Class::Reserved),
            ("198.18.0.1", Class::Reserved),
            ("2001:db8::1", Class::Reserved),
            ("100::1", Class::Reserved),
            // IPv6 forms carrying an IPv4 address.
            ("::ffff:127.0.0.1", Class::Loopback),
            ("::ffff:10.0.0.1", Class::Private),
            ("::ffff:169.254.169.254", Class::Metadata),
            ("64:ff9b::7f00:1", Class::Loopback),
            ("2002:c0a8:0101::1", Class::Private),
            ("::7f00:1", Class::Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn allowed_networks_let_forbidden_addresses_through_and_nothing_else() {
        let guard = Guard::new().allow(["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(guard.check_ip("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(guard.check_ip("::ffff:127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(
            guard.check_ip("10.0.0.1".parse().unwrap()),
            Err(Refused::Forbidden {
                addr: "10.0.0.1".parse().unwrap(),
                class: Class::Private
            })
        );
        assert!(guard.check_ip("::1".parse().unwrap()).is_err());
    }

    #[test]
    fn urls_need_http_a_host_and_no_credentials() {
        let guard = Guard::new();
        assert_eq!(guard.parse("not a url"), Err(Refused::Malformed));
        assert_eq!(guard.parse("ftp://example.com/"), Err(Refused::Scheme));
        assert_eq!(guard.parse("file:///etc/passwd"), Err(Refused::Scheme));
        assert_eq!(
            guard.parse("https://user:secret@example.com/"),
            Err(Refused::Credentials)
        );
        assert_eq!(
            guard.parse("http://user@example.com/"),
            Err(Refused::Credentials)
        );
        assert!(guard.parse("https://example.com:8443/hook?x=1").is_ok());
        let refused = guard.parse("https://user:secret@example.com/").unwrap_err();
        assert!(!refused.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn a_name_is_judged_by_every_address_it_resolves_to() {
        let resolver = StaticResolver::new()
            .with("public.test", ["93.184.215.14".parse().unwrap()])
            .with(
                "mixed.test",
                [
                    "93.184.215.14".parse().unwrap(),
                    "10.0.0.1".parse().unwrap(),
                ],
            )
            .with("empty.test", []);
        let guard = Guard::new().with_resolver(resolver.clone());
        let (_, addrs) = guard.check("http://public.test:8080/x").await.unwrap();
        assert_eq!(addrs, vec!["93.184.215.14:8080".parse().unwrap()]);
        assert!(matches!(
            guard.check("http://mixed.test/").await,
            Err(Refused::Forbidden {
                class: Class::Private,
                ..
            })
        ));
        assert!(matches!(
            guard.check("http://empty.test/").await,
            Err(Refused::Unresolvable { .. })
        ));
        assert!(matches!(
            guard.check("http://unknown.test/").await,
            Err(Refused::Unresolvable { .. })
        ));
        // DNS rebinding: public when registered, loopback when it is time to connect.
        resolver.set("public.test", ["127.0.0.1".parse().unwrap()]);
        assert!(matches!(
            guard.check("http://public.test:8080/x").await,
            Err(Refused::Forbidden {
                class: Class::Loopback,
                ..
            })
        ));
    }

    struct Stalled;

    impl Resolve for Stalled {
        fn resolve<'a>(&'a self, _host: &'a str) -> Resolving<'a> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_resolver_that_hangs_is_cut_off() {
        let guard = Guard::new()
            .with_resolver(Stalled)
            .with_timeout(std::time::Duration::from_millis(50));
        let checked = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            guard.check("https://slow.test/"),
        )
        .await
        .expect("the guard's own timeout ends the wait");
        assert_eq!(
            checked,
            Err(Refused::Unresolvable {
                host: "slow.test".to_owned()
            })
        );
    }

    #[tokio::test]
    async fn ip_literals_are_checked_without_resolving() {
        let guard = Guard::new().with_resolver(StaticResolver::new());
        for url in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            assert!(
                matches!(guard.check(url).await, Err(Refused::Forbidden { .. })),
                "{url}"
            );
        }
        let (_, addrs) = guard.check("https://93.184.215.14/").await.unwrap();
        assert_eq!(addrs, vec!["93.184.215.14:443".parse().unwrap()]);
    }
}
