//! The protocol's primitive encodings: fixed-width little-endian integers, length-encoded
//! integers and strings, NUL-terminated strings.
//!
//! Decoding goes through [`Reader`], a cursor over one packet payload whose every method checks
//! the remaining length and returns [`Malformed`] instead of panicking: payloads come straight
//! from the socket. Encoding appends to a `Vec<u8>` and cannot fail.

/// A payload ended early or held an impossible value. The string names what was being read, for
/// error messages and debugging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

pub(crate) type DecodeResult<T> = Result<T, Malformed>;

/// A checked cursor over a packet payload.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> DecodeResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(Malformed(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> DecodeResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> DecodeResult<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> DecodeResult<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub fn f32(&mut self, what: &'static str) -> DecodeResult<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    pub fn f64(&mut self, what: &'static str) -> DecodeResult<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A length-encoded integer. The NULL marker 0xFB and the error marker 0xFF are not
    /// integers and are rejected.
    pub fn lenenc_int(&mut self, what: &'static str) -> DecodeResult<u64> {
        match self.u8(what)? {
            first @ 0..=0xFA => Ok(u64::from(first)),
            0xFC => Ok(u64::from(self.u16(what)?)),
            0xFD => {
                let b = self.array::<3>(what)?;
                Ok(u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16)
            }
            0xFE => self.u64(what),
            _ => Err(Malformed(what)),
        }
    }

    /// A length-encoded byte string.
    pub fn lenenc_bytes(&mut self, what: &'static str) -> DecodeResult<&'a [u8]> {
        let len = self.lenenc_int(what)?;
        let len = usize::try_from(len).map_err(|_| Malformed(what))?;
        self.bytes(len, what)
    }

    /// Bytes up to (not including) the next NUL, which is consumed.
    pub fn null_terminated(&mut self, what: &'static str) -> DecodeResult<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let end = rest.iter().position(|&b| b == 0).ok_or(Malformed(what))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    /// Bytes up to the next NUL, or to the end of the payload when there is none. Some clients
    /// leave the terminator off the last string of a packet.
    pub fn null_terminated_or_rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(end) => {
                self.pos += end + 1;
                &rest[..end]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }

    /// Everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }
}

/// Appends a length-encoded integer.
pub(crate) fn put_lenenc_int(out: &mut Vec<u8>, value: u64) {
    if value < 0xFB {
        out.push(value as u8);
    } else if value <= 0xFFFF {
        out.push(0xFC);
        out.extend_from_slice(&(value as u16).to_le_bytes());
    } else if value <= 0xFF_FFFF {
        out.push(0xFD);
        out.extend_from_slice(&(value as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xFE);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Appends a length-encoded byte string.
pub(crate) fn put_lenenc_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_lenenc_int(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a NUL-terminated string. The caller guarantees `bytes` holds no NUL.
pub(crate) fn put_null_terminated(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_int_uses_the_shortest_form_at_every_boundary() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (250, &[0xFA]),
            (251, &[0xFC, 0xFB, 0x00]),
            (0xFFFF, &[0xFC, 0xFF, 0xFF]),
            (0x1_0000, &[0xFD, 0x00, 0x00, 0x01]),
            (0xFF_FFFF, &[0xFD, 0xFF, 0xFF, 0xFF]),
            (0x100_0000, &[0xFE, 0, 0, 0, 1, 0, 0, 0, 0]),
            (
                u64::MAX,
                &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ];
        for &(value, encoded) in cases {
            let mut out = Vec::new();
            put_lenenc_int(&mut out, value);
            assert_eq!(out, encoded, "encoding {value}");
            let mut reader = Reader::new(encoded);
            assert_eq!(reader.lenenc_int("test"), Ok(value), "decoding {value}");
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn lenenc_int_rejects_markers_and_truncation() {
        for bad in [
            &[0xFB][..],
            &[0xFF],
            &[],
            &[0xFC, 1],
            &[0xFD, 1, 2],
            &[0xFE, 1, 2, 3, 4, 5, 6, 7],
        ] {
            assert!(Reader::new(bad).lenenc_int("x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lenenc_bytes_round_trip_and_bounds() {
        for len in [0usize, 1, 250, 251, 0xFFFF, 0x1_0000] {
            let data = vec![0xA5u8; len];
            let mut out = Vec::new();
            put_lenenc_bytes(&mut out, &data);
            let mut reader = Reader::new(&out);
            assert_eq!(reader.lenenc_bytes("s").unwrap(), &data[..]);
            assert!(reader.is_empty());
            // One byte short must be an error, not a panic or a short read.
            let mut short = Reader::new(&out[..out.len() - 1]);
            if len > 0 {
                assert!(short.lenenc_bytes("s").is_err());
            }
        }
        // A length that does not fit in memory is an error.
        let huge = [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
        assert!(Reader::new(&huge).lenenc_bytes("s").is_err());
    }

    #[test]
    fn null_terminated_strings() {
        let mut reader = Reader::new(b"root\0db\0tail");
        assert_eq!(reader.null_terminated("user").unwrap(), b"root");
        assert_eq!(reader.null_terminated("db").unwrap(), b"db");
        assert!(reader.clone().null_terminated("x").is_err());
        assert_eq!(reader.null_terminated_or_rest(), b"tail");
        assert!(reader.is_empty());
    }

    #[test]
    fn fixed_width_integers_are_little_endian_and_checked() {
        let mut reader = Reader::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(reader.u16("a").unwrap(), 0x0201);
        assert_eq!(reader.u32("b").unwrap(), 0x0605_0403);
        assert!(reader.u16("c").is_err());
        assert_eq!(reader.u8("d").unwrap(), 7);
        assert!(reader.u8("e").is_err());
    }
}
