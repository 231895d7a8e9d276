//! What of an address may be recorded in the audit trail.

use url::Url;

/// `url` without what may carry a credential: the user name and password, the query and the
/// fragment (`https://user:pw@host/notify?token=x#y` becomes `https://host/notify`). The scheme,
/// host, port and path stay: they say where paygate calls out to, which is what an auditor needs.
pub fn address(url: &Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs that cannot have a user (e.g. `data:`), which then have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// [`address`] of a stored address; text that is not a URL is recorded as `null` rather than
/// risk recording a credential.
pub fn stored_address(text: &str) -> Option<String> {
    Url::parse(text).ok().map(|url| address(&url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_query_and_fragment_are_removed() {
        for (given, recorded) in [
            (
                "https://user:secret@dvc.hanoi.gov.vn:8443/paygate/notify?token=abc&x=1#frag",
                "https://dvc.hanoi.gov.vn:8443/paygate/notify",
            ),
            ("http://only-user@10.0.0.5/n", "http://10.0.0.5/n"),
            ("https://example.vn/n?", "https://example.vn/n"),
            ("https://example.vn", "https://example.vn/"),
            ("https://example.vn/a/b", "https://example.vn/a/b"),
        ] {
            assert_eq!(address(&Url::parse(given).unwrap()), recorded, "{given}");
        }
        assert_eq!(stored_address("not a url"), None);
    }
}
