//! `mysql_native_password`, the one authentication method every client in CLIENTS.md speaks.
//!
//! The server stores `SHA1(SHA1(password))`, never the password. It sends a random 20-byte
//! scramble in the greeting; the client answers
//! `SHA1(password) XOR SHA1(scramble ‖ SHA1(SHA1(password)))`. The server XORs the answer with
//! `SHA1(scramble ‖ stored)` to recover `SHA1(password)` and checks that its SHA1 is the stored
//! hash. An eavesdropper learns neither the password nor the stored hash, but one who also
//! holds the stored hash can log in: the hash is as secret as a password.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Length of the scramble (the "auth plugin data" of the greeting).
pub const SCRAMBLE_LEN: usize = 20;

/// The plugin every client speaks, and the server's default.
pub const NATIVE_PASSWORD_PLUGIN: &str = "mysql_native_password";

/// MySQL 8's default plugin; the server speaks its fast path ([`verify_caching_sha2`]).
pub const CACHING_SHA2_PLUGIN: &str = "caching_sha2_password";

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The value to store for an account: `SHA1(SHA1(password))`, what MySQL keeps (hex-encoded
/// with a `*` prefix) in `mysql.user.authentication_string`.
pub fn native_password_hash(password: impl AsRef<[u8]>) -> [u8; 20] {
    let stage1 = sha1(&[password.as_ref()]);
    sha1(&[&stage1])
}

/// Checks a client's `mysql_native_password` answer against the stored hash, in constant time.
///
/// Clients send an empty answer for an empty password, so an empty answer is accepted exactly
/// when `stored` is the hash of the empty password.
pub fn verify_native_password(
    scramble: &[u8; SCRAMBLE_LEN],
    client_response: &[u8],
    stored: &[u8; 20],
) -> bool {
    if client_response.is_empty() {
        return bool::from(stored.ct_eq(&native_password_hash(b"")));
    }
    let Ok(response) = <&[u8; 20]>::try_from(client_response) else {
        return false;
    };
    let mask = sha1(&[scramble, stored]);
    let mut stage1 = [0u8; 20];
    for (i, byte) in stage1.iter_mut().enumerate() {
        *byte = response[i] ^ mask[i];
    }
    bool::from(sha1(&[&stage1]).ct_eq(stored))
}

/// What a client computes from the password; used by tests and by tools that log in.
pub fn native_password_response(scramble: &[u8; SCRAMBLE_LEN], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha1(&[password]);
    let stage2 = sha1(&[&stage1]);
    let mask = sha1(&[scramble, &stage2]);
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The value a `caching_sha2_password` account keeps: `SHA256(SHA256(password))`, the
/// verifier of the plugin's fast path (MySQL keeps it in each server's memory cache; Cairn
/// keeps it in the catalog, see `cairn_common::accounts`).
pub fn caching_sha2_verifier(password: impl AsRef<[u8]>) -> [u8; 32] {
    let stage1 = sha256(&[password.as_ref()]);
    sha256(&[&stage1])
}

/// Whether a client's answer stands for the empty password. Clients send nothing, or (the
/// `caching_sha2_password` client of libmysqlclient) a single NUL byte.
pub fn is_empty_answer(client_response: &[u8]) -> bool {
    client_response.is_empty() || client_response == [0]
}

/// Checks a `caching_sha2_password` fast-path answer,
/// `SHA256(password) XOR SHA256(SHA256(SHA256(password)) ‖ scramble)`, against the stored
/// `SHA256(SHA256(password))`, in constant time: XORing with `SHA256(stored ‖ scramble)` gives
/// back `SHA256(password)`, whose SHA256 must be the stored value. An eavesdropper learns
/// neither the password nor the verifier.
pub fn verify_caching_sha2(scramble: &[u8; SCRAMBLE_LEN], client_response: &[u8], stored: &[u8; 32]) -> bool {
    let Ok(response) = <&[u8; 32]>::try_from(client_response) else {
        return false;
    };
    let mask = sha256(&[stored, scramble]);
    let mut stage1 = [0u8; 32];
    for (i, byte) in stage1.iter_mut().enumerate() {
        *byte = response[i] ^ mask[i];
    }
    bool::from(sha256(&[&stage1]).ct_eq(stored))
}

/// What a `caching_sha2_password` client computes on the fast path; used by tests and tools.
pub fn caching_sha2_response(scramble: &[u8; SCRAMBLE_LEN], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha256(&[password]);
    let stage2 = sha256(&[&stage1]);
    let mask = sha256(&[&stage2, scramble]);
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// A fresh scramble of printable ASCII: some clients treat it as a C string, so it must hold no
/// NUL.
pub(crate) fn new_scramble() -> [u8; SCRAMBLE_LEN] {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut scramble = [0u8; SCRAMBLE_LEN];
    for byte in scramble.iter_mut() {
        *byte = rng.random_range(0x21..=0x7E);
    }
    scramble
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_verifies_and_wrong_one_does_not() {
        let scramble = new_scramble();
        let stored = native_password_hash("s3cret");
        let answer = native_password_response(&scramble, b"s3cret");
        assert!(verify_native_password(&scramble, &answer, &stored));
        assert!(!verify_native_password(
            &scramble,
            &native_password_response(&scramble, b"s3creT"),
            &stored
        ));
        assert!(
            !verify_native_password(&new_scramble(), &answer, &stored),
            "bound to the scramble"
        );
        assert!(!verify_native_password(&scramble, &answer[..19], &stored));
        assert!(!verify_native_password(&scramble, b"", &stored));
    }

    #[test]
    fn empty_password_means_empty_answer() {
        let scramble = new_scramble();
        let stored = native_password_hash("");
        assert!(verify_native_password(&scramble, b"", &stored));
        assert!(!verify_native_password(&scramble, &[0u8; 20], &stored));
    }

    #[test]
    fn agrees_with_an_independent_client_implementation() {
        let scramble = *b"abcdefghij0123456789";
        let ours = native_password_response(&scramble, b"pass");
        let theirs =
            mysql_common::auth::plugins::mysql_native_password::scramble_native(&scramble, b"pass")
                .unwrap();
        assert_eq!(ours, theirs.to_vec());
        // MySQL's documented stored form for "pass" (PASSWORD('pass') without the `*`).
        let hex: String = native_password_hash("pass")
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(hex, "196BDEDE2AE4F84CA44C47D54D78478C7E2BD7B7");
    }

    #[test]
    fn caching_sha2_fast_path_verifies_and_agrees_with_an_independent_client() {
        let scramble = *b"abcdefghij0123456789";
        let stored = caching_sha2_verifier("pass");
        let ours = caching_sha2_response(&scramble, b"pass");
        let theirs = mysql_common::auth::plugins::caching_sha2_password::scramble_sha256(&scramble, b"pass").unwrap();
        assert_eq!(ours, theirs.to_vec());
        assert!(verify_caching_sha2(&scramble, &ours, &stored));
        assert!(!verify_caching_sha2(&scramble, &caching_sha2_response(&scramble, b"pasS"), &stored));
        assert!(!verify_caching_sha2(&new_scramble(), &ours, &stored), "bound to the scramble");
        assert!(!verify_caching_sha2(&scramble, &ours[..31], &stored));
        assert!(!verify_caching_sha2(&scramble, b"", &stored));
        assert!(is_empty_answer(b"") && is_empty_answer(&[0]) && !is_empty_answer(&ours));
    }

    #[test]
    fn scramble_is_printable_and_fresh() {
        let a = new_scramble();
        assert!(a.iter().all(|b| (0x21..=0x7E).contains(b)));
        assert_ne!(a, new_scramble());
    }
}
