//! The rules that keep browsers from being turned against a local platform:
//! which `Host` names a server without authentication answers, and which
//! `Origin`s may send it state-changing requests. [`crate::middleware::frame`]
//! applies them to every request of both listeners.

use std::net::IpAddr;

use axum::http::HeaderValue;

use crate::state::ApiSettings;

/// The host part of a `Host` header or URI authority (`name`, `name:port`,
/// `[v6]`, `[v6]:port`), lowercased, without a trailing dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` (from `host_name`) always means this machine: `localhost`
/// and its subdomains (RFC 6761: browsers resolve them to loopback without
/// asking DNS), and loopback IP literals. A DNS name an attacker controls can
/// be rebound to 127.0.0.1, but its `Host` header still carries the
/// attacker's name, which none of these is.
pub fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request for `host` (a `Host` header value) is served, given the
/// extra names in `allowed` (lowercase, no port): loopback names always,
/// and the allowed ones.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host);
    is_loopback_name(&name) || allowed.contains(&name)
}

/// The host name of a URL (`http://name:port/path` → `name`), if it has one.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let name = host_name(authority);
    (!name.is_empty()).then_some(name)
}

/// The origin of a URL (`http://name:port/path` → `http://name:port`).
fn url_origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

/// The `Host` names a server answers besides loopback ones, or `None` for
/// every name. Only a server without an API key that listens on a loopback
/// address is restricted: it has nothing else keeping a page whose DNS name
/// was rebound to 127.0.0.1 from reading and changing it. Its public URLs'
/// hosts and the names in `extra` (`RAT_ALLOWED_HOSTS`) are added.
pub fn allowed_hosts(
    authenticated: bool,
    listens_on_loopback: bool,
    public_urls: &[&str],
    extra: &[String],
) -> Option<Vec<String>> {
    if authenticated || !listens_on_loopback {
        return None;
    }
    let mut names: Vec<String> = public_urls.iter().filter_map(|url| url_host(url)).collect();
    names.extend(extra.iter().map(|name| host_name(name)).filter(|n| !n.is_empty()));
    names.sort();
    names.dedup();
    Some(names)
}

/// Whether a state-changing request from `origin` is let through: it is one
/// of the CORS origins, or the origin of the public URL (the portal served
/// behind the same address).
pub fn origin_trusted(origin: &HeaderValue, settings: &ApiSettings) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    let same = |allowed: &str| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin);
    settings
        .cors_origins
        .iter()
        .filter_map(|allowed| allowed.to_str().ok())
        .any(same)
        || url_origin(&settings.public_url).is_some_and(same)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_served_and_others_only_when_allowed() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "portal.localhost:3000",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(host_allowed(host, &[]), "{host}");
        }
        for host in [
            "evil.com",
            "evil.com:8080",
            "localhost.evil.com",
            "10.0.0.1:8080",
            "[::2]",
            "",
        ] {
            assert!(!host_allowed(host, &[]), "{host}");
        }
        assert!(host_allowed("rat.internal:8080", &["rat.internal".to_owned()]));
    }

    #[test]
    fn only_unauthenticated_loopback_servers_restrict_hosts() {
        assert_eq!(allowed_hosts(true, true, &[], &[]), None);
        assert_eq!(allowed_hosts(false, false, &[], &[]), None);
        assert_eq!(
            allowed_hosts(
                false,
                true,
                &["http://rat.example:8080/base", "http://127.0.0.1:8090"],
                &["Other.Example".to_owned()]
            ),
            Some(vec![
                "127.0.0.1".to_owned(),
                "other.example".to_owned(),
                "rat.example".to_owned()
            ])
        );
    }

    #[test]
    fn origins_are_trusted_when_configured_or_the_public_one() {
        let mut settings = ApiSettings::new("https://rat.example.com/");
        settings.cors_origins = vec![HeaderValue::from_static("http://localhost:3000")];
        for origin in [
            "http://localhost:3000",
            "https://rat.example.com",
            "HTTPS://RAT.EXAMPLE.COM",
        ] {
            assert!(origin_trusted(&HeaderValue::from_static(origin), &settings), "{origin}");
        }
        for origin in [
            "http://evil.com",
            "null",
            "http://localhost:3001",
            "https://rat.example.com.evil",
        ] {
            assert!(
                !origin_trusted(&HeaderValue::from_static(origin), &settings),
                "{origin}"
            );
        }
    }
}
