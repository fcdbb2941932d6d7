//! The two RFB handshakes Accord terminates: as a client towards the local
//! VNC server ([`UpstreamHandshake`]) and as a server towards the
//! technician's viewer ([`TechnicianHandshake`]).
//!
//! Terminating both legs is what keeps the viewer from negotiating anything
//! with the server directly: it never sees the server's security types or
//! password challenge (VNC auth is answered by Accord; the technician was
//! authenticated by mutual TLS, so their leg offers None only), and the
//! shared flag sent upstream is always 1, so connecting never kicks the
//! clinician's own session off their desktop.
//!
//! Both drivers are sans-IO: `push` the bytes read, write out what
//! `take_output` returns. They cope with input split anywhere, and bytes
//! received past the end of the handshake are handed back as `leftover`
//! (they are the first bytes of the next phase and must not be lost).
//! Every length from the peer is bounded before it is waited for.

use super::auth::vnc_auth_response;
use super::messages::PixelFormat;
use super::wire::Reader;
use super::{MAX_NAME_LEN, MAX_REASON_LEN};

/// The protocol versions Accord speaks. Ordered, so the lower of two is
/// `min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V3_3,
    V3_7,
    V3_8,
}

impl Version {
    /// Parses a 12-byte ProtocolVersion message. 3.5 is read as 3.3 (as the
    /// specification asks: some old clients reported it wrongly) and any
    /// 3.x above 3.8 (e.g. Apple's "RFB 003.889") as 3.8.
    pub fn parse(raw: &[u8; 12]) -> Option<Version> {
        let [b'R', b'F', b'B', b' ', j2, j1, j0, b'.', n2, n1, n0, b'\n'] = *raw else {
            return None;
        };
        let number = |digits: [u8; 3]| -> Option<u16> {
            digits.iter().try_fold(0u16, |acc, &d| {
                d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
            })
        };
        let major = number([j2, j1, j0])?;
        let minor = number([n2, n1, n0])?;
        match (major, minor) {
            (3, 3) | (3, 5) => Some(Version::V3_3),
            (3, 7) => Some(Version::V3_7),
            (3, m) if m >= 8 => Some(Version::V3_8),
            _ => None,
        }
    }

    /// The ProtocolVersion message for this version.
    pub fn as_bytes(self) -> &'static [u8; 12] {
        match self {
            Version::V3_3 => b"RFB 003.003\n",
            Version::V3_7 => b"RFB 003.007\n",
            Version::V3_8 => b"RFB 003.008\n",
        }
    }
}

/// Everything that can stop a handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("unsupported RFB protocol version {0:?} (Accord speaks 3.3, 3.7 and 3.8)")]
    UnsupportedVersion(String),
    #[error("the VNC server refused the connection: {reason}")]
    ServerRefused { reason: String },
    #[error(
        "the VNC server offers security types {offered:?}, none of which Accord supports \
         (None = 1, VNC authentication = 2)"
    )]
    NoSupportedSecurity { offered: Vec<u8> },
    #[error(
        "the VNC server requires VNC authentication (offered security types {offered:?}) \
         but no VNC password is configured"
    )]
    PasswordRequired { offered: Vec<u8> },
    #[error("the VNC server chose security type {0}, which RFB 3.3 does not define")]
    InvalidSecurityType(u32),
    #[error("the VNC server rejected the authentication: {}", reason.as_deref().unwrap_or("no reason given"))]
    AuthFailed { reason: Option<String> },
    #[error("{what} of {len} bytes is over the {max}-byte limit")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the viewer chose security type {0}, but only None (1) was offered")]
    ViewerSecurityRefused(u8),
    #[error("the viewer sent {0} bytes before the server was ready, over the limit")]
    ViewerTooEager(usize),
    #[error("the handshake is already finished")]
    Finished,
    #[error("the handshake already failed")]
    Failed,
}

/// The server's ServerInit message, parsed, with its raw bytes (relayed to
/// the viewer unchanged: it must describe the framebuffer it will receive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    pub width: u16,
    pub height: u16,
    pub pixel_format: PixelFormat,
    pub name: Vec<u8>,
    pub raw: Vec<u8>,
}

impl ServerInit {
    /// Parses a complete ServerInit (24 bytes + name).
    pub fn parse(raw: &[u8]) -> Option<ServerInit> {
        let mut r = Reader::new(raw);
        let width = r.u16().ok()?;
        let height = r.u16().ok()?;
        let pixel_format = PixelFormat::read(&mut r).ok()?;
        let len = usize::try_from(r.u32().ok()?).ok()?;
        let name = r.take(len).ok()?.to_vec();
        (r.consumed() == raw.len()).then(|| ServerInit {
            width,
            height,
            pixel_format,
            name,
            raw: raw.to_vec(),
        })
    }
}

/// Progress of [`UpstreamHandshake::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamProgress {
    /// Write out `take_output()`, then read and push more.
    NeedMore,
    /// The session may start. `leftover` is what the server sent past
    /// ServerInit: relay it to the viewer after ServerInit.
    Done {
        server_init: ServerInit,
        leftover: Vec<u8>,
    },
}

/// Progress of [`TechnicianHandshake::push`] and
/// [`TechnicianHandshake::provide_server_init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TechnicianProgress {
    /// Write out `take_output()`, then read and push more.
    NeedMore,
    /// The viewer sent ClientInit and waits for ServerInit: call
    /// `provide_server_init` with the upstream server's.
    NeedServerInit,
    /// The session may start (write out `take_output()` first: it ends with
    /// ServerInit). `leftover` is what the viewer sent past ClientInit: feed
    /// it to the client framer before anything else.
    Done { leftover: Vec<u8> },
}

/// Why the server sent a reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReasonFor {
    Refused,
    AuthFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum UpState {
    Version,
    SecurityType33,
    SecurityCount,
    SecurityTypes(usize),
    Challenge,
    SecurityResult,
    ReasonLength(ReasonFor),
    Reason(ReasonFor, usize),
    ServerInitHeader,
    ServerInitName(Vec<u8>, usize),
    Done,
    Failed,
}

impl UpState {
    /// Bytes needed to take the next step (`None` when nothing will be
    /// read any more).
    fn need(&self) -> Option<usize> {
        Some(match self {
            UpState::Version => 12,
            UpState::SecurityType33 | UpState::SecurityResult | UpState::ReasonLength(_) => 4,
            UpState::SecurityCount => 1,
            UpState::SecurityTypes(n) | UpState::Reason(_, n) | UpState::ServerInitName(_, n) => *n,
            UpState::Challenge => 16,
            UpState::ServerInitHeader => 24,
            UpState::Done | UpState::Failed => return None,
        })
    }
}

/// Accord as an RFB client towards the local VNC server.
pub struct UpstreamHandshake {
    password: Option<Vec<u8>>,
    version: Option<Version>,
    security: Option<u8>,
    offered: Vec<u8>,
    state: UpState,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl std::fmt::Debug for UpstreamHandshake {
    // By hand, so the VNC password never lands in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamHandshake")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("version", &self.version)
            .field("security", &self.security)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// ClientInit with shared-flag = 1: never ask the server to disconnect the
/// clinician's own viewer.
const CLIENT_INIT_SHARED: u8 = 1;

impl UpstreamHandshake {
    /// `password`: the local server's VNC password, if one is configured.
    pub fn new(password: Option<Vec<u8>>) -> Self {
        Self {
            password,
            version: None,
            security: None,
            offered: Vec::new(),
            state: UpState::Version,
            buf: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Bytes to write to the server now (empty if none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The version agreed with the server, once known.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The security type used (1 None, 2 VNC authentication), once chosen.
    pub fn security_type(&self) -> Option<u8> {
        self.security
    }

    /// Feeds bytes read from the server.
    pub fn push(&mut self, input: &[u8]) -> Result<UpstreamProgress, HandshakeError> {
        match self.state {
            UpState::Done => return Err(HandshakeError::Finished),
            UpState::Failed => return Err(HandshakeError::Failed),
            _ => {}
        }
        self.buf.extend_from_slice(input);
        let result = self.run();
        if result.is_err() {
            self.state = UpState::Failed;
            self.buf = Vec::new();
        }
        result
    }

    fn run(&mut self) -> Result<UpstreamProgress, HandshakeError> {
        let mut pos = 0usize;
        while let Some(need) = self.state.need() {
            let Some(chunk) = pos.checked_add(need).and_then(|end| self.buf.get(pos..end)) else {
                self.buf.drain(..pos.min(self.buf.len()));
                return Ok(UpstreamProgress::NeedMore);
            };
            let chunk = chunk.to_vec();
            pos += need;
            if let Some(server_init) = self.step(&chunk)? {
                let leftover = self.buf.get(pos..).unwrap_or_default().to_vec();
                self.buf = Vec::new();
                return Ok(UpstreamProgress::Done {
                    server_init,
                    leftover,
                });
            }
        }
        Err(HandshakeError::Finished)
    }

    /// One transition on exactly `need()` bytes; `Some` when finished.
    fn step(&mut self, chunk: &[u8]) -> Result<Option<ServerInit>, HandshakeError> {
        let mut r = Reader::new(chunk);
        let state = std::mem::replace(&mut self.state, UpState::Failed);
        self.state = match state {
            UpState::Version => {
                let raw: [u8; 12] = r.array().map_err(|_| HandshakeError::Failed)?;
                let server = Version::parse(&raw).ok_or_else(|| unsupported(&raw))?;
                let version = server.min(Version::V3_8);
                self.version = Some(version);
                self.out.extend_from_slice(version.as_bytes());
                if version == Version::V3_3 {
                    UpState::SecurityType33
                } else {
                    UpState::SecurityCount
                }
            }
            UpState::SecurityType33 => match r.u32().map_err(|_| HandshakeError::Failed)? {
                0 => UpState::ReasonLength(ReasonFor::Refused),
                1 => {
                    self.security = Some(1);
                    self.client_init()
                }
                2 => {
                    self.offered = vec![2];
                    self.start_vnc_auth()?
                }
                other => return Err(HandshakeError::InvalidSecurityType(other)),
            },
            UpState::SecurityCount => match r.u8().map_err(|_| HandshakeError::Failed)? {
                0 => UpState::ReasonLength(ReasonFor::Refused),
                n => UpState::SecurityTypes(usize::from(n)),
            },
            UpState::SecurityTypes(_) => {
                self.offered = chunk.to_vec();
                if self.offered.contains(&1) {
                    self.security = Some(1);
                    self.out.push(1);
                    if self.version == Some(Version::V3_8) {
                        UpState::SecurityResult
                    } else {
                        self.client_init()
                    }
                } else if self.offered.contains(&2) {
                    let next = self.start_vnc_auth()?;
                    self.out.push(2);
                    next
                } else {
                    return Err(HandshakeError::NoSupportedSecurity {
                        offered: std::mem::take(&mut self.offered),
                    });
                }
            }
            UpState::Challenge => {
                let challenge: [u8; 16] = r.array().map_err(|_| HandshakeError::Failed)?;
                let password = self.password.as_deref().unwrap_or_default();
                self.out
                    .extend_from_slice(&vnc_auth_response(password, &challenge));
                UpState::SecurityResult
            }
            UpState::SecurityResult => match r.u32().map_err(|_| HandshakeError::Failed)? {
                0 => self.client_init(),
                // Only 3.8 explains a failure with a reason string.
                _ if self.version == Some(Version::V3_8) => {
                    UpState::ReasonLength(ReasonFor::AuthFailed)
                }
                _ => return Err(HandshakeError::AuthFailed { reason: None }),
            },
            UpState::ReasonLength(why) => {
                let len = r.u32().map_err(|_| HandshakeError::Failed)?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_REASON_LEN {
                    return Err(HandshakeError::TooLong {
                        what: "the server's failure reason",
                        len,
                        max: MAX_REASON_LEN,
                    });
                }
                UpState::Reason(why, len)
            }
            UpState::Reason(why, _) => {
                let reason = printable(chunk);
                return Err(match why {
                    ReasonFor::Refused => HandshakeError::ServerRefused { reason },
                    ReasonFor::AuthFailed => HandshakeError::AuthFailed {
                        reason: Some(reason),
                    },
                });
            }
            UpState::ServerInitHeader => {
                r.skip(20).map_err(|_| HandshakeError::Failed)?;
                let len = r.u32().map_err(|_| HandshakeError::Failed)?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_NAME_LEN {
                    return Err(HandshakeError::TooLong {
                        what: "the server's desktop name",
                        len,
                        max: MAX_NAME_LEN,
                    });
                }
                UpState::ServerInitName(chunk.to_vec(), len)
            }
            UpState::ServerInitName(mut raw, _) => {
                raw.extend_from_slice(chunk);
                let init = ServerInit::parse(&raw).ok_or(HandshakeError::Failed)?;
                self.state = UpState::Done;
                return Ok(Some(init));
            }
            UpState::Done | UpState::Failed => return Err(HandshakeError::Failed),
        };
        Ok(None)
    }

    fn start_vnc_auth(&mut self) -> Result<UpState, HandshakeError> {
        if self.password.is_none() {
            return Err(HandshakeError::PasswordRequired {
                offered: std::mem::take(&mut self.offered),
            });
        }
        self.security = Some(2);
        Ok(UpState::Challenge)
    }

    fn client_init(&mut self) -> UpState {
        self.out.push(CLIENT_INIT_SHARED);
        UpState::ServerInitHeader
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TechState {
    Version,
    SecurityChoice,
    ClientInit,
    AwaitServerInit,
    Done,
    Failed,
}

/// Most bytes the viewer may send between ClientInit and the moment the
/// upstream ServerInit is available (viewers normally wait; this only keeps
/// a pipelining or hostile one from making Accord buffer without bound).
pub const MAX_EARLY_VIEWER_BYTES: usize = 64 * 1024;

/// Accord as an RFB server towards the technician's viewer.
#[derive(Debug)]
pub struct TechnicianHandshake {
    state: TechState,
    version: Option<Version>,
    shared_flag: Option<u8>,
    server_init: Option<Vec<u8>>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Default for TechnicianHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl TechnicianHandshake {
    /// Starts the handshake: our ProtocolVersion (3.8) is queued at once,
    /// since the server speaks first.
    pub fn new() -> Self {
        Self {
            state: TechState::Version,
            version: None,
            shared_flag: None,
            server_init: None,
            buf: Vec::new(),
            out: Version::V3_8.as_bytes().to_vec(),
        }
    }

    /// Bytes to write to the viewer now (empty if none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The version the viewer chose, once known.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The shared flag the viewer asked for. Recorded for the audit only:
    /// upstream, Accord always asks for a shared session.
    pub fn viewer_shared_flag(&self) -> Option<u8> {
        self.shared_flag
    }

    /// Feeds bytes read from the viewer.
    pub fn push(&mut self, input: &[u8]) -> Result<TechnicianProgress, HandshakeError> {
        match self.state {
            TechState::Done => return Err(HandshakeError::Finished),
            TechState::Failed => return Err(HandshakeError::Failed),
            _ => {}
        }
        self.buf.extend_from_slice(input);
        self.checked_run()
    }

    /// Gives the upstream server's raw ServerInit, which ends the handshake
    /// once the viewer's ClientInit is in. May be called at any time before
    /// the handshake is done.
    pub fn provide_server_init(
        &mut self,
        raw: &[u8],
    ) -> Result<TechnicianProgress, HandshakeError> {
        match self.state {
            TechState::Done => return Err(HandshakeError::Finished),
            TechState::Failed => return Err(HandshakeError::Failed),
            _ => {}
        }
        self.server_init = Some(raw.to_vec());
        self.checked_run()
    }

    fn checked_run(&mut self) -> Result<TechnicianProgress, HandshakeError> {
        let result = self.run();
        if result.is_err() {
            self.state = TechState::Failed;
            self.buf = Vec::new();
        }
        result
    }

    fn run(&mut self) -> Result<TechnicianProgress, HandshakeError> {
        let mut pos = 0usize;
        loop {
            let need = match self.state {
                TechState::Version => 12,
                TechState::SecurityChoice | TechState::ClientInit => 1,
                TechState::AwaitServerInit => {
                    self.buf.drain(..pos.min(self.buf.len()));
                    let Some(init) = self.server_init.take() else {
                        if self.buf.len() > MAX_EARLY_VIEWER_BYTES {
                            return Err(HandshakeError::ViewerTooEager(self.buf.len()));
                        }
                        return Ok(TechnicianProgress::NeedServerInit);
                    };
                    self.out.extend_from_slice(&init);
                    self.state = TechState::Done;
                    return Ok(TechnicianProgress::Done {
                        leftover: std::mem::take(&mut self.buf),
                    });
                }
                TechState::Done | TechState::Failed => return Err(HandshakeError::Failed),
            };
            let Some(chunk) = pos.checked_add(need).and_then(|end| self.buf.get(pos..end)) else {
                self.buf.drain(..pos.min(self.buf.len()));
                return Ok(TechnicianProgress::NeedMore);
            };
            let chunk = chunk.to_vec();
            pos += need;
            self.step(&chunk)?;
        }
    }

    fn step(&mut self, chunk: &[u8]) -> Result<(), HandshakeError> {
        let mut r = Reader::new(chunk);
        self.state = match self.state {
            TechState::Version => {
                let raw: [u8; 12] = r.array().map_err(|_| HandshakeError::Failed)?;
                let version = Version::parse(&raw).ok_or_else(|| unsupported(&raw))?;
                self.version = Some(version);
                if version == Version::V3_3 {
                    // 3.3: the server decides; a u32 security type.
                    self.out.extend_from_slice(&1u32.to_be_bytes());
                    TechState::ClientInit
                } else {
                    // One security type offered: None. The technician was
                    // authenticated by mutual TLS before any RFB byte.
                    self.out.extend_from_slice(&[1, 1]);
                    TechState::SecurityChoice
                }
            }
            TechState::SecurityChoice => {
                let choice = r.u8().map_err(|_| HandshakeError::Failed)?;
                if choice != 1 {
                    if self.version == Some(Version::V3_8) {
                        let reason = b"Accord offers security type None only";
                        self.out.extend_from_slice(&1u32.to_be_bytes());
                        self.out
                            .extend_from_slice(&(reason.len() as u32).to_be_bytes());
                        self.out.extend_from_slice(reason);
                    }
                    return Err(HandshakeError::ViewerSecurityRefused(choice));
                }
                if self.version == Some(Version::V3_8) {
                    // 3.8 confirms even security type None.
                    self.out.extend_from_slice(&0u32.to_be_bytes());
                }
                TechState::ClientInit
            }
            TechState::ClientInit => {
                self.shared_flag = Some(r.u8().map_err(|_| HandshakeError::Failed)?);
                TechState::AwaitServerInit
            }
            TechState::AwaitServerInit | TechState::Done | TechState::Failed => {
                return Err(HandshakeError::Failed);
            }
        };
        Ok(())
    }
}

fn unsupported(raw: &[u8]) -> HandshakeError {
    HandshakeError::UnsupportedVersion(printable(raw))
}

/// Text from the peer made safe to log: invalid UTF-8 and control
/// characters become U+FFFD, so a reason string cannot forge log lines.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_init_bytes(name: &[u8]) -> Vec<u8> {
        let mut v = vec![0x07, 0x80, 0x04, 0x38];
        PixelFormat::RGB888.write_to(&mut v);
        v.extend_from_slice(&(name.len() as u32).to_be_bytes());
        v.extend_from_slice(name);
        v
    }

    /// One scripted server transcript: what the server sends, what Accord
    /// must answer in total, and the expected outcome.
    struct Script {
        password: Option<&'static [u8]>,
        server: Vec<u8>,
        client: Vec<u8>,
    }

    /// Runs `script` with the server bytes split in chunks of `chunk`,
    /// checking the collected output and returning the final result.
    fn run_upstream(
        script: &Script,
        chunk: usize,
    ) -> (Vec<u8>, Result<UpstreamProgress, HandshakeError>) {
        let mut hs = UpstreamHandshake::new(script.password.map(<[u8]>::to_vec));
        let mut out = hs.take_output();
        let mut last = Ok(UpstreamProgress::NeedMore);
        let mut pieces = script.server.chunks(chunk.max(1));
        for piece in pieces.by_ref() {
            last = hs.push(piece);
            out.extend(hs.take_output());
            if !matches!(last, Ok(UpstreamProgress::NeedMore)) {
                break;
            }
        }
        // What was not pushed yet would have been read after the handshake:
        // it belongs with the leftover.
        if let Ok(UpstreamProgress::Done { leftover, .. }) = &mut last {
            leftover.extend(pieces.flatten());
        }
        (out, last)
    }

    fn every_chunking(script: &Script, want: &Result<UpstreamProgress, HandshakeError>) {
        for chunk in [1, 2, 3, 5, 11, 4096] {
            let (out, got) = run_upstream(script, chunk);
            assert_eq!(&got, want, "chunk {chunk}");
            if got.is_ok() {
                assert_eq!(out, script.client, "chunk {chunk}");
            }
        }
    }

    fn done(name: &[u8], leftover: &[u8]) -> Result<UpstreamProgress, HandshakeError> {
        let raw = server_init_bytes(name);
        let server_init = ServerInit::parse(&raw).ok_or(HandshakeError::Failed);
        server_init.map(|server_init| UpstreamProgress::Done {
            server_init,
            leftover: leftover.to_vec(),
        })
    }

    const CHALLENGE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    /// DES response to CHALLENGE with password "password" (see auth.rs).
    const RESPONSE: [u8; 16] = [
        0xb8, 0x66, 0x92, 0x41, 0x25, 0xc8, 0xee, 0xbb, 0x9d, 0xeb, 0xc1, 0xdb, 0x61, 0xc5, 0x38,
        0xe2,
    ];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn upstream_3_8_none() {
        let init = server_init_bytes(b"desk");
        let script = Script {
            password: None,
            server: cat(&[
                b"RFB 003.008\n",
                &[2, 2, 1],
                &[0, 0, 0, 0],
                &init,
                &[0, 9, 9],
            ]),
            client: cat(&[b"RFB 003.008\n", &[1], &[1]]),
        };
        every_chunking(&script, &done(b"desk", &[0, 9, 9]));
        let mut hs = UpstreamHandshake::new(None);
        let _ = hs.push(&script.server);
        assert_eq!(hs.version(), Some(Version::V3_8));
        assert_eq!(hs.security_type(), Some(1));
        assert_eq!(hs.push(b"x"), Err(HandshakeError::Finished));
    }

    #[test]
    fn upstream_prefers_none_even_with_a_password() {
        let init = server_init_bytes(b"");
        let script = Script {
            password: Some(b"password"),
            server: cat(&[b"RFB 003.008\n", &[2, 2, 1], &[0, 0, 0, 0], &init]),
            client: cat(&[b"RFB 003.008\n", &[1], &[1]]),
        };
        every_chunking(&script, &done(b"", &[]));
    }

    #[test]
    fn upstream_3_8_vnc_auth() {
        let init = server_init_bytes(b"clinic-42");
        let script = Script {
            password: Some(b"password"),
            server: cat(&[b"RFB 003.008\n", &[2, 16, 2], &CHALLENGE, &[0; 4], &init]),
            client: cat(&[b"RFB 003.008\n", &[2], &RESPONSE, &[1]]),
        };
        every_chunking(&script, &done(b"clinic-42", &[]));
    }

    #[test]
    fn upstream_apple_3_889_is_answered_as_3_8() {
        let init = server_init_bytes(b"mac");
        let script = Script {
            password: Some(b"password"),
            server: cat(&[
                b"RFB 003.889\n",
                &[3, 30, 2, 35],
                &CHALLENGE,
                &[0; 4],
                &init,
            ]),
            client: cat(&[b"RFB 003.008\n", &[2], &RESPONSE, &[1]]),
        };
        every_chunking(&script, &done(b"mac", &[]));
    }

    #[test]
    fn upstream_3_7_none_has_no_security_result() {
        let init = server_init_bytes(b"x");
        let script = Script {
            password: None,
            server: cat(&[b"RFB 003.007\n", &[1, 1], &init]),
            client: cat(&[b"RFB 003.007\n", &[1], &[1]]),
        };
        every_chunking(&script, &done(b"x", &[]));
    }

    #[test]
    fn upstream_3_7_auth_failure_has_no_reason() {
        let script = Script {
            password: Some(b"password"),
            server: cat(&[b"RFB 003.007\n", &[1, 2], &CHALLENGE, &[0, 0, 0, 1]]),
            client: vec![],
        };
        every_chunking(&script, &Err(HandshakeError::AuthFailed { reason: None }));
    }

    #[test]
    fn upstream_3_8_auth_failure_reason() {
        let script = Script {
            password: Some(b"wrong"),
            server: cat(&[
                b"RFB 003.008\n",
                &[1, 2],
                &CHALLENGE,
                &[0, 0, 0, 1],
                &[0, 0, 0, 19],
                b"Authentication fail",
            ]),
            client: vec![],
        };
        every_chunking(
            &script,
            &Err(HandshakeError::AuthFailed {
                reason: Some("Authentication fail".into()),
            }),
        );
    }

    #[test]
    fn upstream_3_3_none_and_vnc_auth() {
        let init = server_init_bytes(b"old");
        let none = Script {
            password: None,
            server: cat(&[b"RFB 003.003\n", &[0, 0, 0, 1], &init]),
            client: cat(&[b"RFB 003.003\n", &[1]]),
        };
        every_chunking(&none, &done(b"old", &[]));
        let auth = Script {
            password: Some(b"password"),
            server: cat(&[b"RFB 003.003\n", &[0, 0, 0, 2], &CHALLENGE, &[0; 4], &init]),
            client: cat(&[b"RFB 003.003\n", &RESPONSE, &[1]]),
        };
        every_chunking(&auth, &done(b"old", &[]));
        let rfb_3_5 = Script {
            password: None,
            server: cat(&[b"RFB 003.005\n", &[0, 0, 0, 1], &init]),
            client: cat(&[b"RFB 003.003\n", &[1]]),
        };
        every_chunking(&rfb_3_5, &done(b"old", &[]));
    }

    #[test]
    fn upstream_3_3_failures() {
        let refused = Script {
            password: None,
            server: cat(&[b"RFB 003.003\n", &[0; 4], &[0, 0, 0, 4], b"busy"]),
            client: vec![],
        };
        every_chunking(
            &refused,
            &Err(HandshakeError::ServerRefused {
                reason: "busy".into(),
            }),
        );
        let invalid = Script {
            password: None,
            server: cat(&[b"RFB 003.003\n", &[0, 0, 0, 5]]),
            client: vec![],
        };
        every_chunking(&invalid, &Err(HandshakeError::InvalidSecurityType(5)));
        let no_password = Script {
            password: None,
            server: cat(&[b"RFB 003.003\n", &[0, 0, 0, 2]]),
            client: vec![],
        };
        every_chunking(
            &no_password,
            &Err(HandshakeError::PasswordRequired { offered: vec![2] }),
        );
        let auth_failed = Script {
            password: Some(b"password"),
            server: cat(&[b"RFB 003.003\n", &[0, 0, 0, 2], &CHALLENGE, &[0, 0, 0, 1]]),
            client: vec![],
        };
        every_chunking(
            &auth_failed,
            &Err(HandshakeError::AuthFailed { reason: None }),
        );
    }

    #[test]
    fn upstream_security_type_errors_name_the_offer() {
        let only_others = Script {
            password: Some(b"password"),
            server: cat(&[b"RFB 003.008\n", &[3, 5, 16, 19]]),
            client: vec![],
        };
        every_chunking(
            &only_others,
            &Err(HandshakeError::NoSupportedSecurity {
                offered: vec![5, 16, 19],
            }),
        );
        let needs_password = Script {
            password: None,
            server: cat(&[b"RFB 003.008\n", &[2, 19, 2]]),
            client: vec![],
        };
        let want = Err(HandshakeError::PasswordRequired {
            offered: vec![19, 2],
        });
        every_chunking(&needs_password, &want);
        let msg = want.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("[19, 2]") && msg.contains("no VNC password"),
            "{msg}"
        );
    }

    #[test]
    fn upstream_zero_security_types_gives_the_reason() {
        let script = Script {
            password: None,
            server: cat(&[b"RFB 003.008\n", &[0], &[0, 0, 0, 10], b"too\nmany\x1b["]),
            client: vec![],
        };
        // Control characters from the server are neutralised for the log.
        every_chunking(
            &script,
            &Err(HandshakeError::ServerRefused {
                reason: "too\u{fffd}many\u{fffd}[".into(),
            }),
        );
    }

    #[test]
    fn upstream_bounds_reason_and_name() {
        let reason = Script {
            password: None,
            server: cat(&[b"RFB 003.008\n", &[0], &u32::MAX.to_be_bytes()]),
            client: vec![],
        };
        every_chunking(
            &reason,
            &Err(HandshakeError::TooLong {
                what: "the server's failure reason",
                len: u32::MAX as usize,
                max: MAX_REASON_LEN,
            }),
        );
        let mut init = server_init_bytes(b"");
        let big = (MAX_NAME_LEN as u32 + 1).to_be_bytes();
        init.truncate(20);
        init.extend_from_slice(&big);
        let name = Script {
            password: None,
            server: cat(&[b"RFB 003.008\n", &[1, 1], &[0; 4], &init]),
            client: vec![],
        };
        every_chunking(
            &name,
            &Err(HandshakeError::TooLong {
                what: "the server's desktop name",
                len: MAX_NAME_LEN + 1,
                max: MAX_NAME_LEN,
            }),
        );
    }

    #[test]
    fn versions() {
        let parse = |s: &[u8; 12]| Version::parse(s);
        assert_eq!(parse(b"RFB 003.003\n"), Some(Version::V3_3));
        assert_eq!(parse(b"RFB 003.007\n"), Some(Version::V3_7));
        assert_eq!(parse(b"RFB 003.008\n"), Some(Version::V3_8));
        assert_eq!(parse(b"RFB 003.889\n"), Some(Version::V3_8));
        for bad in [
            b"RFB 003.006\n",
            b"RFB 004.001\n",
            b"RFB 005.000\n",
            b"RFB 003.00x\n",
            b"RFB 003.008 ",
            b"XYZ 003.008\n",
            b"RFB 002.008\n",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let script = Script {
            password: None,
            server: b"RFB 004.001\n".to_vec(),
            client: vec![],
        };
        every_chunking(
            &script,
            &Err(HandshakeError::UnsupportedVersion(
                "RFB 004.001\u{fffd}".into(),
            )),
        );
    }

    #[test]
    fn upstream_errors_are_sticky() {
        let mut hs = UpstreamHandshake::new(None);
        assert!(hs.push(b"HTTP/1.1 200").is_err());
        assert_eq!(hs.push(b"RFB 003.008\n"), Err(HandshakeError::Failed));
    }

    /// Runs a viewer transcript against TechnicianHandshake, providing the
    /// ServerInit before or after the viewer's bytes.
    fn run_technician(
        viewer: &[u8],
        chunk: usize,
        init_first: bool,
    ) -> (Vec<u8>, Result<TechnicianProgress, HandshakeError>) {
        let init = server_init_bytes(b"desk");
        let mut hs = TechnicianHandshake::new();
        let mut out = hs.take_output();
        let mut last = Ok(TechnicianProgress::NeedMore);
        if init_first {
            last = hs.provide_server_init(&init);
        }
        let mut pieces = viewer.chunks(chunk.max(1));
        for piece in pieces.by_ref() {
            last = hs.push(piece);
            out.extend(hs.take_output());
            if !matches!(
                last,
                Ok(TechnicianProgress::NeedMore | TechnicianProgress::NeedServerInit)
            ) {
                break;
            }
        }
        if !init_first && last == Ok(TechnicianProgress::NeedServerInit) {
            last = hs.provide_server_init(&init);
            out.extend(hs.take_output());
        }
        if let Ok(TechnicianProgress::Done { leftover }) = &mut last {
            leftover.extend(pieces.flatten());
        }
        (out, last)
    }

    fn technician_case(viewer: &[u8], want_out: &[u8], leftover: &[u8]) {
        for chunk in [1, 2, 7, 4096] {
            for init_first in [false, true] {
                let (out, got) = run_technician(viewer, chunk, init_first);
                assert_eq!(
                    got,
                    Ok(TechnicianProgress::Done {
                        leftover: leftover.to_vec()
                    }),
                    "chunk {chunk} init_first {init_first}"
                );
                assert_eq!(out, want_out, "chunk {chunk} init_first {init_first}");
            }
        }
    }

    #[test]
    fn technician_3_8() {
        let init = server_init_bytes(b"desk");
        let pipelined = [2, 0, 0, 1, 0, 0, 0, 0];
        technician_case(
            &cat(&[b"RFB 003.008\n", &[1], &[0], &pipelined]),
            &cat(&[b"RFB 003.008\n", &[1, 1], &[0; 4], &init]),
            &pipelined,
        );
        technician_case(
            &cat(&[b"RFB 003.889\n", &[1], &[1]]),
            &cat(&[b"RFB 003.008\n", &[1, 1], &[0; 4], &init]),
            &[],
        );
    }

    #[test]
    fn technician_3_7_and_3_3() {
        let init = server_init_bytes(b"desk");
        technician_case(
            &cat(&[b"RFB 003.007\n", &[1], &[0]]),
            &cat(&[b"RFB 003.008\n", &[1, 1], &init]),
            &[],
        );
        technician_case(
            &cat(&[b"RFB 003.003\n", &[1]]),
            &cat(&[b"RFB 003.008\n", &[0, 0, 0, 1], &init]),
            &[],
        );
    }

    #[test]
    fn technician_records_but_ignores_shared_flag() {
        let mut hs = TechnicianHandshake::new();
        let _ = hs.push(&cat(&[b"RFB 003.008\n", &[1], &[0]]));
        assert_eq!(hs.viewer_shared_flag(), Some(0));
        assert_eq!(hs.version(), Some(Version::V3_8));
    }

    #[test]
    fn technician_refuses_other_security_types() {
        let mut hs = TechnicianHandshake::new();
        let got = hs.push(&cat(&[b"RFB 003.008\n", &[2]]));
        assert_eq!(got, Err(HandshakeError::ViewerSecurityRefused(2)));
        let out = hs.take_output();
        assert!(out.ends_with(b"Accord offers security type None only"));
        assert_eq!(hs.push(&[1]), Err(HandshakeError::Failed));
        let mut hs = TechnicianHandshake::new();
        assert!(matches!(
            hs.push(b"RFB 004.000\n"),
            Err(HandshakeError::UnsupportedVersion(_))
        ));
    }

    #[test]
    fn technician_bounds_early_bytes() {
        let mut hs = TechnicianHandshake::new();
        assert_eq!(
            hs.push(&cat(&[b"RFB 003.008\n", &[1], &[1]])),
            Ok(TechnicianProgress::NeedServerInit)
        );
        assert_eq!(
            hs.push(&vec![3; MAX_EARLY_VIEWER_BYTES]),
            Ok(TechnicianProgress::NeedServerInit)
        );
        assert_eq!(
            hs.push(&[3]),
            Err(HandshakeError::ViewerTooEager(MAX_EARLY_VIEWER_BYTES + 1))
        );
    }

    #[test]
    fn server_init_parse() {
        let raw = server_init_bytes(b"abc");
        let Some(init) = ServerInit::parse(&raw) else {
            panic!("ServerInit did not parse");
        };
        assert_eq!((init.width, init.height), (1920, 1080));
        assert_eq!(init.name, b"abc");
        assert_eq!(init.raw, raw);
        assert_eq!(ServerInit::parse(&raw[..raw.len() - 1]), None);
    }
}
