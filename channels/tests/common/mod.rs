//! Shared by the transport tests: a TLS identity for the local peers.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for 127.0.0.1: an acceptor for the test's
/// server and the certificate as PEM, for the client to trust.
pub fn tls_identity() -> (TlsAcceptor, String) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    (TlsAcceptor::from(Arc::new(config)), cert.pem())
}
