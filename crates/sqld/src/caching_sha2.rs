//! What an SQL node keeps for `caching_sha2_password` besides the catalog: its RSA key pair and,
//! when configured, MySQL's fast-authentication cache.
//!
//! # The key pair
//!
//! Full authentication without TLS has the client encrypt its password with the node's RSA
//! public key (`cairn_wire::rsa_key`). [`rsa_key_source`] reads the key files named in the
//! node's `[[mysqld]]` section (`CachingSha2PasswordPrivateKeyPath`, optionally
//! `CachingSha2PasswordPublicKeyPath`) before the port opens, so a node with bad files does not
//! start; without files it starts generating a 2048-bit pair on a blocking thread
//! (`CachingSha2PasswordAutoGenerateRsaKeys`, on by default, as MySQL's
//! `caching_sha2_password_auto_generate_rsa_keys`), and the port opens at once. The public key
//! is shown as the status variable `Caching_sha2_password_rsa_public_key`.
//!
//! # The fast-authentication cache
//!
//! MySQL keeps a salted, slow digest of each password on disk and can answer the fast path
//! only for accounts whose `SHA256(SHA256(password))` it learned in memory from a full
//! authentication. Cairn's catalog keeps that value itself (crate `cairn_common::accounts`), so
//! by default every SQL node takes the fast path for every account. With
//! `CachingSha2PasswordFastAuthCache = true` a node behaves as MySQL: the fast path succeeds
//! only for an account that completed a full authentication on this node since it started,
//! with the verifier the catalog holds now (a password change makes the entry stale); other
//! logins are asked for full authentication (inside TLS, or RSA-encrypted). Entries are never
//! shared between nodes and die with the process.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use cairn_common::accounts::AccountName;
use cairn_control::config::SqldSection;
use cairn_wire::{RsaKeyPair, RsaKeySource};

/// The cache holds at most this many accounts; past it, it starts over (a cleared entry only
/// costs that account one full authentication).
const MAX_CACHED_ACCOUNTS: usize = 100_000;

/// The node's RSA key source, or `None` when the node has neither key files nor automatic
/// generation (full authentication then needs TLS). `public_key` receives the public key in
/// PEM once it exists, for `SHOW STATUS`. Must run inside the Tokio runtime.
pub fn rsa_key_source(section: &SqldSection, public_key: Arc<OnceLock<String>>) -> anyhow::Result<Option<RsaKeySource>> {
    if let Some(private) = &section.caching_sha2_private_key_path {
        let pair = RsaKeyPair::from_pem_files(Path::new(private), section.caching_sha2_public_key_path.as_deref().map(Path::new))
            .map_err(|e| anyhow::anyhow!("CachingSha2PasswordPrivateKeyPath: {e}"))?;
        let _ = public_key.set(pair.public_key_pem().to_string());
        tracing::info!(path = %private, "read the RSA key pair for caching_sha2_password");
        return Ok(Some(RsaKeySource::ready(pair)));
    }
    if !section.caching_sha2_auto_generate_rsa_keys {
        return Ok(None);
    }
    let source = RsaKeySource::generate_in_background(cairn_wire::rsa_key::GENERATED_KEY_BITS);
    let waiting = source.clone();
    tokio::spawn(async move {
        if let Some(pair) = waiting.wait().await {
            let _ = public_key.set(pair.public_key_pem().to_string());
        }
    });
    Ok(Some(source))
}

/// MySQL's fast-authentication cache, or its absence (see the module docs).
#[derive(Debug, Default)]
pub struct FastAuthCache {
    enabled: bool,
    /// Account → the verifier it proved with a full authentication.
    proved: Mutex<HashMap<AccountName, Vec<u8>>>,
}

impl FastAuthCache {
    pub fn new(enabled: bool) -> FastAuthCache {
        FastAuthCache { enabled, proved: Mutex::new(HashMap::new()) }
    }

    /// Whether the fast path may be tried for `account`, whose catalog verifier is `verifier`.
    pub fn admits_fast_path(&self, account: &AccountName, verifier: &[u8]) -> bool {
        if !self.enabled {
            return true;
        }
        let proved = self.proved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        proved.get(account).is_some_and(|known| known.as_slice() == verifier)
    }

    /// Records a successful full authentication of `account` with `verifier`.
    pub fn remember(&self, account: &AccountName, verifier: &[u8]) {
        if !self.enabled {
            return;
        }
        let mut proved = self.proved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if proved.len() >= MAX_CACHED_ACCOUNTS && !proved.contains_key(account) {
            proved.clear();
        }
        proved.insert(account.clone(), verifier.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_admits_only_accounts_proved_with_their_current_verifier() {
        let exim = AccountName::new("exim", "%");
        let off = FastAuthCache::new(false);
        assert!(off.admits_fast_path(&exim, b"v1"), "without the cache every account takes the fast path");
        let on = FastAuthCache::new(true);
        assert!(!on.admits_fast_path(&exim, b"v1"));
        on.remember(&exim, b"v1");
        assert!(on.admits_fast_path(&exim, b"v1"));
        assert!(!on.admits_fast_path(&exim, b"v2"), "a changed password needs a full authentication again");
        assert!(!on.admits_fast_path(&AccountName::new("exim", "10.%"), b"v1"));
    }
}
