//! `backup-server init`: a new config directory with a TLS key, a self-signed certificate
//! and the admin API token. `backup-server datastore create` lives here too: both only
//! write configuration and never talk to a running server.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

use crate::config::{
    ADMIN_TOKEN_FILE, ADMIN_TOKEN_ID, CERT_FILE, ConfigDir, DatastoreConfig, KEY_FILE, TokensFile,
};

/// What `init` made: the certificate fingerprint to print.
pub struct InitResult {
    pub fingerprint: String,
}

/// Creates the config directory content. Refuses to overwrite an initialized directory.
pub fn init(dir: &Path) -> Result<InitResult> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = ConfigDir::new(dir);
    for file in [CERT_FILE, KEY_FILE, ADMIN_TOKEN_FILE] {
        if config.path(file).exists() {
            bail!("{} is already initialized ({file} exists)", dir.display());
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode of {}", dir.display()))?;

    let key = generate_key()?;
    let cert = self_signed_certificate(&key)?;
    write_private(&config.path(KEY_FILE), &key.private_key_to_pem_pkcs8()?)?;
    datastore::fs_util::replace_file(&config.path(CERT_FILE), &cert.to_pem()?)
        .context("writing certificate")?;

    let secret = random_hex(32)?;
    write_private(
        &config.path(ADMIN_TOKEN_FILE),
        format!("{secret}\n").as_bytes(),
    )?;
    let admin: crate::access::Authid = ADMIN_TOKEN_ID.parse()?;
    config.save_tokens(&TokensFile {
        tokens: vec![crate::access::tokens::TokenEntry::new(
            admin.clone(),
            &secret,
        )],
    })?;
    // The admin token acts for root@local with every privilege everywhere.
    crate::access::update_acl(&config, None, |acl| {
        acl.set(crate::access::AclEntry {
            path: crate::access::AclPath::root(),
            auth_id: admin,
            role: crate::access::Role::Admin,
            propagate: true,
        });
        Ok(())
    })?;
    Ok(InitResult {
        fingerprint: fingerprint(&cert.to_der()?),
    })
}

/// Creates a datastore directory and adds it to the config.
pub fn create_datastore(
    dir: &Path,
    name: &str,
    path: &Path,
    chunk_size: usize,
    gc_grace_seconds: Option<i64>,
) -> Result<()> {
    let config = ConfigDir::new(dir);
    config.check_initialized()?;
    datastore::names::validate_store_name(name)?;
    datastore::chunker::ChunkerParams::new(chunk_size)?;
    if gc_grace_seconds.is_some_and(|g| g < 0) {
        bail!("--gc-grace-seconds must not be negative");
    }
    let mut stores = config.datastores()?;
    if stores.datastores.iter().any(|d| d.name == name) {
        bail!("datastore '{name}' exists already");
    }
    let path =
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    if stores.datastores.iter().any(|d| d.path == path) {
        bail!("{} is already used by another datastore", path.display());
    }
    datastore::store::DataStore::create(&path)
        .with_context(|| format!("creating datastore at {}", path.display()))?;
    stores.datastores.push(DatastoreConfig {
        name: name.to_string(),
        path,
        chunk_size,
        gc_grace_seconds,
    });
    config.save_datastores(&stores)
}

/// SHA-256 fingerprint of a DER certificate as 32 colon-separated hex pairs.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(buf))
}

fn generate_key() -> Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

fn self_signed_certificate(key: &PKey<Private>) -> Result<X509> {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok());
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, host.as_deref().unwrap_or("backup-server"))?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "backup-server self-signed")?;
    let name = name.build();

    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(key)?;
    builder.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    builder.set_not_after(&*Asn1Time::days_from_now(365 * 100)?)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    san.dns("localhost").ip("127.0.0.1").ip("::1");
    if let Some(host) = &host {
        san.dns(host);
    }
    let san = san.build(&builder.x509v3_context(None, None))?;
    builder.append_extension(san)?;
    builder.sign(key, MessageDigest::sha256())?;
    Ok(builder.build())
}

/// Writes a file readable by its owner only (created 0600, never wider).
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(data)?;
    file.sync_all()?;
    Ok(())
}
