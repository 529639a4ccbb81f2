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
