//! `mock-apns`: the mock APNs as a process, for the API tests and the push
//! benchmark. Prints `listening https://127.0.0.1:PORT` once it serves,
//! writes its certificate to `--ca-out`, and appends every push it answers
//! to `--log` as one JSON line.
//!
//! mock-apns --team-id T --key-id K (--key-file key.p8 | --key-out key.p8) [--listen 127.0.0.1:0]
//!           [--streams 1000] [--topic com.example.app] [--client-ca ca.pem]
//!           --ca-out ca.pem [--log pushes.ndjson]

use std::io::Write;

use herald_peers::apns::{MockApns, MockApnsConfig};
use ring::signature::KeyPair;

use herald_peers::arg;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let streams: u32 = arg(&args, "--streams").map_or(Ok(1000), |s| s.parse())?;
    // --key-out: a fresh team key (PKCS#8 PEM, as Apple's .p8) for the
    // test to configure herald with.
    if let Some(out) = arg(&args, "--key-out") {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        std::fs::write(&out, key.serialize_pem())?;
    }
    let token = match arg(&args, "--key-file").or_else(|| arg(&args, "--key-out")) {
        Some(file) => {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(&file)?;
            let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem)?;
            let key = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der.secret_pkcs8_der(),
                &ring::rand::SystemRandom::new(),
            )
            .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            let team = arg(&args, "--team-id").ok_or_else(|| anyhow::anyhow!("--team-id"))?;
            let kid = arg(&args, "--key-id").ok_or_else(|| anyhow::anyhow!("--key-id"))?;
            Some((team, kid, key.public_key().as_ref().to_vec()))
        }
        None => None,
    };
    let log = arg(&args, "--log");
    let cfg = MockApnsConfig {
        max_concurrent_streams: streams,
        token,
        topic: arg(&args, "--topic"),
        client_ca_pem: arg(&args, "--client-ca")
            .map(std::fs::read_to_string)
            .transpose()?,
        record: log.is_some(),
    };
    let mock = MockApns::start(listen.parse()?, cfg).await?;
    if let Some(out) = arg(&args, "--ca-out") {
        std::fs::write(out, mock.ca_pem())?;
    }
    println!("listening {}", mock.url());
    std::io::stdout().flush()?;
    herald_peers::append_log_forever(log, || mock.pushes()).await
}
