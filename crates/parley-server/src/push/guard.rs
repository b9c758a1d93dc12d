//! The SSRF guard: a push endpoint is a URL a user hands the server to
//! POST to, so unless `push_allow_insecure_endpoints` is set it must be
//! https and reach public addresses only. Checked at registration, and
//! again at every connection by the HTTP client's resolver (a name that
//! later resolves to an internal address is refused then: DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an endpoint was refused, for the client's error message.
pub type Refusal = String;

/// Whether `ip` is a public unicast address (not loopback, private,
/// link-local, shared, documentation, multicast or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: an IPv4 inside
                || s[..6] == [0; 6]) // IPv4-compatible, deprecated
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

/// Checks a Web Push endpoint: a URL of at most `max_bytes`, https (or
/// http when `insecure`), with a host and no credentials; unless
/// `insecure`, every address it resolves to is public.
pub async fn check_endpoint(
    endpoint: &str,
    max_bytes: usize,
    insecure: bool,
    timeout: Duration,
) -> Result<Url, Refusal> {
    if endpoint.len() > max_bytes {
        return Err(format!("endpoint is longer than {max_bytes} bytes"));
    }
    let url = Url::parse(endpoint).map_err(|e| format!("endpoint is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if insecure => {}
        _ => return Err("endpoint must be an https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("endpoint must not carry credentials".into());
    }
    let host = url
        .host_str()
        .ok_or_else(|| "endpoint has no host".to_owned())?;
    if insecure {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((host.trim_matches(['[', ']']), port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) | Err(_) => return Err("endpoint host does not resolve".into()),
    };
    if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
        return Err("endpoint must resolve to public addresses only".into());
    }
    Ok(url)
}

/// The HTTP client's resolver when endpoints must be public: names that
/// resolve to any non-public address are refused at connect time.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(format!("{} resolves to a non-public address", name.as_str()).into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether a URL's host is an IP literal that is not public (the resolver
/// does not see IP literals).
pub fn literal_is_internal(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn endpoints_must_be_https_and_public() {
        let t = Duration::from_secs(5);
        let check = |e: &'static str, insecure| check_endpoint(e, 2048, insecure, t);
        assert!(check("http://push.example/x", false).await.is_err());
        assert!(check("https://127.0.0.1/x", false).await.is_err());
        assert!(check("https://[::1]:8443/x", false).await.is_err());
        assert!(check("https://localhost/x", false).await.is_err());
        assert!(check("https://user:pw@8.8.8.8/x", false).await.is_err());
        assert!(check("ftp://8.8.8.8/x", true).await.is_err());
        assert!(check("not a url", true).await.is_err());
        assert!(check("https://8.8.8.8/x", false).await.is_ok());
        assert!(check("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(literal_is_internal(
            &Url::parse("https://10.0.0.1/").unwrap()
        ));
        assert!(!literal_is_internal(
            &Url::parse("https://8.8.8.8/").unwrap()
        ));
    }
}
