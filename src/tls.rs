//! TLS configurations and certificate identity (T5, T7, T8, E3).
//!
//! The link between `accord connect` and the agent is TLS 1.3 only, with a
//! client certificate required and verified against the hospital's technician
//! CA. The technician's identity shown to the clinician and written to the
//! audit log comes from that verified certificate and nothing else: names
//! typed by the technician are never identity.

use crate::policy::AllowEntry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// What can go wrong while building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read certificates: {detail}")]
    Certs { path: String, detail: String },
    #[error("{path}: no certificate found (expected PEM \"BEGIN CERTIFICATE\")")]
    NoCert { path: String },
    #[error("{path}: cannot read the private key: {detail}")]
    Key { path: String, detail: String },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
    #[error("{path}: cannot use the revocation list: {detail}")]
    Crl { path: String, detail: String },
    #[error("certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot generate certificates: {0}")]
    Generate(String),
}

/// The technician as proven by their certificate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// RFC 4514 style, most specific first: `CN=Jeanne Martin,O=Helpdesk CHU`.
    pub subject: String,
    /// `sha256:<hex>` of the certificate's DER bytes.
    pub fingerprint: String,
    #[serde(skip)]
    pub common_name: Option<String>,
    #[serde(skip)]
    pub organization: Option<String>,
}

impl Identity {
    /// The first 8 bytes of the fingerprint, grouped, for a human to read aloud.
    pub fn short_fingerprint(&self) -> String {
        let hex = self.fingerprint.trim_start_matches("sha256:");
        hex.as_bytes()
            .chunks(4)
            .take(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A display name: the CN, or the whole subject if it has none.
    pub fn display_name(&self) -> &str {
        self.common_name.as_deref().unwrap_or(&self.subject)
    }

    /// Whether the allow-list admits this technician (empty list = any).
    pub fn allowed_by(&self, allow: &[AllowEntry]) -> bool {
        allow.is_empty()
            || allow.iter().any(|a| match a {
                AllowEntry::Fingerprint(f) => *f == self.fingerprint,
                AllowEntry::Subject(s) => *s == self.subject,
            })
    }
}

/// `sha256:<hex>` of DER bytes.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Escapes a DN value for display (RFC 4514 specials, and every control or
/// bidi character as `\XX` hex so a CA-issued name cannot reorder the prompt).
fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if crate::protocol::forbidden_char(c) {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("\\{byte:02X}"));
            }
        } else if special {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Extracts the identity from a (verified) certificate.
pub fn identity_of(der: &CertificateDer<'_>) -> Result<Identity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| TlsError::Parse(e.to_string()))?;
    let mut parts = Vec::new();
    let mut common_name = None;
    let mut organization = None;
    let registry = x509_parser::objects::oid_registry();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let name = x509_parser::objects::oid2abbrev(oid, registry)
                .map(str::to_string)
                .unwrap_or_else(|_| oid.to_id_string());
            let value = attr
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| format!("#{}", hex::encode(attr.attr_value().data)));
            let shown = escape_dn_value(&value);
            if name == "CN" && common_name.is_none() {
                common_name = Some(shown.clone());
            }
            if name == "O" && organization.is_none() {
                organization = Some(shown.clone());
            }
            parts.push(format!("{name}={shown}"));
        }
    }
    parts.reverse();
    Ok(Identity {
        subject: parts.join(","),
        fingerprint: fingerprint(der.as_ref()),
        common_name,
        organization,
    })
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Certs {
            path: shown.clone(),
            detail: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certs {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert { path: shown });
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots
            .add(c)
            .map_err(|e| TlsError::Config(format!("{}: {e}", ca.display())))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The agent's server configuration: TLS 1.3 only, client certificate
/// required and chained to `ca` (the allow-list is checked after the
/// handshake, on the verified identity).
pub fn server_config(cert: &Path, key: &Path, ca: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_crl(cert, key, ca, None)
}

/// [`server_config`] with the technicians' revocation list. Revocation is
/// checked on the technician's own certificate (the one a leaked key would
/// be); a CRL that does not cover its issuer does not refuse it.
/// Session resumption is off: a resumed TLS session would skip the
/// certificate checks, including revocation.
pub fn server_config_with_crl(
    cert: &Path,
    key: &Path,
    ca: &Path,
    crl: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
    if let Some(crl) = crl {
        builder = builder
            .with_crls(load_crls(crl)?)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    let verifier = builder
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| TlsError::Config(format!("{}: {e}", cert.display())))?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Reads a revocation list, PEM (`BEGIN X509 CRL`, possibly several) or DER.
pub fn load_crls(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, TlsError> {
    use rustls::pki_types::CertificateRevocationListDer;
    let err = |detail: String| TlsError::Crl {
        path: path.display().to_string(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let is_pem = bytes.windows(10).any(|w| w == b"-----BEGIN");
    let crls: Vec<_> = if is_pem {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if crls.is_empty() {
        return Err(err(
            "no CRL found (expected PEM \"BEGIN X509 CRL\" or DER)".into()
        ));
    }
    // Parse now, so a damaged file is reported here and not at the first
    // technician's handshake.
    for c in &crls {
        <x509_parser::revocation_list::CertificateRevocationList as x509_parser::prelude::FromDer<_>>::from_der(c.as_ref())
            .map_err(|e| err(format!("not a CRL: {e}")))?;
    }
    Ok(crls)
}

/// The agent's TLS configuration, rebuilt when the revocation list changes
/// on disk (IT drops a new CRL; no restart needed). If the new file cannot
/// be used, the last good configuration stays (its revocations still apply)
/// and the error is logged once per change.
pub struct ServerTls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca: std::path::PathBuf,
    crl: Option<std::path::PathBuf>,
    current: std::sync::Mutex<(Option<FileStamp>, Arc<ServerConfig>)>,
}

/// What tells a changed file: modification time and length.
type FileStamp = (std::time::SystemTime, u64);

fn stamp(p: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl ServerTls {
    /// Loads everything once; any error here means the agent does not listen.
    pub fn load(
        cert: &Path,
        key: &Path,
        ca: &Path,
        crl: Option<&Path>,
    ) -> Result<ServerTls, TlsError> {
        let st = crl.and_then(stamp);
        let cfg = server_config_with_crl(cert, key, ca, crl)?;
        Ok(ServerTls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ca: ca.to_path_buf(),
            crl: crl.map(Path::to_path_buf),
            current: std::sync::Mutex::new((st, cfg)),
        })
    }

    /// The configuration for the next connection (re-reads a changed CRL).
    pub fn config(&self) -> Arc<ServerConfig> {
        // The data stays consistent even if a holder panicked.
        let mut cur = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(crl) = &self.crl {
            let now = stamp(crl);
            if now != cur.0 {
                cur.0 = now;
                match server_config_with_crl(&self.cert, &self.key, &self.ca, Some(crl)) {
                    Ok(c) => {
                        tracing::info!("revocation list {} reloaded", crl.display());
                        cur.1 = c;
                    }
                    Err(e) => tracing::error!("{e}; keeping the previous revocation list"),
                }
            }
        }
        cur.1.clone()
    }
}

/// The technician's client configuration: TLS 1.3 only, the agent verified
/// against `ca`, the technician's certificate presented.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| TlsError::Config(format!("{}: {e}", cert.display())))?;
    Ok(Arc::new(config))
}

pub mod demo {
    //! A throw-away PKI for trying Accord out (`accord pki demo DIR`). Never
    //! used implicitly: a real install has no self-signed fallback.

    use super::TlsError;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };
    use std::path::{Path, PathBuf};

    /// Paths written by [`write`].
    #[derive(Debug, Clone)]
    pub struct DemoPki {
        pub dir: PathBuf,
        pub ca: PathBuf,
        pub agent_cert: PathBuf,
        pub agent_key: PathBuf,
        pub technician_cert: PathBuf,
        pub technician_key: PathBuf,
        pub policy: PathBuf,
    }

    fn rc_err(e: rcgen::Error) -> TlsError {
        TlsError::Generate(e.to_string())
    }

    /// A certificate and its key, in PEM.
    pub struct Pem {
        pub cert: String,
        pub key: String,
    }

    /// A CA able to sign leaf certificates (tests use it for "another CA",
    /// expired certificates and so on).
    pub struct Ca {
        pub pem: Pem,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Ca {
        pub fn new(name: &str) -> Result<Ca, TlsError> {
            Self::build(name, None)
        }

        /// A CA whose own certificate expired yesterday (for checks that
        /// must notice it).
        pub fn expired(name: &str) -> Result<Ca, TlsError> {
            let now = time::OffsetDateTime::now_utc();
            Self::build(
                name,
                Some((
                    now - time::Duration::days(400),
                    now - time::Duration::days(1),
                )),
            )
        }

        fn build(
            name: &str,
            validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
        ) -> Result<Ca, TlsError> {
            let key = KeyPair::generate().map_err(rc_err)?;
            let mut p = CertificateParams::new(Vec::<String>::new()).map_err(rc_err)?;
            if let Some((from, to)) = validity {
                p.not_before = from;
                p.not_after = to;
            }
            p.distinguished_name = DistinguishedName::new();
            p.distinguished_name
                .push(DnType::OrganizationName, "Accord demo");
            p.distinguished_name.push(DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = p.self_signed(&key).map_err(rc_err)?;
            let pem = Pem {
                cert: cert.pem(),
                key: key.serialize_pem(),
            };
            Ok(Ca {
                pem,
                issuer: Issuer::new(p, key),
            })
        }

        /// A leaf certificate. `server` = agent (SANs localhost, 127.0.0.1,
        /// ::1); otherwise a technician client certificate. `valid_days`
        /// negative makes an expired one.
        pub fn leaf(
            &self,
            cn: &str,
            org: &str,
            server: bool,
            valid_days: i64,
        ) -> Result<Pem, TlsError> {
            let key = KeyPair::generate().map_err(rc_err)?;
            let sans = if server {
                vec!["localhost".to_string()]
            } else {
                Vec::new()
            };
            let mut p = CertificateParams::new(sans).map_err(rc_err)?;
            if server {
                p.subject_alt_names
                    .push(SanType::IpAddress([127, 0, 0, 1].into()));
                p.subject_alt_names
                    .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
            }
            // Conventional DER order (O before CN), shown most specific first.
            // rcgen's default name already holds a CN: start from empty.
            p.distinguished_name = DistinguishedName::new();
            p.distinguished_name.push(DnType::OrganizationName, org);
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let now = time::OffsetDateTime::now_utc();
            if valid_days < 0 {
                p.not_before = now - time::Duration::days(30);
                p.not_after = now - time::Duration::days(1);
            } else {
                p.not_before = now - time::Duration::hours(1);
                p.not_after = now + time::Duration::days(valid_days);
            }
            let cert = p.signed_by(&key, &self.issuer).map_err(rc_err)?;
            Ok(Pem {
                cert: cert.pem(),
                key: key.serialize_pem(),
            })
        }
    }

    impl Ca {
        /// A revocation list of this CA (PEM) revoking the given certificates
        /// (PEM), numbered `number` (for tests and for trying revocation out).
        pub fn crl(&self, revoked: &[&str], number: u64) -> Result<String, TlsError> {
            let now = time::OffsetDateTime::now_utc();
            let mut revoked_certs = Vec::new();
            for pem in revoked {
                let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                    .map_err(|e| TlsError::Parse(e.to_string()))?;
                let cert = p.parse_x509().map_err(|e| TlsError::Parse(e.to_string()))?;
                revoked_certs.push(rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(
                        cert.tbs_certificate.raw_serial(),
                    ),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                });
            }
            let params = rcgen::CertificateRevocationListParams {
                this_update: now - time::Duration::hours(1),
                next_update: now + time::Duration::days(7),
                crl_number: rcgen::SerialNumber::from(number),
                issuing_distribution_point: None,
                revoked_certs,
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            };
            params
                .signed_by(&self.issuer)
                .map_err(rc_err)?
                .pem()
                .map_err(rc_err)
        }
    }

    fn write_file(path: &Path, content: &str, secret: bool) -> Result<(), TlsError> {
        let err = |source| TlsError::Write {
            path: path.display().to_string(),
            source,
        };
        crate::platform::write_private_or_public(path, content.as_bytes(), secret).map_err(err)
    }

    /// Writes `ca.pem`, `ca.key`, `agent.pem`, `agent.key`, `technician.pem`,
    /// `technician.key` (keys 0600) and a `policy.toml` using them on loopback.
    pub fn write(dir: &Path) -> Result<DemoPki, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let ca = Ca::new("Accord Demo CA")?;
        let agent = ca.leaf("localhost", "Accord demo", true, 825)?;
        let tech = ca.leaf("Technicien Démo", "Helpdesk démo", false, 825)?;
        let pki = DemoPki {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            agent_cert: dir.join("agent.pem"),
            agent_key: dir.join("agent.key"),
            technician_cert: dir.join("technician.pem"),
            technician_key: dir.join("technician.key"),
            policy: dir.join("policy.toml"),
        };
        write_file(&pki.ca, &ca.pem.cert, false)?;
        write_file(&dir.join("ca.key"), &ca.pem.key, true)?;
        write_file(&pki.agent_cert, &agent.cert, false)?;
        write_file(&pki.agent_key, &agent.key, true)?;
        write_file(&pki.technician_cert, &tech.cert, false)?;
        write_file(&pki.technician_key, &tech.key, true)?;
        let abs = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        let policy = format!(
            "# Demo policy written by `accord pki demo`: loopback only, demo certificates.\n\
             [listen]\naddress = \"127.0.0.1:5988\"\ncert = {:?}\nkey = {:?}\n\n\
             [technicians]\nca = {:?}\n\n\
             [upstream]\n# x11vnc (or x0vncserver) started after consent, on a private socket\nlaunch = \"auto\"\n\n\
             [audit]\npath = {:?}\n",
            abs(&pki.agent_cert),
            abs(&pki.agent_key),
            abs(&pki.ca),
            abs(&dir.join("audit.jsonl")),
        );
        write_file(&pki.policy, &policy, false)?;
        Ok(pki)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_reads_subject_most_specific_first() {
        let ca = demo::Ca::new("Test CA").unwrap();
        let leaf = ca.leaf("Jeanne Martin", "Helpdesk CHU", false, 10).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap();
        let id = identity_of(&der).unwrap();
        assert_eq!(id.subject, "CN=Jeanne Martin,O=Helpdesk CHU");
        assert_eq!(id.common_name.as_deref(), Some("Jeanne Martin"));
        assert_eq!(id.organization.as_deref(), Some("Helpdesk CHU"));
        assert_eq!(id.fingerprint, fingerprint(der.as_ref()));
        assert_eq!(id.fingerprint.len(), 7 + 64);
        assert_eq!(id.short_fingerprint().len(), 19);
        assert!(id.allowed_by(&[]));
        assert!(id.allowed_by(&[AllowEntry::Subject(id.subject.clone())]));
        assert!(id.allowed_by(&[AllowEntry::Fingerprint(id.fingerprint.clone())]));
        assert!(!id.allowed_by(&[AllowEntry::Subject("CN=Other".into())]));
    }

    #[test]
    fn dn_values_cannot_carry_bidi_or_separators() {
        assert_eq!(escape_dn_value("a,b"), "a\\,b");
        assert_eq!(escape_dn_value("x\u{202E}y"), "x\\E2\\80\\AEy");
        assert_eq!(escape_dn_value("l\nm"), "l\\0Am");
    }
}
