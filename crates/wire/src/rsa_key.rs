//! The RSA key pair of `caching_sha2_password`'s full authentication over a plain connection.
//!
//! # Concept
//!
//! When the fast path of `caching_sha2_password` fails, the server asks for full authentication
//! (AuthMoreData `0x01 0x04`): the client must send the password itself. Inside TLS it sends it
//! as is. On a plain connection MySQL has it encrypted with the server's RSA public key instead:
//! the client either knows the key already (`--server-public-key-path`) or asks for it by
//! sending the single byte `0x02`, and the server answers AuthMoreData(`0x01` + the public key in
//! PEM). The client then XORs the NUL-terminated password with the scramble (repeated to the
//! password's length), encrypts that with RSA-OAEP (SHA-1 for the digest and for MGF1, as MySQL
//! 8.0.5+ clients, PyMySQL and MariaDB Connector/C do) and sends the ciphertext. The XOR binds
//! the ciphertext to this connection's scramble, so a recorded ciphertext cannot be replayed on
//! another connection.
//!
//! Like MySQL (`caching_sha2_password_auto_generate_rsa_keys`), an SQL node generates a 2048-bit
//! key pair when it starts unless its config names key files
//! (`caching_sha2_password_private_key_path` / `_public_key_path`); generation runs off the
//! accept path ([`RsaKeySource::generate_in_background`]) and a login that needs the key before
//! it exists waits for it, bounded by the handshake timeout.
//!
//! # Guarantees
//!
//! - Malformed input never panics: a ciphertext of the wrong length, one that does not
//!   decrypt, or padding that does not check out is an error the server answers with 1045.
//! - Decryption is blinded (the operating system's RNG), so its timing does not depend on the
//!   private key, and OAEP's padding check is constant-time in the `rsa` crate.
//! - A key read from files is checked: the private key must parse (PKCS#8 or PKCS#1 PEM), be at
//!   least 1024 bits (MySQL's lower bound for usable OAEP with a password) and, when a public
//!   key file is given too, the two must belong together.
//!
//! # Left out
//!
//! - `sha256_password` (the older plugin that always encrypts) and PKCS#1 v1.5 padding (MySQL
//!   clients before 8.0.5): neither is used by the clients in CLIENTS.md.
//! - Key rotation without restart: the key pair lives as long as the SQL node.

use std::path::Path;
use std::sync::Arc;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey, PublicKey};
use tokio::sync::watch;

use crate::auth::SCRAMBLE_LEN;

/// The size of an auto-generated key, MySQL's.
pub const GENERATED_KEY_BITS: usize = 2048;
/// Smaller keys are refused when read from files: OAEP with SHA-1 leaves `k - 42` bytes for
/// the password, and anything below 1024 bits is breakable.
const MIN_KEY_BITS: usize = 1024;

/// Why a key pair could not be made or a ciphertext not be read.
#[derive(Debug, thiserror::Error)]
pub enum RsaKeyError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    /// A client's ciphertext that is not an encryption of a password under our key.
    #[error("the encrypted password could not be decrypted ({0})")]
    Decrypt(String),
}

/// An RSA private key and its public half in the PEM form sent to clients.
#[derive(Clone)]
pub struct RsaKeyPair {
    private: PrivateKey,
    public_pem: String,
}

impl std::fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("RsaKeyPair").field("bits", &(self.private.size() * 8)).finish()
    }
}

impl RsaKeyPair {
    /// A fresh key pair from the operating system's RNG. Takes tens to hundreds of
    /// milliseconds for 2048 bits (prime search): call it off the async runtime.
    pub fn generate(bits: usize) -> Result<RsaKeyPair, RsaKeyError> {
        let mut rng = getrandom::SysRng;
        let private = PrivateKey::new(&mut rng, bits).map_err(|e| RsaKeyError::Generate(e.to_string()))?;
        RsaKeyPair::from_private(private)
    }

    /// Reads the private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`, as
    /// `mysql_ssl_rsa_setup` and `openssl genrsa` write them) and, if given, the public key
    /// (`BEGIN PUBLIC KEY`), which must be the private key's.
    pub fn from_pem_files(private_path: &Path, public_path: Option<&Path>) -> Result<RsaKeyPair, RsaKeyError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| RsaKeyError::Read { path: path.display().to_string(), source })
        };
        let private_pem = read(private_path)?;
        let public_pem = public_path.map(read).transpose()?;
        RsaKeyPair::from_pem(&private_pem, public_pem.as_deref())
            .map_err(|e| RsaKeyError::Invalid(format!("{}: {e}", private_path.display())))
    }

    /// [`RsaKeyPair::from_pem_files`] on text already read.
    pub fn from_pem(private_pem: &str, public_pem: Option<&str>) -> Result<RsaKeyPair, RsaKeyError> {
        let private = PrivateKey::from_pkcs8_pem(private_pem)
            .or_else(|_| PrivateKey::from_pkcs1_pem(private_pem))
            .map_err(|e| RsaKeyError::Invalid(format!("not an RSA private key in PEM (PKCS#8 or PKCS#1): {e}")))?;
        if private.size() * 8 < MIN_KEY_BITS {
            return Err(RsaKeyError::Invalid(format!(
                "the RSA key has {} bits; at least {MIN_KEY_BITS} are needed",
                private.size() * 8
            )));
        }
        if let Some(public_pem) = public_pem {
            let public = PublicKey::from_public_key_pem(public_pem)
                .map_err(|e| RsaKeyError::Invalid(format!("the public key is not an RSA public key in PEM: {e}")))?;
            if &public != private.as_public_key() {
                return Err(RsaKeyError::Invalid("the public key does not belong to the private key".into()));
            }
        }
        RsaKeyPair::from_private(private)
    }

    fn from_private(private: PrivateKey) -> Result<RsaKeyPair, RsaKeyError> {
        // Clients get the key in the form MySQL sends: SubjectPublicKeyInfo PEM with LF line
        // ends. PyMySQL and libmysqlclient parse it with `load_pem_public_key` /
        // `PEM_read_bio_RSA_PUBKEY`, which want exactly that.
        let public_pem = private
            .as_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| RsaKeyError::Invalid(format!("cannot encode the public key: {e}")))?;
        Ok(RsaKeyPair { private, public_pem })
    }

    /// The public key as sent to clients and shown as `Caching_sha2_password_rsa_public_key`.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The length of every ciphertext made with this key (the modulus size in bytes).
    pub fn ciphertext_len(&self) -> usize {
        self.private.size()
    }

    /// Recovers the password from a client's full-authentication answer: decrypts with
    /// RSA-OAEP(SHA-1), XORs with the scramble repeated, and strips the terminating NUL.
    pub fn decrypt_password(&self, ciphertext: &[u8], scramble: &[u8; SCRAMBLE_LEN]) -> Result<Vec<u8>, RsaKeyError> {
        if ciphertext.len() != self.ciphertext_len() {
            return Err(RsaKeyError::Decrypt(format!(
                "{} bytes where the key makes {}",
                ciphertext.len(),
                self.ciphertext_len()
            )));
        }
        let mut plain = self
            .private
            .oaep_decrypt::<sha1::Sha1>(ciphertext)
            .map_err(|e| RsaKeyError::Decrypt(e.to_string()))?;
        xor_with_scramble(&mut plain, scramble);
        // Clients encrypt the password with its NUL terminator (libmysqlclient, PyMySQL,
        // MariaDB Connector/C); everything after the first NUL is not password.
        if let Some(end) = plain.iter().position(|&b| b == 0) {
            plain.truncate(end);
        }
        Ok(plain)
    }
}

/// XORs `data` in place with the scramble repeated to its length, the obfuscation clients apply
/// before encrypting (it binds the ciphertext to one connection).
fn xor_with_scramble(data: &mut [u8], scramble: &[u8; SCRAMBLE_LEN]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= scramble[i % SCRAMBLE_LEN];
    }
}

/// What a client sends in full authentication over a plain connection: the NUL-terminated
/// password XORed with the scramble, RSA-OAEP(SHA-1)-encrypted with the server's public key
/// (PEM). For tests and tools that log in; the server only decrypts.
pub fn rsa_encrypted_password(
    public_key_pem: &str,
    password: &[u8],
    scramble: &[u8; SCRAMBLE_LEN],
) -> Result<Vec<u8>, RsaKeyError> {
    let public = PublicKey::from_public_key_pem(public_key_pem)
        .map_err(|e| RsaKeyError::Invalid(format!("not an RSA public key in PEM: {e}")))?;
    let mut plain = Vec::with_capacity(password.len() + 1);
    plain.extend_from_slice(password);
    plain.push(0);
    xor_with_scramble(&mut plain, scramble);
    public
        .oaep_encrypt::<sha1::Sha1>(&plain)
        .map_err(|e| RsaKeyError::Invalid(format!("cannot encrypt: {e}")))
}

/// Where connections get the SQL node's key pair: either there from the start (read from
/// files) or generated in the background after start. Cheap to clone; every connection holds
/// one.
#[derive(Clone, Debug)]
pub struct RsaKeySource {
    key: watch::Receiver<Option<Arc<RsaKeyPair>>>,
}

impl RsaKeySource {
    /// A source whose key is known now.
    pub fn ready(pair: RsaKeyPair) -> RsaKeySource {
        let (_sender, key) = watch::channel(Some(Arc::new(pair)));
        RsaKeySource { key }
    }

    /// Starts generating a `bits`-bit key pair on a blocking thread of the current Tokio
    /// runtime and returns at once. A generation failure (the OS RNG failing) is logged; logins
    /// that need the key are then refused with 1045 when they find the source closed.
    pub fn generate_in_background(bits: usize) -> RsaKeySource {
        let (sender, key) = watch::channel(None);
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match RsaKeyPair::generate(bits) {
                Ok(pair) => {
                    tracing::info!(bits, elapsed_ms = started.elapsed().as_millis() as u64, "generated the RSA key pair for caching_sha2_password");
                    let _ = sender.send(Some(Arc::new(pair)));
                }
                Err(e) => tracing::error!(error = %e, "cannot generate the RSA key pair for caching_sha2_password; full authentication needs TLS"),
            }
        });
        RsaKeySource { key }
    }

    /// The key pair if it exists yet (for `SHOW STATUS`).
    pub fn get(&self) -> Option<Arc<RsaKeyPair>> {
        self.key.borrow().clone()
    }

    /// The key pair, waiting for a generation in progress; `None` if the generation failed.
    pub async fn wait(&self) -> Option<Arc<RsaKeyPair>> {
        let mut key = self.key.clone();
        match key.wait_for(Option::is_some).await {
            Ok(pair) => pair.clone(),
            // The sender is gone without a key: generation failed.
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::new_scramble;

    /// One small key for all tests of this module: 1024 bits keeps debug-build generation short.
    fn test_pair() -> &'static RsaKeyPair {
        static PAIR: std::sync::OnceLock<RsaKeyPair> = std::sync::OnceLock::new();
        PAIR.get_or_init(|| RsaKeyPair::generate(1024).expect("key generation"))
    }

    #[test]
    fn a_password_encrypted_by_a_client_decrypts_with_the_scramble_it_was_bound_to() {
        let pair = test_pair();
        assert!(pair.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let scramble = new_scramble();
        for password in [&b"s3cret"[..], b"x", &[b'p'; 60], "pässwörd".as_bytes()] {
            let ciphertext = rsa_encrypted_password(pair.public_key_pem(), password, &scramble).unwrap();
            assert_eq!(ciphertext.len(), pair.ciphertext_len());
            assert_eq!(pair.decrypt_password(&ciphertext, &scramble).unwrap(), password);
            // Replayed on a connection with another scramble, it yields garbage, not the password.
            let other = new_scramble();
            assert_ne!(pair.decrypt_password(&ciphertext, &other).unwrap(), password);
        }
    }

    #[test]
    fn malformed_ciphertexts_are_errors_not_panics() {
        let pair = test_pair();
        let scramble = new_scramble();
        let n = pair.ciphertext_len();
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0x02], vec![0; n - 1], vec![0; n + 1], vec![0; n], vec![0xff; n]];
        // A valid ciphertext with one bit flipped fails OAEP's check.
        let mut flipped = rsa_encrypted_password(pair.public_key_pem(), b"pw", &scramble).unwrap();
        flipped[n / 2] ^= 0x10;
        cases.push(flipped);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20 {
            cases.push((0..n).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            }).collect());
        }
        for case in cases {
            assert!(pair.decrypt_password(&case, &scramble).is_err(), "{} bytes accepted", case.len());
        }
    }

    #[test]
    fn keys_read_from_pem_must_parse_and_match() {
        let pair = test_pair();
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePrivateKey;
        let pkcs8 = pair.private.to_pkcs8_pem(LineEnding::LF).unwrap();
        let pkcs1 = pair.private.to_pkcs1_pem(LineEnding::LF).unwrap();
        for private_pem in [pkcs8.as_str(), pkcs1.as_str()] {
            let read = RsaKeyPair::from_pem(private_pem, Some(pair.public_key_pem())).unwrap();
            assert_eq!(read.public_key_pem(), pair.public_key_pem());
            let read = RsaKeyPair::from_pem(private_pem, None).unwrap();
            assert_eq!(read.public_key_pem(), pair.public_key_pem());
        }
        let other = RsaKeyPair::generate(1024).unwrap();
        let mismatch = RsaKeyPair::from_pem(&pkcs8, Some(other.public_key_pem())).unwrap_err();
        assert!(mismatch.to_string().contains("does not belong"), "{mismatch}");
        assert!(RsaKeyPair::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None).is_err());
        assert!(RsaKeyPair::from_pem(&pkcs8, Some("not a key")).is_err());
    }

    #[tokio::test]
    async fn a_background_source_hands_out_the_key_once_generated() {
        let source = RsaKeySource::generate_in_background(1024);
        let pair = tokio::time::timeout(std::time::Duration::from_secs(60), source.wait())
            .await
            .expect("generation finished in time")
            .expect("generation succeeded");
        assert_eq!(source.get().expect("the key is there now").public_key_pem(), pair.public_key_pem());
        assert_eq!(pair.ciphertext_len(), 128);
    }
}
