//! Wait targets: `host:port`, `tcp://host:port`, `http://…`, `https://…`, with IPv6
//! literals in brackets. Shared by the annotation parser and the `wait` command so both
//! accept exactly the same language.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use url::Url;

use crate::engine::names::is_dns1123_subdomain;

/// A parsed wait target, normalized so that equal targets compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaitTarget {
    /// A TCP connect to `host:port`.
    Tcp { host: Host, port: u16 },
    /// An HTTP(S) GET that must answer 2xx.
    Http(HttpTarget),
}

/// An HTTP or HTTPS URL with a host, a port (explicit or the scheme's) and no
/// credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpTarget {
    url: String,
    tls: bool,
}

/// A DNS name or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    Name(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ipv4(ip) => write!(f, "{ip}"),
            Host::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

impl HttpTarget {
    /// The URL, normalized.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Why a text is not a wait target, in words fit to follow the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing but white space.
    #[error("the target is empty")]
    Empty,
    /// White space inside the target.
    #[error("a target cannot contain spaces")]
    Spaces,
    /// A scheme other than tcp, http and https (cut to 20 characters).
    #[error("the scheme {0:?} is not supported (use tcp://, http:// or https://)")]
    Scheme(String),
    /// The URL parser's reason; it reads as part of the sentence, so it is shown rather
    /// than chained as a cause.
    #[error("it is not a valid URL ({0})")]
    Url(url::ParseError),
    /// `user:password@` in a URL.
    #[error("credentials do not belong in an annotation; remove the user:password@ part")]
    Credentials,
    /// A URL without a host.
    #[error("the URL has no host")]
    UrlHost,
    /// A URL without a port, explicit or known for its scheme.
    #[error("the URL has no port")]
    UrlPort,
    /// `[` without `]`.
    #[error("the IPv6 address has no closing ']'")]
    Bracket,
    /// Something in brackets that is not an IPv6 address.
    #[error("the address in brackets is not an IPv6 address")]
    Ipv6,
    /// `[ipv6]` without `:port`.
    #[error("a port is missing; expected [ipv6]:port")]
    Ipv6Port,
    /// No `:port`.
    #[error("a port is missing; expected host:port")]
    Port,
    /// An IPv6 address without brackets.
    #[error("an IPv6 address needs brackets, as in [::1]:5432")]
    Ipv6Brackets,
    /// A path without an http(s) scheme.
    #[error("a path needs an http:// or https:// URL")]
    Path,
    /// Nothing before `:port`.
    #[error("the host is empty; expected host:port")]
    Host,
    /// Nothing after `host:`.
    #[error("the port is empty; expected a number from 1 to 65535")]
    PortEmpty,
    /// A port that is not digits.
    #[error("the port is not a number; expected 1 to 65535")]
    PortNumber,
    /// A port of 0 or above 65535; the digits when there are few enough to show.
    #[error("{} is out of range; expected 1 to 65535", match .0 { Some(port) => format!("port {port}"), None => "the port".to_owned() })]
    PortRange(Option<String>),
    /// Port 0 in a URL.
    #[error("port 0 is not a port; expected 1 to 65535")]
    PortZero,
    /// A DNS name of 0 or more than 253 characters.
    #[error("the host name is empty or longer than 253 characters")]
    NameLength,
    /// A DNS name with a label that is not a DNS-1123 label.
    #[error(
        "the host is not a valid host name (dot-separated labels of letters, digits and '-', at most 63 characters each)"
    )]
    Name,
}

impl TargetError {
    /// Whether the message already says what form was expected, so a caller need not
    /// add the list of target forms.
    pub fn names_expected_form(&self) -> bool {
        matches!(
            self,
            TargetError::Ipv6Port
                | TargetError::Port
                | TargetError::Host
                | TargetError::PortEmpty
                | TargetError::PortNumber
                | TargetError::PortRange(_)
                | TargetError::PortZero
        )
    }
}

impl WaitTarget {
    /// Parses one target.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TargetError::Empty);
        }
        if text.chars().any(char::is_whitespace) {
            return Err(TargetError::Spaces);
        }
        if let Some(rest) = text.strip_prefix("tcp://") {
            let (host, port) = parse_host_port(rest)?;
            return Ok(WaitTarget::Tcp { host, port });
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return parse_http(text).map(WaitTarget::Http);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(TargetError::Scheme(scheme.chars().take(20).collect()));
        }
        let (host, port) = parse_host_port(text)?;
        Ok(WaitTarget::Tcp { host, port })
    }
}

impl fmt::Display for WaitTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitTarget::Tcp { host, port } => write!(f, "{host}:{port}"),
            WaitTarget::Http(http) => f.write_str(&http.url),
        }
    }
}

fn parse_http(text: &str) -> Result<HttpTarget, TargetError> {
    let mut url = Url::parse(text).map_err(TargetError::Url)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    match url.host() {
        Some(url::Host::Domain(name)) => {
            check_dns_name(name)?;
        }
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {}
        None => return Err(TargetError::UrlHost),
    }
    match url.port_or_known_default() {
        None => return Err(TargetError::UrlPort),
        Some(0) => return Err(TargetError::PortZero),
        Some(_) => {}
    }
    let tls = url.scheme() == "https";
    url.set_fragment(None);
    Ok(HttpTarget {
        url: url.into(),
        tls,
    })
}

fn parse_host_port(text: &str) -> Result<(Host, u16), TargetError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(TargetError::Bracket)?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| TargetError::Ipv6)?;
        let port = after.strip_prefix(':').ok_or(TargetError::Ipv6Port)?;
        (Host::Ipv6(ip), port)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or(TargetError::Port)?;
        if host.contains(':') {
            return Err(TargetError::Ipv6Brackets);
        }
        if host.contains('/') || port.contains('/') {
            return Err(TargetError::Path);
        }
        if host.is_empty() {
            return Err(TargetError::Host);
        }
        let host = match host.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ipv4(ip),
            Err(_) => Host::Name(check_dns_name(host)?),
        };
        (host, port)
    };
    Ok((host, parse_port(port)?))
}

fn parse_port(text: &str) -> Result<u16, TargetError> {
    if text.is_empty() {
        return Err(TargetError::PortEmpty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::PortNumber);
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(TargetError::PortRange(
            (text.len() <= 10).then(|| text.to_owned()),
        )),
    }
}

/// Checks a DNS name (DNS-1123 labels, 253 characters at most, an optional final dot,
/// any case) and returns it in lowercase.
fn check_dns_name(name: &str) -> Result<String, TargetError> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_suffix('.').unwrap_or(&lower);
    if bare.is_empty() || bare.len() > 253 {
        return Err(TargetError::NameLength);
    }
    if !is_dns1123_subdomain(bare) {
        return Err(TargetError::Name);
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::names::unique_label;

    #[test]
    fn accepts_each_form() {
        let cases = [
            ("postgres:5432", "postgres:5432", "wait-for-postgres-5432"),
            ("tcp://redis:6379", "redis:6379", "wait-for-redis-6379"),
            (
                "DB.Example.COM:1",
                "db.example.com:1",
                "wait-for-db-example-com-1",
            ),
            ("10.0.0.7:80", "10.0.0.7:80", "wait-for-10-0-0-7-80"),
            ("[::1]:5432", "[::1]:5432", "wait-for-1-5432"),
            (
                "tcp://[fe80::1]:65535",
                "[fe80::1]:65535",
                "wait-for-fe80-1-65535",
            ),
            (
                "http://api:8080/healthz",
                "http://api:8080/healthz",
                "wait-for-http-api-8080-healthz",
            ),
            (
                "https://vault.vault.svc:8200/v1/sys/health",
                "https://vault.vault.svc:8200/v1/sys/health",
                "wait-for-https-vault-vault-svc-8200-v1-sys-health",
            ),
            ("http://api", "http://api/", "wait-for-http-api"),
            (
                "http://[::1]:9000/x#frag",
                "http://[::1]:9000/x",
                "wait-for-http-1-9000-x",
            ),
        ];
        // The third column is the name the target's wait step gets (from its text, as
        // `plan::wait` names it).
        for (input, display, name) in cases {
            let target = WaitTarget::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(target.to_string(), display, "{input}");
            let label = unique_label("wait-for", &target.to_string(), display, |_| false);
            assert_eq!(label, name, "{input}");
        }
    }

    #[test]
    fn schemes() {
        let WaitTarget::Http(http) = WaitTarget::parse("https://vault").unwrap() else {
            panic!("not http")
        };
        assert_eq!((http.url(), http.tls), ("https://vault/", true));
        let WaitTarget::Http(http) = WaitTarget::parse("http://api:81").unwrap() else {
            panic!("not http")
        };
        assert_eq!((http.url(), http.tls), ("http://api:81/", false));
    }

    #[test]
    fn rejects_with_reason() {
        let cases = [
            ("", "empty"),
            ("postgres", "port is missing"),
            ("postgres:", "port is empty"),
            (":5432", "host is empty"),
            ("postgres:0", "out of range"),
            ("postgres:65536", "out of range"),
            ("postgres:99999999999", "out of range"),
            ("postgres:http", "not a number"),
            ("::1:5432", "needs brackets"),
            ("[::1:5432", "closing"),
            ("[::g]:1", "not an IPv6"),
            ("[::1]5432", "port is missing"),
            ("udp://dns:53", "not supported"),
            ("pg_primary:5432", "not a valid host name"),
            ("-pg:5432", "not a valid host name"),
            ("api:80/health", "path needs"),
            ("http://user:pw@api/", "credentials"),
            ("http://", "not a valid URL"),
            ("postgres :5432", "spaces"),
        ];
        for (input, fragment) in cases {
            let err = WaitTarget::parse(input).expect_err(input).to_string();
            assert!(
                err.contains(fragment),
                "{input:?}: {err:?} lacks {fragment:?}"
            );
        }
    }
}
