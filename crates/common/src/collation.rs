//! String comparison under the default collation.
//!
//! Cairn's default collation is `utf8mb4_general_ci`, MariaDB's default and what MySQL Cluster
//! users had: comparison is case-insensitive, accents on Latin letters are ignored
//! (`'é' = 'E'`), and trailing spaces do not count (`'a ' = 'a'`, PAD SPACE). Each character
//! maps to one weight; two strings are equal when their weight sequences are.
//!
//! Columns declared with a `_bin` collation, and binary strings, compare byte by byte.
//!
//! Left out: the full Unicode Collation Algorithm of `utf8mb4_0900_ai_ci` (contractions,
//! multi-level weights). Clients that ask for it get general_ci behaviour, which differs only
//! for a few scripts and for characters such as `ß` vs `ss`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// How two character strings compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Collation {
    /// Case- and accent-insensitive, PAD SPACE (utf8mb4_general_ci and friends).
    #[default]
    CaseInsensitive,
    /// Byte order of the UTF-8 encoding, PAD SPACE (utf8mb4_bin).
    Binary,
}

impl Collation {
    /// Maps a MySQL collation name to the behaviour Cairn gives it; None if unknown.
    pub fn from_name(name: &str) -> Option<Collation> {
        let lower = name.to_ascii_lowercase();
        if lower == "binary" || lower.ends_with("_bin") {
            return Some(Collation::Binary);
        }
        let known_prefix = ["utf8mb4_", "utf8mb3_", "utf8_", "latin1_", "ascii_"];
        (known_prefix.iter().any(|p| lower.starts_with(p)) && lower.ends_with("_ci"))
            .then_some(Collation::CaseInsensitive)
    }

    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Collation::Binary => trim_end_spaces(a).as_bytes().cmp(trim_end_spaces(b).as_bytes()),
            Collation::CaseInsensitive => {
                let a = trim_end_spaces(a).chars().map(weight);
                let b = trim_end_spaces(b).chars().map(weight);
                a.cmp(b)
            }
        }
    }

    pub fn equal(self, a: &str, b: &str) -> bool {
        self.compare(a, b) == Ordering::Equal
    }

    /// Appends the sort key of `s`: bytes that compare (as byte strings) the way the strings
    /// compare under this collation. Used for index keys and hashing; never contains 0x00
    /// except as escaped by the key encoder.
    pub fn sort_key(self, s: &str, out: &mut Vec<u8>) {
        let s = trim_end_spaces(s);
        match self {
            Collation::Binary => out.extend_from_slice(s.as_bytes()),
            Collation::CaseInsensitive => {
                for c in s.chars() {
                    // Weights are Unicode scalar values; UTF-8 encoding preserves their order.
                    let w = weight(c);
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(w.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

fn trim_end_spaces(s: &str) -> &str {
    s.trim_end_matches(' ')
}

/// The general_ci weight of a character: its upper-case form, with Latin-1 accented letters
/// folded onto their base letter as MySQL's general_ci table does.
pub fn weight(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let folded = match c {
        'À'..='Å' | 'à'..='å' => 'A',
        'Ç' | 'ç' => 'C',
        'È'..='Ë' | 'è'..='ë' => 'E',
        'Ì'..='Ï' | 'ì'..='ï' => 'I',
        'Ñ' | 'ñ' => 'N',
        'Ò'..='Ö' | 'ò'..='ö' => 'O',
        'Ù'..='Ü' | 'ù'..='ü' => 'U',
        'Ý' | 'ý' | 'ÿ' => 'Y',
        'ß' => 'S',
        'æ' => 'Æ',
        'ð' => 'Ð',
        'ø' => 'Ø',
        'þ' => 'Þ',
        _ => {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                // Characters whose upper case is several characters keep their own weight.
                _ => c,
            }
        }
    };
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_ci_equalities() {
        let ci = Collation::CaseInsensitive;
        assert!(ci.equal("Alice", "alice"));
        assert!(ci.equal("résumé", "RESUME"));
        assert!(ci.equal("a  ", "A"));
        assert!(!ci.equal(" a", "a"), "leading spaces count");
        assert!(ci.equal("straße", "STRASSE") == false, "one weight per character");
        assert_eq!(ci.compare("a", "B"), Ordering::Less);
        assert_eq!(ci.compare("b", "A"), Ordering::Greater);
    }

    #[test]
    fn binary_is_case_sensitive() {
        assert!(!Collation::Binary.equal("Alice", "alice"));
        assert!(Collation::Binary.equal("a ", "a"));
    }

    #[test]
    fn sort_keys_agree_with_compare() {
        let words = ["", "a", "A ", "b", "B", "é", "Z", "ä", "aa", "ab", "zeta", "Ω", "ω"];
        for coll in [Collation::CaseInsensitive, Collation::Binary] {
            for x in words {
                for y in words {
                    let (mut kx, mut ky) = (Vec::new(), Vec::new());
                    coll.sort_key(x, &mut kx);
                    coll.sort_key(y, &mut ky);
                    assert_eq!(kx.cmp(&ky), coll.compare(x, y), "{coll:?} {x:?} {y:?}");
                }
            }
        }
    }

    #[test]
    fn collation_names() {
        assert_eq!(Collation::from_name("utf8mb4_general_ci"), Some(Collation::CaseInsensitive));
        assert_eq!(Collation::from_name("utf8mb4_0900_ai_ci"), Some(Collation::CaseInsensitive));
        assert_eq!(Collation::from_name("utf8mb4_bin"), Some(Collation::Binary));
        assert_eq!(Collation::from_name("klingon_ci"), None);
    }
}
