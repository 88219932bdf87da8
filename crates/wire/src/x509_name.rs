//! The subject and issuer names of an X.509 certificate, in the form MySQL compares with an
//! account's `REQUIRE SUBJECT '…'` / `REQUIRE ISSUER '…'`.
//!
//! MySQL prints a name with OpenSSL's `X509_NAME_oneline`: every attribute in certificate order
//! as `/SHORT=value` (`/C=US/ST=California/O=UC Berkeley/CN=exim`), and compares that text with
//! the account's string exactly. This module reads just enough DER to do the same: the
//! certificate's `tbsCertificate` up to its subject, and each name's attribute type and value.
//! The certificate has already been verified by rustls against the CA before it is read here, so
//! the parser only has to be safe on any input (every length is checked; it never panics), not
//! to validate the certificate.
//!
//! Left out: OpenSSL's escaping of unusual bytes (values outside printable ASCII and UTF-8 are
//! shown as `\xHH`, which OpenSSL does differently), and attribute types beyond the common ones
//! (others print as their dotted OID, as OpenSSL prints unknown ones).

/// A DER element: its tag and contents.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
}

/// Reads one element from the start of `input`; returns it and the rest.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // Multi-byte tags (low five bits all set) do not occur in the parts of a certificate read
    // here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((Element { tag, contents: &rest[..length] }, &rest[length..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version` of tbsCertificate.
const VERSION_TAG: u8 = 0xa0;

/// The dotted form of an OID's contents.
fn dotted(oid: &[u8]) -> Option<String> {
    let mut parts: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = value.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = if value < 80 { value / 40 } else { 2 };
                parts.push(first);
                parts.push(value - first * 40);
            } else {
                parts.push(value);
            }
            value = 0;
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}

/// OpenSSL's short names of the attribute types certificates use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.46" => "dnQualifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// An attribute value as text: the string types as they are (BMPString as UTF-16), anything
/// else byte by byte.
fn value_text(tag: u8, contents: &[u8]) -> String {
    const BMP_STRING: u8 = 0x1e;
    if tag == BMP_STRING {
        let units: Vec<u16> = contents.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    match std::str::from_utf8(contents) {
        Ok(s) => s.to_string(),
        Err(_) => contents.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b).to_string() } else { format!("\\x{b:02X}") }).collect(),
    }
}

/// A `Name` (SEQUENCE OF SET OF AttributeTypeAndValue) in `X509_NAME_oneline` form.
fn oneline(name: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while !rest.is_empty() {
        let (set, after) = element(rest)?;
        if set.tag != SET {
            return None;
        }
        rest = after;
        let mut attributes = set.contents;
        while !attributes.is_empty() {
            let (attribute, after) = element(attributes)?;
            if attribute.tag != SEQUENCE {
                return None;
            }
            attributes = after;
            let (oid, value) = element(attribute.contents)?;
            if oid.tag != OID {
                return None;
            }
            let (value, _) = element(value)?;
            let oid = dotted(oid.contents)?;
            out.push('/');
            out.push_str(short_name(&oid).unwrap_or(&oid));
            out.push('=');
            out.push_str(&value_text(value.tag, value.contents));
        }
    }
    Some(out)
}

/// The subject and issuer of a DER certificate, as MySQL shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateNames {
    pub subject: String,
    pub issuer: String,
}

/// Reads the subject and issuer of a DER certificate; `None` if it is not one.
pub fn certificate_names(der: &[u8]) -> Option<CertificateNames> {
    let (certificate, _) = element(der)?;
    if certificate.tag != SEQUENCE {
        return None;
    }
    let (tbs, _) = element(certificate.contents)?;
    if tbs.tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs.contents;
    let (first, after) = element(rest)?;
    if first.tag == VERSION_TAG {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject.
    let (_serial, after) = element(rest)?;
    let (_signature, after) = element(after)?;
    let (issuer, after) = element(after)?;
    let (_validity, after) = element(after)?;
    let (subject, _) = element(after)?;
    if issuer.tag != SEQUENCE || subject.tag != SEQUENCE {
        return None;
    }
    Some(CertificateNames { subject: oneline(subject.contents)?, issuer: oneline(issuer.contents)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_generated_certificate() {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name.push(DnType::CountryName, "US");
        ca.distinguished_name.push(DnType::OrganizationName, "UC Berkeley");
        ca.distinguished_name.push(DnType::CommonName, "CalMail CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["exim.example".to_string()]).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationalUnitName, "Mail");
        params.distinguished_name.push(DnType::CommonName, "exim");
        let cert = params.signed_by(&key, &*ca).expect("cert");
        let names = certificate_names(cert.der()).expect("names");
        assert_eq!(names.issuer, "/C=US/O=UC Berkeley/CN=CalMail CA");
        assert_eq!(names.subject, "/OU=Mail/CN=exim");
        let ca_certificate: &rcgen::Certificate = ca.as_ref();
        let ca_names = certificate_names(ca_certificate.der()).expect("names");
        assert_eq!(ca_names.subject, ca_names.issuer);
    }

    #[test]
    fn garbage_is_none_never_a_panic() {
        assert_eq!(certificate_names(&[]), None);
        assert_eq!(certificate_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(certificate_names(&[0x30, 0x03, 0x30, 0x01]), None);
        let mut seed: u32 = 1;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = certificate_names(&bytes);
        }
        assert_eq!(dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).as_deref(), Some("1.2.840.113549.1.9.1"));
    }
}
