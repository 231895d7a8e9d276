//! Connection settings: where the database is and who connects (a [`tokio_postgres::Config`]),
//! and how the channel to it is protected (TLS through rustls).
//!
//! `DATABASE_URL` follows libpq. tokio-postgres parses the URL itself but knows only `sslmode`
//! `disable`, `prefer` and `require`, never verifies a certificate and cannot read a CA file, so
//! `sslmode` and `sslrootcert` are taken out of the URL here and the rest is left to it:
//!
//! | `sslmode` | channel | certificate |
//! | --- | --- | --- |
//! | `disable` | plain | - |
//! | `prefer` (the default) | TLS when the server offers it, else plain | not checked, unless a CA file is given |
//! | `require` | TLS or no connection | not checked, unless a CA file is given (then as `verify-ca`) |
//! | `verify-ca` | TLS or no connection | chain checked against the CA file |
//! | `verify-full` | TLS or no connection | chain checked against the CA file, and the server's name |
//!
//! The CA file is `sslrootcert`; without it, `~/.postgresql/root.crt` when that file exists (as
//! libpq does), and `verify-ca` or `verify-full` without either is a configuration error.
//! `sslrootcert=system` trusts the public certificate authorities (the Mozilla set compiled into
//! the binary) and, as in libpq, implies and requires `verify-full`: a public authority vouches
//! only for names, so checking the chain alone would accept anyone's certificate.
//!
//! A connection over a Unix socket never uses TLS (PostgreSQL offers none there); the file
//! permissions of the socket protect it.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Which certificates the client accepts, once `sslmode` and `sslrootcert` are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Any certificate: the channel is encrypted but the server is not authenticated.
    None,
    /// A chain to one of the trusted authorities, for any name.
    Chain,
    /// A chain to one of the trusted authorities, for the host name connected to.
    ChainAndName,
}

/// A `DATABASE_URL` that cannot be used. The messages never repeat the URL, which may hold a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("sslmode must be disable, prefer, require, verify-ca or verify-full")]
    SslMode,
    #[error("sslmode={0} needs sslrootcert (a PEM file of the certificate authorities to trust, or `system`), and ~/.postgresql/root.crt does not exist")]
    NoRootCertificate(&'static str),
    #[error("sslrootcert=system checks names, so it needs sslmode=verify-full (not {0})")]
    SystemNeedsVerifyFull(&'static str),
    #[error("cannot read sslrootcert {path}: {reason}")]
    RootCertificate { path: PathBuf, reason: String },
}

/// Where to connect, as whom, and how the channel is protected.
#[derive(Clone)]
pub struct Settings {
    /// Host, port, user, password, database and the other options tokio-postgres understands.
    /// Its own `ssl_mode` is ignored: [`Settings::ssl_mode`] decides.
    pub config: tokio_postgres::Config,
    ssl_mode: SslMode,
    verification: Verification,
    connector: Connector,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio-postgres's own Debug redacts the password.
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("ssl_mode", &self.ssl_mode)
            .field("verification", &self.verification)
            .finish()
    }
}

impl FromStr for Settings {
    type Err = SettingsError;

    /// Parses a libpq connection URL (`postgresql://...`) or keyword/value string
    /// (`host=... sslmode=verify-full`).
    fn from_str(url: &str) -> Result<Settings, SettingsError> {
        Settings::parse(url, std::env::var_os("HOME").as_deref().map(Path::new))
    }
}

impl Settings {
    /// [`Settings::from_str`] with the home directory given, where libpq's default CA file
    /// `.postgresql/root.crt` is looked for.
    fn parse(url: &str, home: Option<&Path>) -> Result<Settings, SettingsError> {
        let (rest, options) = take_tls_options(url);
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(SettingsError::Url)?;
        let mode = match options.sslmode.as_deref() {
            Some(value) => Some(SslMode::parse(value).ok_or(SettingsError::SslMode)?),
            None => None,
        };
        let rootcert = options.sslrootcert.filter(|value| !value.is_empty());
        let (ssl_mode, verification, roots) = match rootcert.as_deref() {
            Some("system") => {
                let mode = mode.unwrap_or(SslMode::VerifyFull);
                if mode != SslMode::VerifyFull {
                    return Err(SettingsError::SystemNeedsVerifyFull(mode.as_str()));
                }
                let roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                (mode, Verification::ChainAndName, Some(roots))
            }
            Some(path) => {
                let mode = mode.unwrap_or(SslMode::Prefer);
                let roots = read_roots(Path::new(path))?;
                (mode, verification_with_roots(mode), Some(roots))
            }
            None => {
                let mode = mode.unwrap_or(SslMode::Prefer);
                match (default_root_file(home), mode) {
                    (_, SslMode::Disable) => (mode, Verification::None, None),
                    (Some(path), _) => (
                        mode,
                        verification_with_roots(mode),
                        Some(read_roots(&path)?),
                    ),
                    (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
                        return Err(SettingsError::NoRootCertificate(mode.as_str()))
                    }
                    (None, _) => (mode, Verification::None, None),
                }
            }
        };
        // The mode given to tokio-postgres only says whether to ask for TLS and whether its
        // absence is fatal; what is verified is the connector's business.
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(Settings {
            config,
            ssl_mode,
            verification,
            connector: Connector::new(verification, roots),
        })
    }
}

/// A plain tokio-postgres configuration connects with its own `sslmode` (disable, prefer or
/// require) and verifies no certificate, as libpq does without a CA file.
impl From<tokio_postgres::Config> for Settings {
    fn from(config: tokio_postgres::Config) -> Settings {
        let ssl_mode = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Settings {
            config,
            ssl_mode,
            verification: Verification::None,
            connector: Connector::new(Verification::None, None),
        }
    }
}

impl From<&tokio_postgres::Config> for Settings {
    fn from(config: &tokio_postgres::Config) -> Settings {
        Settings::from(config.clone())
    }
}

impl From<&Settings> for Settings {
    fn from(settings: &Settings) -> Settings {
        settings.clone()
    }
}

impl Settings {
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    pub fn verification(&self) -> Verification {
        self.verification
    }

    /// The tokio-postgres configuration to connect with: TLS is never asked for when every host
    /// is a Unix socket, where PostgreSQL offers none.
    pub fn effective_config(&self) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        let hosts = config.get_hosts();
        if !hosts.is_empty() && hosts.iter().all(|host| matches!(host, Host::Unix(_))) {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        config
    }

    /// The TLS connector that enforces this configuration's verification.
    pub fn connector(&self) -> Connector {
        self.connector.clone()
    }

    /// One connection, with its I/O driven by a spawned task (for migrations and tools; the
    /// service uses the pool).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.effective_config().connect(self.connector()).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a database connection ended with an error");
            }
        });
        Ok(client)
    }
}

fn verification_with_roots(mode: SslMode) -> Verification {
    match mode {
        SslMode::Disable => Verification::None,
        SslMode::VerifyFull => Verification::ChainAndName,
        // libpq checks the chain whenever it has a CA file, even in prefer and require.
        SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => Verification::Chain,
    }
}

/// libpq's default CA file, `~/.postgresql/root.crt`, when it exists.
fn default_root_file(home: Option<&Path>) -> Option<PathBuf> {
    let path = home?.join(".postgresql/root.crt");
    path.is_file().then_some(path)
}

fn read_roots(path: &Path) -> Result<RootCertStore, SettingsError> {
    let unreadable = |reason: String| SettingsError::RootCertificate {
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let certificates =
        CertificateDer::pem_file_iter(path).map_err(|err| unreadable(err.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|err| unreadable(err.to_string()))?;
        roots
            .add(certificate)
            .map_err(|err| unreadable(format!("not a usable CA certificate ({err})")))?;
    }
    if roots.is_empty() {
        return Err(unreadable("no PEM certificate in it".to_owned()));
    }
    Ok(roots)
}

/// The pieces of a connection string that tokio-postgres does not understand.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsOptions {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

/// Splits `sslmode` and `sslrootcert` off a URL or keyword/value string; the rest is returned
/// unchanged for tokio-postgres. A later occurrence of a key wins, as in libpq.
fn take_tls_options(url: &str) -> (String, TlsOptions) {
    let mut options = TlsOptions::default();
    let mut keep = |key: &str, value: String| -> bool {
        match key {
            "sslmode" => options.sslmode = Some(value),
            "sslrootcert" => options.sslrootcert = Some(value),
            _ => return true,
        }
        false
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), options);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let key = percent_decode(key);
                !TLS_KEYS.contains(&key.as_str()) || keep(&key, percent_decode(value))
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, options);
    }
    let mut rest = String::with_capacity(url.len());
    for (key, value, text) in keyword_pairs(url) {
        if key.as_deref().is_some_and(|key| TLS_KEYS.contains(&key)) {
            keep(key.as_deref().unwrap_or_default(), value);
        } else {
            rest.push_str(text);
            rest.push(' ');
        }
    }
    (rest.trim_end().to_owned(), options)
}

/// The `key = value` pairs of a libpq keyword/value string, each with its original text.
/// Values may be single-quoted; a backslash escapes the next character. Text that is not a
/// pair is passed through (with no key) for tokio-postgres to report.
fn keyword_pairs(text: &str) -> Vec<(Option<String>, String, &str)> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_owned();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() || bytes[i] != b'=' {
            pairs.push((None, String::new(), &text[start..i]));
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        let quoted = i < bytes.len() && bytes[i] == b'\'';
        if quoted {
            i += 1;
        }
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if i + 1 < bytes.len() => {
                    value.push(bytes[i + 1]);
                    i += 2;
                    continue;
                }
                b'\'' if quoted => {
                    i += 1;
                    break;
                }
                byte if !quoted && byte.is_ascii_whitespace() => break,
                byte => value.push(byte),
            }
            i += 1;
        }
        pairs.push((
            Some(key),
            String::from_utf8_lossy(&value).into_owned(),
            &text[start..i],
        ));
    }
    pairs
}

fn percent_decode(text: &str) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The TLS connector of every database connection paygate makes (pool, migrations, command
/// line): rustls with the verification [`Settings`] chose.
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
}

impl Connector {
    fn new(verification: Verification, roots: Option<RootCertStore>) -> Connector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions");
        let roots = Arc::new(roots.unwrap_or_else(RootCertStore::empty));
        let config = match verification {
            Verification::ChainAndName => {
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Verification::Chain | Verification::None => {
                let chain = (verification == Verification::Chain).then(|| {
                    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .expect("a non-empty root store builds a verifier")
                });
                let verifier = LaxVerifier {
                    chain,
                    algorithms: provider.signature_verification_algorithms,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth()
            }
        };
        Connector {
            inner: MakeRustlsConnect::new(config),
        }
    }
}

type RustlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
type BoxError = Box<dyn StdError + Send + Sync>;

impl MakeTlsConnect<Socket> for Connector {
    type Stream = RustlsStream;
    type TlsConnect = MaybeTls;
    type Error = BoxError;

    fn make_tls_connect(&mut self, host: &str) -> Result<MaybeTls, BoxError> {
        // tokio-postgres names no host for a Unix socket, which never carries TLS.
        if host.is_empty() {
            return Ok(MaybeTls(None));
        }
        let connect = MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, host)?;
        Ok(MaybeTls(Some(connect)))
    }
}

/// A TLS handshake to a named host, or none for a Unix socket.
pub struct MaybeTls(Option<RustlsConnect>);

impl TlsConnect<Socket> for MaybeTls {
    type Stream = RustlsStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, BoxError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        match self.0 {
            Some(connect) => {
                Box::pin(async move { connect.connect(stream).await.map_err(Into::into) })
            }
            None => Box::pin(async { Err("TLS over a Unix socket is not supported".into()) }),
        }
    }
}

/// The verifier of `verify-ca` and of `prefer` and `require` without a CA file. Either way the
/// handshake's signatures are checked, so the channel is encrypted to whoever holds the
/// certificate's key.
#[derive(Debug)]
struct LaxVerifier {
    /// `verify-ca`: the chain must lead to a trusted authority; the name in the certificate is
    /// not compared with the host. `None` (`prefer`, `require`): any certificate, as libpq does,
    /// so who holds the key stays unproven.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// The provider's algorithms, the same ones the chain's verifier uses.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LaxVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The web PKI verifier checks the chain first and the name last, so a name error means
        // the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Settings {
        Settings::from_str(url).unwrap_or_else(|err| panic!("{url}: {err}"))
    }

    /// A CA certificate (EC P-256, valid for a century) made once with the openssl command line;
    /// only its shape matters here: the handshakes are tested against a real server in
    /// tests/database.rs.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBpDCCAUugAwIBAgIUGsxesTzZMW6LnpMRnq7BV3k6tOswCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUcGF5Z2F0ZSB1bml0LXRlc3QgQ0EwIBcNMjYxMjAyMTMxMTM0
WhgPMjEyNjExMDgxMzExMzRaMB8xHTAbBgNVBAMMFHBheWdhdGUgdW5pdC10ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+/lEb6yGv3bp/mJKCF4ToUVD
zHKXaOZo6W+mpfihzpC19Cq6zBoipcAIHvFUfABsghtX+8tB5lPcEZJtRKJBGqNj
MGEwHQYDVR0OBBYEFDwBIKq3+0G6Q4Si7cC5F4Z21K8yMB8GA1UdIwQYMBaAFDwB
IKq3+0G6Q4Si7cC5F4Z21K8yMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQD
AgEGMAoGCCqGSM49BAMCA0cAMEQCIBVWYrYD99lhBpJK2M5RkvSPLbV2MIBh2i8S
YhOodKUwAiAr8kU2LbU+PlFnrJD/q6Li44FRYHuYkKgWnDtWDeZuVg==
-----END CERTIFICATE-----
";

    fn ca_file() -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, TEST_CA_PEM.as_bytes()).unwrap();
        file
    }

    #[test]
    fn every_libpq_sslmode_without_a_ca_file_is_accepted_and_taken_out_of_the_url() {
        use tokio_postgres::config::SslMode as Wire;
        let cases = [
            ("disable", SslMode::Disable, Wire::Disable),
            ("prefer", SslMode::Prefer, Wire::Prefer),
            ("require", SslMode::Require, Wire::Require),
        ];
        for (value, mode, wire) in cases {
            let settings = parse(&format!(
                "postgresql://u:p@db.internal:5433/paygate?sslmode={value}&application_name=x"
            ));
            assert_eq!(settings.ssl_mode(), mode);
            assert_eq!(settings.verification(), Verification::None);
            assert_eq!(settings.config.get_ssl_mode(), wire);
            assert_eq!(settings.config.get_application_name(), Some("x"));
            assert_eq!(settings.config.get_ports(), &[5433]);
            assert_eq!(settings.config.get_password(), Some(&b"p"[..]));
        }
    }

    #[test]
    fn verify_modes_check_the_chain_and_verify_full_the_name_too() {
        let ca = ca_file();
        let path = ca.path().display().to_string();
        let cases = [
            (
                "verify-full",
                SslMode::VerifyFull,
                Verification::ChainAndName,
            ),
            ("verify-ca", SslMode::VerifyCa, Verification::Chain),
            // As in libpq, a CA file makes require (and prefer) check the chain.
            ("require", SslMode::Require, Verification::Chain),
            ("prefer", SslMode::Prefer, Verification::Chain),
            ("disable", SslMode::Disable, Verification::None),
        ];
        for (value, mode, verification) in cases {
            let url = format!(
                "postgresql://u@db.internal/paygate?sslrootcert={}&sslmode={value}",
                path.replace('/', "%2F")
            );
            let settings = parse(&url);
            assert_eq!(settings.ssl_mode(), mode, "{value}");
            assert_eq!(settings.verification(), verification, "{value}");
            assert_eq!(settings.config.get_dbname(), Some("paygate"));
        }
    }

    #[test]
    fn the_keyword_value_form_is_understood_too() {
        let ca = ca_file();
        let settings = parse(&format!(
            "host=db.internal user=paygate_service sslmode = verify-full sslrootcert='{}' \
             application_name='pay gate'",
            ca.path().display()
        ));
        assert_eq!(settings.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(settings.verification(), Verification::ChainAndName);
        assert_eq!(settings.config.get_user(), Some("paygate_service"));
        assert_eq!(settings.config.get_application_name(), Some("pay gate"));
    }

    #[test]
    fn sslrootcert_system_trusts_the_public_authorities_and_needs_verify_full() {
        let settings = parse("postgresql://u@db.example.com/paygate?sslrootcert=system");
        assert_eq!(settings.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(settings.verification(), Verification::ChainAndName);
        let err = Settings::from_str(
            "postgresql://u@db.example.com/paygate?sslrootcert=system&sslmode=verify-ca",
        )
        .unwrap_err();
        assert!(
            matches!(err, SettingsError::SystemNeedsVerifyFull("verify-ca")),
            "{err}"
        );
    }

    #[test]
    fn unusable_tls_options_are_refused_without_repeating_the_url() {
        let ca = ca_file();
        let not_a_certificate = tempfile::NamedTempFile::new().unwrap();
        let cases = [
            "postgresql://u:hunter2@db/paygate?sslmode=verify-everything".to_owned(),
            "postgresql://u:hunter2@db/paygate?sslmode=VERIFY-FULL".to_owned(),
            "postgresql://u:hunter2@db/paygate?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"
                .to_owned(),
            format!(
                "postgresql://u:hunter2@db/paygate?sslmode=verify-full&sslrootcert={}",
                not_a_certificate.path().display()
            ),
            format!(
                "postgresql://u:hunter2@db:port/paygate?sslmode=verify-full&sslrootcert={}",
                ca.path().display()
            ),
        ];
        for url in cases {
            let err = Settings::from_str(&url).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn verify_modes_without_any_ca_file_are_refused() {
        let home = tempfile::tempdir().unwrap();
        let results = ["verify-ca", "verify-full"].map(|mode| {
            Settings::parse(
                &format!("postgresql://u@db/paygate?sslmode={mode}"),
                Some(home.path()),
            )
        });
        for result in results {
            assert!(
                matches!(result, Err(SettingsError::NoRootCertificate(_))),
                "{result:?}"
            );
        }
    }

    #[test]
    fn the_default_ca_file_in_the_home_directory_is_used_as_libpq_does() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(home.path().join(".postgresql/root.crt"), TEST_CA_PEM).unwrap();
        let settings = Settings::parse(
            "postgresql://u@db/paygate?sslmode=verify-full",
            Some(home.path()),
        )
        .unwrap();
        assert_eq!(settings.verification(), Verification::ChainAndName);
        let settings = Settings::parse("postgresql://u@db/paygate", Some(home.path())).unwrap();
        assert_eq!(settings.ssl_mode(), SslMode::Prefer);
        assert_eq!(settings.verification(), Verification::Chain);
    }

    #[test]
    fn a_url_of_unix_sockets_never_asks_for_tls() {
        let settings = parse("postgresql:///paygate?host=/run/postgresql&sslmode=require");
        assert_eq!(settings.ssl_mode(), SslMode::Require);
        assert_eq!(
            settings.effective_config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        let tcp = parse("postgresql://db.internal/paygate?sslmode=require");
        assert_eq!(
            tcp.effective_config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn tls_options_are_split_off_exactly() {
        let (rest, options) = take_tls_options(
            "postgres://h/db?sslmode=verify-ca&connect_timeout=5&sslrootcert=%2Fca%20x.crt",
        );
        assert_eq!(rest, "postgres://h/db?connect_timeout=5");
        assert_eq!(options.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(options.sslrootcert.as_deref(), Some("/ca x.crt"));
        let (rest, options) = take_tls_options("postgres://h/db?sslmode=disable");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(options.sslmode.as_deref(), Some("disable"));
        let (rest, options) = take_tls_options(r"host=h password='it\'s' sslrootcert='/a b\\c'");
        assert_eq!(rest, r"host=h password='it\'s'");
        assert_eq!(options.sslrootcert.as_deref(), Some(r"/a b\c"));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }
}
