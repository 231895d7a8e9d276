//! Outgoing HTTP for notification delivery: a client that goes straight to the receiver and a
//! name resolution that refuses forbidden addresses.
//!
//! The check happens on the addresses the connection will actually use (not on a separate
//! lookup before it), so a name cannot resolve to a public address when checked and to a
//! private one when connected (DNS rebinding). A name is refused as soon as one of its
//! addresses is refused, so which of its addresses a connection picks never matters.
//!
//! The client ignores `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and their lower-case forms: a
//! proxy resolves and connects by itself, past this resolver, so honouring one would let a
//! notification reach any address the proxy can.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::admin::notify_url;

/// A client builder for requests to agencies and other outside receivers: no proxy, every
/// address vetted by [`GuardedResolver`], no redirects (a redirect could lead anywhere, and a
/// receiver answers at its own URL). Callers add their timeouts and user agent.
pub fn outgoing_client(allow_private: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
}

#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

/// The addresses of `host` if every one is allowed, or why not.
fn vet(host: &str, found: Vec<SocketAddr>, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    if found.is_empty() {
        return Err(format!("{host} has no address"));
    }
    for addr in &found {
        if let Err(reason) = notify_url::classify(addr.ip(), allow_private) {
            return Err(format!(
                "{host} resolves to {}, refused: {reason}",
                addr.ip()
            ));
        }
    }
    Ok(found)
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = vet(&host, found, allow_private)
                .map_err(|reason| -> Box<dyn std::error::Error + Send + Sync> { reason.into() })?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn a_name_with_only_public_addresses_is_resolved() {
        let found = addrs(&["14.160.0.1", "2405:4800::1"]);
        assert_eq!(vet("dvc.example.vn", found.clone(), false), Ok(found));
    }

    #[test]
    fn one_refused_address_refuses_the_whole_name() {
        for (list, allow_private) in [
            (&["14.160.0.1", "10.0.0.5"][..], false),
            (&["2405:4800::1", "::ffff:127.0.0.1"][..], false),
            (&["14.160.0.1", "169.254.169.254"][..], true),
            (&["64:ff9b::a9fe:a9fe"][..], true),
            (&[][..], true),
        ] {
            let result = vet("rebind.example", addrs(list), allow_private);
            assert!(result.is_err(), "{list:?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn localhost_resolves_only_when_private_addresses_are_allowed() {
        let name = || Name::from_str("localhost").unwrap();
        let refused = GuardedResolver {
            allow_private: false,
        }
        .resolve(name())
        .await;
        let err = refused.err().expect("loopback is refused").to_string();
        assert!(err.contains("private"), "{err}");
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve(name())
        .await
        .expect("loopback is allowed with the switch");
        assert!(allowed.into_iter().all(|addr| addr.ip().is_loopback()));
    }
}
