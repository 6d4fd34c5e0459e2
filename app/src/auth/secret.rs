//! The server secret API keys are hashed under: `API_KEY_SECRET`, or in development a secret
//! generated once into `{DATA_DIR}/api_key_secret`.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::settings::{Environment, ForgeRunConfig};

/// The file name of the development secret under `DATA_DIR`.
pub const DEV_SECRET_FILE: &str = "api_key_secret";

/// The fewest characters a secret may have (as `API_KEY_SECRET` requires).
const MIN_LEN: usize = 32;

/// The HMAC key: `API_KEY_SECRET` when set; otherwise, outside production, the development
/// secret file (created on first use, then reused).
pub(crate) fn load(config: &ForgeRunConfig) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.api_key_secret {
        if secret.len() < MIN_LEN {
            bail!("API_KEY_SECRET must be at least {MIN_LEN} characters");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    if config.env == Environment::Production {
        bail!("API_KEY_SECRET must be set when APP_ENV=production");
    }
    let path = dev_secret_path(&config.data_dir);
    let (secret, created) = read_or_create(&path)?;
    tracing::warn!(
        path = %path.display(),
        created,
        "API_KEY_SECRET is not set: API keys are hashed with the development secret in this \
         file; set API_KEY_SECRET in production"
    );
    Ok(secret)
}

/// Where the development secret of `data_dir` lives.
pub fn dev_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEV_SECRET_FILE)
}

/// Reads the secret at `path`, first creating it if it does not exist. Concurrent first starts
/// agree: each writes its candidate to a temporary file and hard-links it into place, which
/// fails instead of overwriting when another start won; everyone then reads the winner.
fn read_or_create(path: &Path) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut created = false;
    if !path.exists() {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        fs::create_dir_all(dir)
            .with_context(|| format!("creating DATA_DIR ({})", dir.display()))?;
        let tmp = dir.join(format!(
            ".{DEV_SECRET_FILE}.{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let linked = write_private(&tmp).and_then(|()| fs::hard_link(&tmp, path));
        // The temporary name is never needed again, whatever happened.
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => created = true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("creating the development API key secret {}", path.display())
                });
            }
        }
    }
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the development API key secret {}", path.display()))?;
    let secret = text.trim();
    if secret.len() < MIN_LEN {
        bail!(
            "the development API key secret {} is shorter than {MIN_LEN} characters; delete \
             it to generate a new one (every existing key stops working) or set API_KEY_SECRET",
            path.display()
        );
    }
    warn_if_shared(path);
    Ok((secret.as_bytes().to_vec(), created))
}

/// Writes 32 random bytes, hex-encoded, to a new file only the owner can read.
fn write_private(path: &Path) -> std::io::Result<()> {
    let secret = core_web::token::random_hex(32);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()
}

/// Warns when others than the owner may read the secret file.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the development API key secret is readable by others than its owner; \
                 chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
