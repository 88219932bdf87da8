//! The connection phase: the server's greeting (HandshakeV10), the client's HandshakeResponse41
//! (or an SSLRequest, its first 32 bytes, when TLS is wanted), the AuthSwitchRequest, and the
//! body of COM_CHANGE_USER, which carries the same fields in another order.
//!
//! Parsing is lenient where real clients differ and strict where a mistake would change the
//! meaning: optional trailing fields (database, plugin name, connect attributes) may be missing
//! even when their capability bit is set; malformed connect attributes are dropped (they are
//! informational); a missing user or auth response is an error.

use crate::auth::{NATIVE_PASSWORD_PLUGIN, SCRAMBLE_LEN};
use crate::codec::{DecodeResult, Malformed, Reader, put_null_terminated};
use crate::constants::capability;

/// What the server offers; CLIENT_SSL is added when the connection has a TLS config. LOCAL_FILES lets the server ask for a client file (LOAD DATA LOCAL
/// INFILE: the request comes only as the answer to the client's own statement). Deliberately
/// absent: COMPRESS, SESSION_TRACK, QUERY_ATTRIBUTES (it would change the layout of COM_QUERY
/// and COM_STMT_EXECUTE; mysql2 sets it in its answer regardless, CLIENTS.md §2.1),
/// OPTIONAL_RESULTSET_METADATA, IGNORE_SPACE (a SQL-mode concern) and MariaDB's extended
/// capabilities such as STMT_BULK_OPERATIONS.
pub(crate) const SERVER_CAPABILITIES: u32 = capability::LONG_PASSWORD
    | capability::FOUND_ROWS
    | capability::LONG_FLAG
    | capability::CONNECT_WITH_DB
    | capability::LOCAL_FILES
    | capability::PROTOCOL_41
    | capability::TRANSACTIONS
    | capability::SECURE_CONNECTION
    | capability::MULTI_STATEMENTS
    | capability::MULTI_RESULTS
    | capability::PS_MULTI_RESULTS
    | capability::PLUGIN_AUTH
    | capability::CONNECT_ATTRS
    | capability::PLUGIN_AUTH_LENENC_CLIENT_DATA
    | capability::DEPRECATE_EOF;

/// Builds the greeting payload.
pub(crate) fn greeting(
    server_version: &str,
    capabilities: u32,
    connection_id: u32,
    scramble: &[u8; SCRAMBLE_LEN],
    collation: u8,
    status: u16,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(10); // protocol version
    // The version is a C string: a NUL inside it would end it early and shift every field.
    let version: Vec<u8> = server_version.bytes().filter(|&b| b != 0).collect();
    put_null_terminated(&mut out, &version);
    out.extend_from_slice(&connection_id.to_le_bytes());
    out.extend_from_slice(&scramble[..8]);
    out.push(0);
    out.extend_from_slice(&(capabilities as u16).to_le_bytes());
    out.push(collation);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
    out.push(SCRAMBLE_LEN as u8 + 1);
    out.extend_from_slice(&[0; 10]);
    out.extend_from_slice(&scramble[8..]);
    out.push(0);
    put_null_terminated(&mut out, NATIVE_PASSWORD_PLUGIN.as_bytes());
    out
}

/// The AuthSwitchRequest asking the client to answer with `plugin` (`mysql_native_password`
/// or `caching_sha2_password`) over the same scramble.
pub(crate) fn auth_switch_request(plugin: &str, scramble: &[u8; SCRAMBLE_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.push(0xFE);
    put_null_terminated(&mut out, plugin.as_bytes());
    out.extend_from_slice(scramble);
    out.push(0);
    out
}

/// The fields of a login attempt, from a handshake response or a COM_CHANGE_USER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Login {
    /// Capability bits as the client sent them (the connection limits them to the server's).
    pub capabilities: u32,
    pub collation: u16,
    pub user: Vec<u8>,
    pub auth_response: Vec<u8>,
    /// `None` when absent or empty (mysql-connector and mysql2 send an empty name).
    pub database: Option<Vec<u8>>,
    /// The plugin the client used for `auth_response`, if it named one.
    pub auth_plugin: Option<Vec<u8>>,
    pub connect_attrs: Vec<(String, String)>,
}

/// The first packet a client sends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClientHello {
    /// The client wants TLS before it sends its credentials.
    SslRequest {
        capabilities: u32,
    },
    Login(Login),
}

/// Why a handshake response was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HelloError {
    /// A pre-4.1 client: its handshake has another layout and a broken password scheme.
    Pre41,
    Malformed(Malformed),
}

impl From<Malformed> for HelloError {
    fn from(m: Malformed) -> Self {
        HelloError::Malformed(m)
    }
}

pub(crate) fn parse_handshake_response(payload: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader::new(payload);
    let low = r.u16("capabilities")?;
    if u32::from(low) & capability::PROTOCOL_41 == 0 {
        return Err(HelloError::Pre41);
    }
    let high = r.u16("capabilities")?;
    let capabilities = u32::from(low) | u32::from(high) << 16;
    let _max_packet = r.u32("max packet size")?;
    let collation = r.u8("collation")?;
    r.bytes(23, "filler")?;
    if r.is_empty() && capabilities & capability::SSL != 0 {
        return Ok(ClientHello::SslRequest { capabilities });
    }
    let user = r.null_terminated_or_rest().to_vec();
    let auth_response = if capabilities & capability::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_bytes("auth response")?.to_vec()
    } else if capabilities & capability::SECURE_CONNECTION != 0 {
        let len = r.u8("auth response")?;
        r.bytes(usize::from(len), "auth response")?.to_vec()
    } else {
        r.null_terminated("auth response")?.to_vec()
    };
    let mut login = Login {
        capabilities,
        collation: u16::from(collation),
        user,
        auth_response,
        ..Login::default()
    };
    if capabilities & capability::CONNECT_WITH_DB != 0 && !r.is_empty() {
        login.database = non_empty(r.null_terminated_or_rest());
    }
    read_plugin_and_attrs(&mut r, &mut login);
    Ok(ClientHello::Login(login))
}

/// Parses the body of COM_CHANGE_USER (after the command byte). `capabilities` are the ones
/// negotiated at connect time, which decide the layout.
pub(crate) fn parse_change_user(payload: &[u8], capabilities: u32) -> DecodeResult<Login> {
    let mut r = Reader::new(payload);
    let user = r.null_terminated("user")?.to_vec();
    let auth_response = if capabilities & capability::SECURE_CONNECTION != 0 {
        let len = r.u8("auth response")?;
        r.bytes(usize::from(len), "auth response")?.to_vec()
    } else {
        r.null_terminated("auth response")?.to_vec()
    };
    let database = non_empty(r.null_terminated_or_rest());
    let mut login = Login {
        capabilities,
        user,
        auth_response,
        database,
        ..Login::default()
    };
    if r.remaining() >= 2 {
        login.collation = r.u16("collation")?;
        read_plugin_and_attrs(&mut r, &mut login);
    }
    Ok(login)
}

fn read_plugin_and_attrs(r: &mut Reader<'_>, login: &mut Login) {
    if login.capabilities & capability::PLUGIN_AUTH != 0 && !r.is_empty() {
        login.auth_plugin = non_empty(r.null_terminated_or_rest());
    }
    if login.capabilities & capability::CONNECT_ATTRS != 0 && !r.is_empty() {
        login.connect_attrs = parse_connect_attrs(r).unwrap_or_default();
    }
}

fn parse_connect_attrs(r: &mut Reader<'_>) -> DecodeResult<Vec<(String, String)>> {
    let block = r.lenenc_bytes("connect attributes")?;
    let mut r = Reader::new(block);
    let mut attrs = Vec::new();
    while !r.is_empty() {
        let key = r.lenenc_bytes("attribute name")?;
        let value = r.lenenc_bytes("attribute value")?;
        attrs.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(attrs)
}

fn non_empty(bytes: &[u8]) -> Option<Vec<u8>> {
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{put_lenenc_bytes, put_lenenc_int};

    fn response(caps: u32, tail: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&caps.to_le_bytes());
        out.extend_from_slice(&(16u32 << 20).to_le_bytes());
        out.push(45);
        out.extend_from_slice(&[0; 23]);
        out.extend_from_slice(tail);
        out
    }

    const BASE: u32 = capability::PROTOCOL_41 | capability::SECURE_CONNECTION;

    #[test]
    fn greeting_layout() {
        let scramble = *b"ABCDEFGHIJKLMNOPQRST";
        let g = greeting("8.0.36-cairn", SERVER_CAPABILITIES, 7, &scramble, 255, 2);
        let mut r = Reader::new(&g);
        assert_eq!(r.u8("v").unwrap(), 10);
        assert_eq!(r.null_terminated("version").unwrap(), b"8.0.36-cairn");
        assert_eq!(r.u32("id").unwrap(), 7);
        assert_eq!(r.bytes(8, "s1").unwrap(), b"ABCDEFGH");
        assert_eq!(r.u8("filler").unwrap(), 0);
        let low = r.u16("caps").unwrap();
        assert_eq!(r.u8("charset").unwrap(), 255);
        assert_eq!(r.u16("status").unwrap(), 2);
        let high = r.u16("caps").unwrap();
        assert_eq!(u32::from(low) | u32::from(high) << 16, SERVER_CAPABILITIES);
        assert_eq!(r.u8("len").unwrap(), 21);
        r.bytes(10, "reserved").unwrap();
        assert_eq!(r.null_terminated("s2").unwrap(), b"IJKLMNOPQRST");
        assert_eq!(
            r.null_terminated("plugin").unwrap(),
            b"mysql_native_password"
        );
        assert!(r.is_empty());
        assert_eq!(
            SERVER_CAPABILITIES
                & (capability::SSL | capability::COMPRESS | capability::QUERY_ATTRIBUTES),
            0
        );
    }

    #[test]
    fn full_response_with_lenenc_auth_db_plugin_and_attrs() {
        let caps = BASE
            | capability::PLUGIN_AUTH_LENENC_CLIENT_DATA
            | capability::CONNECT_WITH_DB
            | capability::PLUGIN_AUTH
            | capability::CONNECT_ATTRS;
        let mut tail = b"root\0".to_vec();
        put_lenenc_bytes(&mut tail, &[9; 20]);
        tail.extend_from_slice(b"mail\0mysql_native_password\0");
        let mut attrs = Vec::new();
        put_lenenc_bytes(&mut attrs, b"_client_name");
        put_lenenc_bytes(&mut attrs, b"pymysql");
        put_lenenc_int(&mut tail, attrs.len() as u64);
        tail.extend_from_slice(&attrs);
        let ClientHello::Login(login) = parse_handshake_response(&response(caps, &tail)).unwrap()
        else {
            panic!("expected a login");
        };
        assert_eq!(login.user, b"root");
        assert_eq!(login.auth_response, [9; 20]);
        assert_eq!(login.database.as_deref(), Some(&b"mail"[..]));
        assert_eq!(
            login.auth_plugin.as_deref(),
            Some(&b"mysql_native_password"[..])
        );
        assert_eq!(
            login.connect_attrs,
            [("_client_name".to_string(), "pymysql".to_string())]
        );
        assert_eq!(login.collation, 45);
    }

    #[test]
    fn short_auth_form_empty_database_and_missing_tail() {
        // Go 1.5 / PHP style: one-byte auth length, no PLUGIN_AUTH_LENENC; connector-style
        // empty database; CONNECT_ATTRS and PLUGIN_AUTH set but nothing sent for them.
        let caps = BASE
            | capability::CONNECT_WITH_DB
            | capability::PLUGIN_AUTH
            | capability::CONNECT_ATTRS;
        let mut tail = b"bob\0".to_vec();
        tail.push(20);
        tail.extend_from_slice(&[1; 20]);
        tail.extend_from_slice(b"\0");
        let ClientHello::Login(login) = parse_handshake_response(&response(caps, &tail)).unwrap()
        else {
            panic!("expected a login");
        };
        assert_eq!(login.database, None);
        assert_eq!(login.auth_plugin, None);
        assert!(login.connect_attrs.is_empty());
    }

    #[test]
    fn ssl_request_pre41_and_truncation() {
        let ssl = response(BASE | capability::SSL, &[]);
        assert_eq!(
            parse_handshake_response(&ssl).unwrap(),
            ClientHello::SslRequest {
                capabilities: BASE | capability::SSL
            }
        );
        assert_eq!(
            parse_handshake_response(&[0x85, 0x01, 0, 0, 0]).unwrap_err(),
            HelloError::Pre41
        );
        let full = response(BASE, b"u\0\x14aaaaaaaaaaaaaaaaaaaa");
        for cut in 0..full.len() - 1 {
            // Every prefix is refused or parsed, never a panic; those that cut the auth
            // response short are refused.
            let result = parse_handshake_response(&full[..cut]);
            if cut > 32 + 2 {
                assert!(result.is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn malformed_attributes_are_dropped_not_fatal() {
        let caps = BASE | capability::PLUGIN_AUTH | capability::CONNECT_ATTRS;
        let tail = b"u\0\x00mysql_native_password\0\x05\x03ab".to_vec();
        let ClientHello::Login(login) = parse_handshake_response(&response(caps, &tail)).unwrap()
        else {
            panic!("expected a login");
        };
        assert!(login.connect_attrs.is_empty());
        assert_eq!(login.user, b"u");
    }

    #[test]
    fn change_user_body() {
        let caps = BASE | capability::PLUGIN_AUTH | capability::CONNECT_ATTRS;
        let mut body = b"alice\0".to_vec();
        body.push(20);
        body.extend_from_slice(&[3; 20]);
        body.extend_from_slice(b"db1\0");
        body.extend_from_slice(&224u16.to_le_bytes());
        body.extend_from_slice(b"caching_sha2_password\0");
        let login = parse_change_user(&body, caps).unwrap();
        assert_eq!(login.user, b"alice");
        assert_eq!(login.database.as_deref(), Some(&b"db1"[..]));
        assert_eq!(login.collation, 224);
        assert_eq!(
            login.auth_plugin.as_deref(),
            Some(&b"caching_sha2_password"[..])
        );
        assert!(parse_change_user(b"alice", caps).is_err());
        // The minimal old form: user, empty auth, no database.
        let login = parse_change_user(b"x\0\x00", caps).unwrap();
        assert_eq!((login.user.as_slice(), login.database), (&b"x"[..], None));
    }

    #[test]
    fn random_handshake_and_change_user_bodies_never_panic() {
        use rand::rngs::StdRng;
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..50_000 {
            let mut tail = vec![0u8; rng.random_range(0..80)];
            rng.fill_bytes(&mut tail);
            let caps = rng.random::<u32>()
                | if rng.random_bool(0.9) {
                    capability::PROTOCOL_41
                } else {
                    0
                };
            let _ = parse_handshake_response(&response(caps, &tail));
            let _ = parse_handshake_response(&tail);
            let _ = parse_change_user(&tail, caps);
        }
    }

    #[test]
    fn agrees_with_an_independent_client_serializer() {
        use mysql_common::constants::CapabilityFlags;
        use mysql_common::packets::{AuthPlugin, HandshakeResponse};
        use mysql_common::proto::MySerialize;
        let caps = CapabilityFlags::from_bits_truncate(SERVER_CAPABILITIES);
        let attrs = std::collections::HashMap::from([("k".to_string(), "v".to_string())]);
        let packet = HandshakeResponse::new(
            Some(&[7u8; 20][..]),
            (8, 0, 36),
            Some(&b"carol"[..]),
            Some(&b"calmail"[..]),
            Some(AuthPlugin::CachingSha2Password),
            caps,
            Some(attrs),
            1 << 24,
        );
        let mut bytes = Vec::new();
        packet.serialize(&mut bytes);
        let ClientHello::Login(login) = parse_handshake_response(&bytes).unwrap() else {
            panic!("expected a login");
        };
        assert_eq!(login.user, b"carol");
        assert_eq!(login.auth_response, [7; 20]);
        assert_eq!(login.database.as_deref(), Some(&b"calmail"[..]));
        assert_eq!(
            login.auth_plugin.as_deref(),
            Some(&b"caching_sha2_password"[..])
        );
        assert_eq!(login.connect_attrs, [("k".to_string(), "v".to_string())]);
    }
}
