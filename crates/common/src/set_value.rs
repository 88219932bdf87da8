//! Values of `SET('a','b',…)` columns.
//!
//! A SET column holds any subset of at most 64 members. As in MySQL, a value is seen by SQL as
//! the text of its members joined by commas, always in the order of the column definition
//! (`'b,a'` is stored and read back as `'a,b'`, a member given twice is kept once), and stored
//! as a bit mask: bit `i` stands for the `i`-th member. Comparisons use the text (so
//! `flags = 'b,a'` does not match a stored `'a,b'`, as in MySQL), and so do ORDER BY and
//! ordered indexes (keys are the text's collation sort key), so that an index scan and a sort
//! agree.
//!
//! Invariants: no member contains a comma (MySQL refuses such a member),
//! unique under the column's collation, and at most [`MAX_MEMBERS`]; a stored mask never has a
//! bit at or above the member count.
//!
//! Left out: MySQL sorts SET columns by their bit mask and gives it in numeric context
//! (`flags + 0`); Cairn sorts and evaluates the text. Account stores test members
//! (FIND_IN_SET, LIKE) rather than sort by them.

use crate::collation::Collation;

/// MySQL's limit on the members of one SET column.
pub const MAX_MEMBERS: usize = 64;

/// What reading a value as a member list found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The bit mask of the members that were recognised.
    pub mask: u64,
    /// Whether some part named no member (MySQL keeps the rest and reports a truncation).
    pub unknown: bool,
}

/// Reads a comma-separated member list (`''` is the empty set). Member names are matched with
/// the column collation, case-insensitively for Cairn's default collation.
pub fn parse_text(members: &[String], text: &str) -> Parsed {
    let mut parsed = Parsed { mask: 0, unknown: false };
    if text.is_empty() {
        return parsed;
    }
    for part in text.split(',') {
        // MySQL ignores trailing spaces of a member name as the PAD SPACE collations do.
        let part = part.trim_end_matches(' ');
        match members.iter().position(|m| Collation::CaseInsensitive.equal(m, part)) {
            Some(i) => parsed.mask |= 1u64 << i,
            None => parsed.unknown = true,
        }
    }
    parsed
}

/// Whether `mask` names only existing members.
pub fn mask_fits(members: &[String], mask: u64) -> bool {
    members.len() >= MAX_MEMBERS || mask >> members.len() == 0
}

/// The bit mask with every member set.
pub fn all_members(members: &[String]) -> u64 {
    if members.len() >= MAX_MEMBERS { u64::MAX } else { (1u64 << members.len()) - 1 }
}

/// The canonical text of a bit mask: the members in definition order, joined by commas.
/// Bits beyond the member list are ignored (they never reach storage, see [`mask_fits`]).
pub fn render(members: &[String], mask: u64) -> String {
    let mut out = String::new();
    for (i, m) in members.iter().enumerate().take(MAX_MEMBERS) {
        if mask & (1u64 << i) != 0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(m);
        }
    }
    out
}

/// The bit mask of a canonical stored text, or `None` when the text is not one (an unknown
/// member, a member out of order or repeated).
pub fn mask_of_canonical(members: &[String], text: &str) -> Option<u64> {
    let parsed = parse_text(members, text);
    if parsed.unknown || render(members, parsed.mask) != text {
        return None;
    }
    Some(parsed.mask)
}

/// Bytes of the stored bit mask: MySQL's 1, 2, 3, 4 or 8.
pub fn storage_bytes(member_count: usize) -> usize {
    match member_count.div_ceil(8) {
        0 | 1 => 1,
        2 => 2,
        3 => 3,
        4 => 4,
        _ => 8,
    }
}

/// The longest value in characters: every member and the commas between them (MySQL's column
/// length for SET).
pub fn max_chars(members: &[String]) -> u32 {
    let letters: usize = members.iter().map(|m| m.chars().count()).sum();
    (letters + members.len().saturating_sub(1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<String> {
        vec!["imap".into(), "pop".into(), "smtp".into()]
    }

    #[test]
    fn values_are_canonical_member_lists() {
        let m = members();
        let p = parse_text(&m, "SMTP,imap,imap");
        assert_eq!(p, Parsed { mask: 0b101, unknown: false });
        assert_eq!(render(&m, p.mask), "imap,smtp");
        assert_eq!(parse_text(&m, ""), Parsed { mask: 0, unknown: false });
        assert_eq!(parse_text(&m, "imap,web"), Parsed { mask: 1, unknown: true });
        assert_eq!(mask_of_canonical(&m, "imap,smtp"), Some(0b101));
        assert_eq!(mask_of_canonical(&m, "smtp,imap"), None, "out of definition order is not canonical");
        assert_eq!(mask_of_canonical(&m, "imap,imap"), None);
    }

    #[test]
    fn masks_and_sizes_follow_mysql() {
        let m = members();
        assert!(mask_fits(&m, 0b111));
        assert!(!mask_fits(&m, 0b1000));
        let all: Vec<String> = (0..64).map(|i| format!("m{i}")).collect();
        assert!(mask_fits(&all, u64::MAX));
        assert_eq!(storage_bytes(1), 1);
        assert_eq!(storage_bytes(8), 1);
        assert_eq!(storage_bytes(9), 2);
        assert_eq!(storage_bytes(24), 3);
        assert_eq!(storage_bytes(32), 4);
        assert_eq!(storage_bytes(33), 8);
        assert_eq!(storage_bytes(64), 8);
        assert_eq!(max_chars(&m), 4 + 3 + 4 + 2);
    }
}
