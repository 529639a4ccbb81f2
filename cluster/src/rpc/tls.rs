//! The cluster CA, node certificates and the rustls configurations built from them.
//!
//! A node's identity is the DNS subject alternative name `node-<id>.herald` in its
//! certificate (the CN says the same for humans). Certificates are ECDSA P-256 and carry
//! both the server and client extended key usages, since every node is both.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::RootCertStore;

use super::{NodeId, ALPN};
use crate::rpc::error::SetupError;

/// Default lifetime of a CA created by [`CertAuthority::generate`].
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default lifetime of a node certificate.
pub const DEFAULT_NODE_VALIDITY: Duration = Duration::from_secs(3 * 365 * 24 * 3600);

const NODE_NAME_PREFIX: &str = "node-";
const NODE_NAME_SUFFIX: &str = ".herald";
const CA_COMMON_NAME: &str = "herald cluster CA";
const CA_ORGANIZATION: &str = "herald";
/// Certificates are valid from this long before their creation (clock skew between nodes).
const BACKDATE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("PEM in {what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate could not be parsed: {0}")]
    Parse(String),
    #[error("certificate names no node (expected a DNS name node-<id>.herald)")]
    NoNodeId,
    #[error("certificate names more than one node")]
    AmbiguousNodeId,
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error(
        "the CA certificate was not created by herald (subject differs), so it cannot sign here"
    )]
    ForeignCa,
    #[error("the node certificate is not trusted: {0}")]
    Untrusted(String),
    #[error("invalid subject alternative name {0:?}")]
    InvalidSan(String),
    #[error("the system clock is before 1970")]
    Clock,
}

/// The DNS name that carries node `id`'s identity.
pub fn node_dns_name(id: NodeId) -> String {
    format!("{NODE_NAME_PREFIX}{id}{NODE_NAME_SUFFIX}")
}

/// The node id in a name made by [`node_dns_name`], if it is one (canonical decimal only).
pub fn node_id_from_dns_name(name: &str) -> Option<NodeId> {
    let digits = name
        .strip_prefix(NODE_NAME_PREFIX)?
        .strip_suffix(NODE_NAME_SUFFIX)?;
    let id: NodeId = digits.parse().ok()?;
    (id.to_string() == digits).then_some(id)
}

/// Reads the node id from an end-entity certificate. Only meaningful for a certificate
/// whose chain has been verified.
pub(crate) fn node_id_from_cert(cert: &CertificateDer<'_>) -> Result<NodeId, CertError> {
    let parsed =
        webpki::EndEntityCert::try_from(cert).map_err(|e| CertError::Parse(format!("{e:?}")))?;
    let mut ids = parsed.valid_dns_names().filter_map(node_id_from_dns_name);
    let id = ids.next().ok_or(CertError::NoNodeId)?;
    if ids.any(|other| other != id) {
        return Err(CertError::AmbiguousNodeId);
    }
    // Confirm through webpki's own name matching, as its documentation asks.
    let name = ServerName::try_from(node_dns_name(id)).map_err(|_| CertError::NoNodeId)?;
    parsed
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| CertError::NoNodeId)?;
    Ok(id)
}

/// An extra subject alternative name for a node certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    Dns(String),
    Ip(IpAddr),
}

/// A node certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct NodeCertPem {
    pub node_id: NodeId,
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for NodeCertPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCertPem")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The cluster certificate authority: signs node certificates.
pub struct CertAuthority {
    /// The certificate as loaded or generated (what nodes trust).
    cert_pem: String,
    /// rcgen's view of the CA, used as the issuer when signing. After loading from PEM
    /// this is a re-signed twin with the same subject and key (rcgen cannot parse
    /// certificates without x509-parser), which is all that issuing needs.
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

fn ca_params(valid_for: Duration) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, valid_for)?;
    Ok(params)
}

// Real wall-clock time is the point here: certificates are valid from now on. This is
// setup code run by an operator command, outside any simulated path.
#[allow(clippy::disallowed_methods)]
fn set_validity(params: &mut CertificateParams, valid_for: Duration) -> Result<(), CertError> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| CertError::Clock)?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch.saturating_sub(BACKDATE);
    params.not_after = epoch + since_epoch + valid_for;
    Ok(())
}

fn parse_cert<'a>(cert: &'a CertificateDer<'a>) -> Result<webpki::EndEntityCert<'a>, CertError> {
    webpki::EndEntityCert::try_from(cert).map_err(|e| CertError::Parse(format!("{e:?}")))
}

fn pem_error(what: &'static str) -> impl Fn(rustls::pki_types::pem::Error) -> CertError {
    move |e| CertError::Pem {
        what,
        reason: format!("{e:?}"),
    }
}

fn read_to_string(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl CertAuthority {
    /// Creates a new CA with a fresh key.
    pub fn generate(valid_for: Duration) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let issuer = ca_params(valid_for)?.self_signed(&key)?;
        Ok(CertAuthority {
            cert_pem: issuer.pem(),
            issuer,
            key,
        })
    }

    /// Loads a CA created by [`CertAuthority::generate`] from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(pem_error("CA certificate"))?;
        let key = KeyPair::from_pem(key_pem)?;
        let parsed = parse_cert(&cert)?;
        if parsed.subject_public_key_info().as_ref() != key.public_key_der().as_slice() {
            return Err(CertError::KeyMismatch);
        }
        let issuer = ca_params(DEFAULT_CA_VALIDITY)?.self_signed(&key)?;
        if parse_cert(issuer.der())?.subject() != parsed.subject() {
            return Err(CertError::ForeignCa);
        }
        Ok(CertAuthority {
            cert_pem: cert_pem.to_owned(),
            issuer,
            key,
        })
    }

    /// Loads a CA from its certificate and key files.
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        Self::from_pem(&read_to_string(cert_path)?, &read_to_string(key_path)?)
    }

    /// The CA certificate (give it to every node).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (keep it off the nodes if you can).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate for node `node_id` with a fresh key. Its identity is the DNS
    /// name `node-<id>.herald`; `extra_sans` are added for other tools (they play no part
    /// in identity).
    pub fn issue_node_cert(
        &self,
        node_id: NodeId,
        extra_sans: &[SubjectAltName],
        valid_for: Duration,
    ) -> Result<NodeCertPem, CertError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("herald node {node_id}"));
        dn.push(DnType::OrganizationName, CA_ORGANIZATION);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let own_name = node_dns_name(node_id);
        params.subject_alt_names.push(SanType::DnsName(
            own_name
                .clone()
                .try_into()
                .map_err(|_| CertError::InvalidSan(own_name))?,
        ));
        for san in extra_sans {
            params.subject_alt_names.push(match san {
                SubjectAltName::Ip(ip) => SanType::IpAddress(*ip),
                SubjectAltName::Dns(name) => {
                    if node_id_from_dns_name(name).is_some() {
                        // another node's identity name would make the certificate ambiguous
                        return Err(CertError::InvalidSan(name.clone()));
                    }
                    SanType::DnsName(
                        name.as_str()
                            .try_into()
                            .map_err(|_| CertError::InvalidSan(name.clone()))?,
                    )
                }
            });
        }
        set_validity(&mut params, valid_for)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok(NodeCertPem {
            node_id,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What a node presents and trusts: its certificate chain and key, and the cluster CA.
#[derive(Clone)]
pub struct NodeIdentity {
    node_id: NodeId,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Arc<RootCertStore>,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Builds an identity from PEM text: the CA certificate(s) to trust, this node's
    /// certificate (optionally followed by intermediates) and its private key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let ca = ca.map_err(pem_error("CA certificate"))?;
            roots
                .add(ca)
                .map_err(|e| CertError::Parse(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(CertError::Pem {
                what: "CA certificate",
                reason: "no certificate found".into(),
            });
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("node certificate"))?;
        let leaf = chain.first().ok_or(CertError::Pem {
            what: "node certificate",
            reason: "no certificate found".into(),
        })?;
        let node_id = node_id_from_cert(leaf)?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem_error("node key"))?;
        let key_pair = KeyPair::from_pem(key_pem)?;
        if parse_cert(leaf)?.subject_public_key_info().as_ref() != key_pair.public_key_der() {
            return Err(CertError::KeyMismatch);
        }
        Ok(NodeIdentity {
            node_id,
            chain,
            key: Arc::new(key),
            roots: Arc::new(roots),
        })
    }

    /// [`NodeIdentity::from_pem`] reading the three files.
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, CertError> {
        Self::from_pem(
            &read_to_string(ca)?,
            &read_to_string(cert)?,
            &read_to_string(key)?,
        )
    }

    /// The node id in this identity's certificate.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Checks that this node's certificate chains to the trusted CA and is valid now, as
    /// peers will check it; call at startup to fail early rather than at every handshake.
    pub fn verify_chain(&self) -> Result<(), CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            provider,
        )
        .build()
        .map_err(|e| CertError::Untrusted(e.to_string()))?;
        let name =
            ServerName::try_from(node_dns_name(self.node_id)).map_err(|_| CertError::NoNodeId)?;
        let (leaf, intermediates) = self.chain.split_first().ok_or(CertError::NoNodeId)?;
        verifier
            .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
            .map_err(|e| CertError::Untrusted(e.to_string()))?;
        Ok(())
    }

    /// TLS 1.3 server configuration: requires a client certificate chaining to the CA.
    pub(crate) fn quic_server_config(
        &self,
    ) -> Result<quinn::crypto::rustls::QuicServerConfig, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            self.roots.clone(),
            provider.clone(),
        )
        .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        quinn::crypto::rustls::QuicServerConfig::try_from(config)
            .map_err(|e| SetupError::Quic(e.to_string()))
    }

    /// TLS 1.3 client configuration: presents this node's certificate and requires the
    /// server's to chain to the CA and name the node being called.
    pub(crate) fn quic_client_config(
        &self,
    ) -> Result<quinn::crypto::rustls::QuicClientConfig, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        quinn::crypto::rustls::QuicClientConfig::try_from(config)
            .map_err(|e| SetupError::Quic(e.to_string()))
    }
}
