//! Access keys for SigV4: from the environment or config, else a pair
//! generated on first start and kept in the data directory (mode 0600).

use std::path::Path;

use anyhow::Context;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub const FILE_NAME: &str = "credentials.json";

fn random_string(rng: &mut impl Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Loads the generated key of `data_dir`, creating it on first start.
/// Returns the key and whether it was just created.
pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<(AccessKey, bool)> {
    let path = data_dir.join(FILE_NAME);
    if path.exists() {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let key = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        return Ok((key, false));
    }
    let mut rng = rand::rng();
    let key = AccessKey {
        access_key_id: format!(
            "HRLD{}",
            random_string(&mut rng, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        ),
        secret_access_key: random_string(
            &mut rng,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        ),
    };
    std::fs::create_dir_all(data_dir)?;
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(&key)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok((key, true))
}

/// The node's tracking secret (signs open, click and unsubscribe links):
/// 32 random bytes kept hex-encoded in `tracking.key` in the data directory
/// (mode 0600), created on first start. Nodes of one cluster must share it
/// (copy the file, or set `HERALD_TRACKING_SECRET`).
pub fn tracking_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(s) = std::env::var("HERALD_TRACKING_SECRET") {
        anyhow::ensure!(
            s.len() >= 32,
            "HERALD_TRACKING_SECRET must be at least 32 characters"
        );
        return Ok(s.into_bytes());
    }
    let path = data_dir.join("tracking.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return hex::decode(text.trim()).with_context(|| format!("parsing {}", path.display()));
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    let tmp = data_dir.join("tracking.key.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(hex::encode(bytes).as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(bytes.to_vec())
}
