//! Wait targets: `host:port`, `tcp://host:port`, `http://…`, `https://…`, with IPv6
//! literals in brackets. Shared by the annotation parser and the `wait` command so both
//! accept exactly the same language.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use url::Url;

/// A parsed wait target, normalized so that equal targets compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaitTarget {
    /// A TCP connect to `host:port`.
    Tcp { host: Host, port: u16 },
    /// An HTTP(S) GET that must answer 2xx.
    Http(HttpTarget),
}

/// An HTTP or HTTPS URL with a host and no credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpTarget {
    url: String,
    host: Host,
    port: u16,
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
    pub fn host(&self) -> &Host {
        &self.host
    }
    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl WaitTarget {
    /// Parses one target. The error says what is wrong, in words fit to follow the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the target is empty".to_owned());
        }
        if text.chars().any(char::is_whitespace) {
            return Err("a target cannot contain spaces".to_owned());
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
            return Err(format!(
                "the scheme {:?} is not supported (use tcp://, http:// or https://)",
                scheme.chars().take(20).collect::<String>()
            ));
        }
        let (host, port) = parse_host_port(text)?;
        Ok(WaitTarget::Tcp { host, port })
    }

    /// The words that name this target in a container name (`postgres-5432`).
    pub fn name_hint(&self) -> String {
        match self {
            WaitTarget::Tcp { host, port } => format!("{host}-{port}"),
            WaitTarget::Http(http) => {
                let rest = http.url.split_once("://").map_or("", |(_, rest)| rest);
                let scheme = if http.tls { "https" } else { "http" };
                format!("{scheme}-{rest}")
            }
        }
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

fn parse_http(text: &str) -> Result<HttpTarget, String> {
    let url = Url::parse(text).map_err(|err| format!("it is not a valid URL ({err})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "credentials do not belong in an annotation; remove the user:password@ part".to_owned(),
        );
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => Host::Name(check_dns_name(name)?),
        Some(url::Host::Ipv4(ip)) => Host::Ipv4(ip),
        Some(url::Host::Ipv6(ip)) => Host::Ipv6(ip),
        None => return Err("the URL has no host".to_owned()),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "the URL has no port".to_owned())?;
    if port == 0 {
        return Err("port 0 is not a port; expected 1 to 65535".to_owned());
    }
    let tls = url.scheme() == "https";
    let mut url = url;
    url.set_fragment(None);
    Ok(HttpTarget {
        url: url.into(),
        host,
        port,
        tls,
    })
}

fn parse_host_port(text: &str) -> Result<(Host, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| "the IPv6 address has no closing ']'".to_owned())?;
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| "the address in brackets is not an IPv6 address".to_owned())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "a port is missing; expected [ipv6]:port".to_owned())?;
        (Host::Ipv6(ip), port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| "a port is missing; expected host:port".to_owned())?;
        if host.contains(':') {
            return Err("an IPv6 address needs brackets, as in [::1]:5432".to_owned());
        }
        if host.contains('/') || port.contains('/') {
            return Err("a path needs an http:// or https:// URL".to_owned());
        }
        if host.is_empty() {
            return Err("the host is empty; expected host:port".to_owned());
        }
        let host = match host.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ipv4(ip),
            Err(_) => Host::Name(check_dns_name(host)?),
        };
        (host, port)
    };
    Ok((host, parse_port(port)?))
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("the port is empty; expected a number from 1 to 65535".to_owned());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port is not a number; expected 1 to 65535".to_owned());
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ if text.len() <= 10 => Err(format!("port {text} is out of range; expected 1 to 65535")),
        _ => Err("the port is out of range; expected 1 to 65535".to_owned()),
    }
}

/// Checks a DNS name (RFC 1123 labels, 253 characters at most, an optional final dot)
/// and returns it in lowercase.
fn check_dns_name(name: &str) -> Result<String, String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() || bare.len() > 253 {
        return Err("the host name is empty or longer than 253 characters".to_owned());
    }
    for label in bare.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(
                "the host is not a valid host name (dot-separated labels of letters, digits and '-', at most 63 characters each)"
                    .to_owned(),
            );
        }
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_form() {
        let cases = [
            ("postgres:5432", "postgres:5432", "postgres-5432"),
            ("tcp://redis:6379", "redis:6379", "redis-6379"),
            ("DB.Example.COM:1", "db.example.com:1", "db.example.com-1"),
            ("10.0.0.7:80", "10.0.0.7:80", "10.0.0.7-80"),
            ("[::1]:5432", "[::1]:5432", "[::1]-5432"),
            (
                "tcp://[fe80::1]:65535",
                "[fe80::1]:65535",
                "[fe80::1]-65535",
            ),
            (
                "http://api:8080/healthz",
                "http://api:8080/healthz",
                "http-api:8080/healthz",
            ),
            (
                "https://vault.vault.svc:8200/v1/sys/health",
                "https://vault.vault.svc:8200/v1/sys/health",
                "https-vault.vault.svc:8200/v1/sys/health",
            ),
            ("http://api", "http://api/", "http-api/"),
            (
                "http://[::1]:9000/x#frag",
                "http://[::1]:9000/x",
                "http-[::1]:9000/x",
            ),
        ];
        for (input, display, hint) in cases {
            let target = WaitTarget::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(target.to_string(), display, "{input}");
            assert_eq!(target.name_hint(), hint, "{input}");
        }
    }

    #[test]
    fn ports_and_schemes() {
        let WaitTarget::Http(http) = WaitTarget::parse("https://vault").unwrap() else {
            panic!("not http")
        };
        assert_eq!((http.port(), http.is_tls()), (443, true));
        let WaitTarget::Http(http) = WaitTarget::parse("http://api:81").unwrap() else {
            panic!("not http")
        };
        assert_eq!((http.port(), http.is_tls()), (81, false));
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
            let err = WaitTarget::parse(input).expect_err(input);
            assert!(
                err.contains(fragment),
                "{input:?}: {err:?} lacks {fragment:?}"
            );
        }
    }
}
