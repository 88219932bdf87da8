//! Proving knowledge of the cluster secret without sending it.
//!
//! The accepting side sends a fresh 32-byte nonce; the connecting side answers with
//! `HMAC-SHA256(secret, nonce || node_id || role)`. A node that does not know the secret cannot
//! join, and a recorded proof is useless against another nonce. (Confidentiality of the traffic
//! itself is TLS's job, configured separately.)

use sha2::{Digest, Sha256};
use subtle_compare::constant_time_eq;

pub const NONCE_LEN: usize = 32;

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut key_block = [0u8; BLOCK];
    if key.len() > BLOCK {
        key_block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        key_block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(key_block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner_hash = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(key_block.map(|b| b ^ 0x5c));
    outer.update(inner_hash);
    outer.finalize().into()
}

pub fn new_nonce() -> Vec<u8> {
    let mut nonce = vec![0u8; NONCE_LEN];
    rand::fill(&mut nonce[..]);
    nonce
}

/// The proof a node with `node_id` and `role` sends for `nonce`.
pub fn proof(secret: &str, nonce: &[u8], node_id: u32, role: i32) -> Vec<u8> {
    let mut message = Vec::with_capacity(nonce.len() + 8);
    message.extend_from_slice(nonce);
    message.extend_from_slice(&node_id.to_be_bytes());
    message.extend_from_slice(&role.to_be_bytes());
    hmac_sha256(secret.as_bytes(), &message).to_vec()
}

pub fn verify(secret: &str, nonce: &[u8], node_id: u32, role: i32, given: &[u8]) -> bool {
    constant_time_eq(&proof(secret, nonce, node_id, role), given)
}

mod subtle_compare {
    /// Compares without an early exit, so timing does not reveal how much of a proof matched.
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn proof_binds_secret_nonce_and_identity() {
        let nonce = new_nonce();
        let p = proof("s3cret", &nonce, 3, 2);
        assert!(verify("s3cret", &nonce, 3, 2, &p));
        assert!(!verify("other", &nonce, 3, 2, &p));
        assert!(!verify("s3cret", &new_nonce(), 3, 2, &p));
        assert!(!verify("s3cret", &nonce, 4, 2, &p), "a proof for node 3 does not admit node 4");
        assert!(!verify("s3cret", &nonce, 3, 3, &p), "nor another role");
    }
}
