//! The absolute URLs the REST documents and `Location` headers carry.
//!
//! spinnman 1!7.4.1 rewrites every URL it is given after the service root to `https` (keeping
//! host and port) and cannot use relative ones, so every reference is absolute and `https`
//! (the proxy `wss`), built from the host and port the request came in on. The layout is the
//! Java service's: servlet path `/spalloc`, REST root `/spalloc/srv/spalloc/`, websocket
//! proxy `/spalloc/proxy/{id}`.

use spinnbed_core::sched::JobId;

/// Path of the REST root (with its trailing slash).
pub const SERVICE_PATH: &str = "/spalloc/srv/spalloc/";
/// Path prefix of the websocket proxy (the job id follows).
pub const PROXY_PATH: &str = "/spalloc/proxy/";

/// Builds the URLs of one request's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// `host:port`, an IPv6 host in brackets.
    authority: String,
}

impl Urls {
    /// URLs on `host` (a name, an IPv4 address or an IPv6 address with or without brackets)
    /// and `port`, as the client reached the server.
    pub fn new(host: &str, port: u16) -> Urls {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Urls { authority }
    }

    /// URLs from a `Host` header (`host`, `host:port`, `[v6]`, `[v6]:port`), `default_port`
    /// when it names none. `None` for a header that is not a plain host and port (anything
    /// that could smuggle text into a `Location` header or a document).
    pub fn from_host_header(value: &str, default_port: u16) -> Option<Urls> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (h, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (h, port)
        } else {
            match value.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (value, None),
            }
        };
        if host.is_empty() || !host.chars().all(allowed) {
            return None;
        }
        let port = match port {
            None => default_port,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
        };
        Some(Urls::new(host, port))
    }

    /// `host:port` as the URLs name it.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The REST root: `https://HOST:PORT/spalloc/srv/spalloc/`.
    pub fn service(&self) -> String {
        format!("https://{}{SERVICE_PATH}", self.authority)
    }

    /// The job list (`jobs-ref`): `.../spalloc/srv/spalloc/jobs`.
    pub fn jobs(&self) -> String {
        format!("{}jobs", self.service())
    }

    /// The machine list (`machines-ref`).
    pub fn machines(&self) -> String {
        format!("{}machines", self.service())
    }

    /// One machine (its name percent-encoded).
    pub fn machine(&self, name: &str) -> String {
        format!("{}/{}", self.machines(), encode_segment(name))
    }

    /// One job: `.../jobs/{id}` (the `Location` of its creation).
    pub fn job(&self, id: JobId) -> String {
        format!("{}/{}", self.jobs(), id.0)
    }

    /// Where a job's keepalives go.
    pub fn keepalive(&self, id: JobId) -> String {
        format!("{}/keepalive", self.job(id))
    }

    /// A job's allocation.
    pub fn job_machine(&self, id: JobId) -> String {
        format!("{}/machine", self.job(id))
    }

    /// A job's chip lookup.
    pub fn chip(&self, id: JobId) -> String {
        format!("{}/chip", self.job(id))
    }

    /// A job's power control.
    pub fn power(&self, id: JobId) -> String {
        format!("{}/machine/power", self.job(id))
    }

    /// A job's websocket proxy: `wss://HOST:PORT/spalloc/proxy/{id}`.
    pub fn proxy(&self, id: JobId) -> String {
        format!("wss://{}{PROXY_PATH}{}", self.authority, id.0)
    }
}

/// A path segment with everything but RFC 3986's unreserved characters percent-encoded.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_is_absolute_and_secure() {
        let u = Urls::new("127.0.0.1", 18471);
        let base = "https://127.0.0.1:18471/spalloc/srv/spalloc/";
        assert_eq!(u.service(), base);
        assert_eq!(u.jobs(), format!("{base}jobs"));
        assert_eq!(u.machines(), format!("{base}machines"));
        assert_eq!(u.machine("emu"), format!("{base}machines/emu"));
        assert_eq!(u.job(JobId(7)), format!("{base}jobs/7"));
        assert_eq!(u.keepalive(JobId(7)), format!("{base}jobs/7/keepalive"));
        assert_eq!(u.job_machine(JobId(7)), format!("{base}jobs/7/machine"));
        assert_eq!(u.chip(JobId(7)), format!("{base}jobs/7/chip"));
        assert_eq!(u.power(JobId(7)), format!("{base}jobs/7/machine/power"));
        assert_eq!(u.proxy(JobId(7)), "wss://127.0.0.1:18471/spalloc/proxy/7");
    }

    #[test]
    fn odd_machine_names_and_ipv6_hosts() {
        let u = Urls::new("::1", 443);
        assert_eq!(u.authority(), "[::1]:443");
        assert_eq!(Urls::new("[::1]", 443), u);
        assert_eq!(
            u.machine("a b/c?é"),
            "https://[::1]:443/spalloc/srv/spalloc/machines/a%20b%2Fc%3F%C3%A9"
        );
    }

    #[test]
    fn host_headers_are_plain_hosts_and_ports_or_refused() {
        let ok = |h: &str, a: &str| assert_eq!(Urls::from_host_header(h, 8443).unwrap().authority(), a, "{h}");
        ok("127.0.0.1:18471", "127.0.0.1:18471");
        ok("localhost", "localhost:8443");
        ok("[::1]:9", "[::1]:9");
        ok("[::1]", "[::1]:8443");
        for bad in [
            "",
            ":80",
            "a b:80",
            "host:port",
            "host:",
            "host:99999",
            "evil\r\nX: y",
            "[::1",
            "[::1]x",
            "a/b",
            "a@b",
        ] {
            assert!(Urls::from_host_header(bad, 1).is_none(), "{bad:?}");
        }
    }
}
