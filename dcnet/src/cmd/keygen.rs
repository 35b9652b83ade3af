//! `dcnet keygen`: a fresh identity for a meter, a company or the user.

use anyhow::{Context, Result};
use lock::{PublicIdentity, SecretIdentity, os_rng};

use crate::cli::KeygenConfig;
use crate::cmd::files::write_new;

pub fn run(config: KeygenConfig) -> Result<()> {
    let identity = SecretIdentity::generate(&config.name, &mut os_rng()).context("--name")?;
    // Check both paths before writing either, so a refusal leaves no half-made identity.
    for path in [&config.secret_path, &config.public_path] {
        anyhow::ensure!(
            config.force || !path.exists(),
            "{} exists; pass --force to replace it",
            path.display()
        );
    }
    write_new(&config.secret_path, &identity.to_toml(), config.force, true)?;
    write_new(
        &config.public_path,
        &PublicIdentity::to_toml(&identity),
        config.force,
        false,
    )?;
    println!(
        "identity {:?}, fingerprint {}\nsecret: {} (keep private)\npublic: {}",
        identity.name(),
        identity.public().fingerprint(),
        config.secret_path.display(),
        config.public_path.display()
    );
    Ok(())
}
