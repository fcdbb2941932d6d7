//! The client→server RFB messages Accord understands, parsed into fields and
//! re-serialised from those fields.
//!
//! Re-serialising (instead of copying the viewer's bytes) is what makes the
//! filter's decision the server's reality: padding is written as zero, flags
//! are normalised, and every length field is recomputed from the data, so a
//! forwarded message can never carry bytes the filter did not look at.
//! Parsing follows RFC 6143 and the community rfbproto specification; every
//! length is checked against its cap before any byte of the body is awaited.

pub use super::kind::MessageKind;
use super::verdict::EndWhy;
use super::wire::{Reader, Short};
use super::{MAX_CUT_TEXT, MAX_ENCODINGS, MAX_FENCE_PAYLOAD};

/// Pixel format as carried by SetPixelFormat and ServerInit (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub true_colour: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

impl PixelFormat {
    /// 32 bits per pixel, depth 24, little-endian true colour (`rgb888`):
    /// what a depth-24 X server offers, and what most viewers ask for.
    pub const RGB888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Short> {
        let pf = Self {
            bits_per_pixel: r.u8()?,
            depth: r.u8()?,
            big_endian: r.u8()? != 0,
            true_colour: r.u8()? != 0,
            red_max: r.u16()?,
            green_max: r.u16()?,
            blue_max: r.u16()?,
            red_shift: r.u8()?,
            green_shift: r.u8()?,
            blue_shift: r.u8()?,
        };
        r.skip(3)?;
        Ok(pf)
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.bits_per_pixel,
            self.depth,
            u8::from(self.big_endian),
            u8::from(self.true_colour),
        ]);
        out.extend_from_slice(&self.red_max.to_be_bytes());
        out.extend_from_slice(&self.green_max.to_be_bytes());
        out.extend_from_slice(&self.blue_max.to_be_bytes());
        out.extend_from_slice(&[self.red_shift, self.green_shift, self.blue_shift, 0, 0, 0]);
    }
}

/// One screen of a SetDesktopSize request (16 bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    pub id: u32,
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    pub flags: u32,
}

/// QEMU audio client message operations (QEMU message sub-type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuAudio {
    Enable,
    Disable,
    SetFormat {
        sample_format: u8,
        channels: u8,
        frequency: u32,
    },
}

/// A fully parsed client→server message. Only the fields are kept: the
/// bytes the viewer sent are gone once a message is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// Type 0.
    SetPixelFormat(PixelFormat),
    /// Type 2: the encodings the viewer supports, pseudo-encodings included.
    SetEncodings(Vec<i32>),
    /// Type 3.
    FramebufferUpdateRequest {
        incremental: bool,
        x: u16,
        y: u16,
        width: u16,
        height: u16,
    },
    /// Type 4.
    KeyEvent { down: bool, key: u32 },
    /// Type 5.
    PointerEvent { buttons: u8, x: u16, y: u16 },
    /// Type 6 with a non-negative length: Latin-1 text.
    ClientCutText(Vec<u8>),
    /// Type 6 with a negative length (Extended Clipboard pseudo-encoding):
    /// a flags word and the rest of the payload, kept opaque.
    ExtendedClipboard { flags: u32, data: Vec<u8> },
    /// Type 150.
    EnableContinuousUpdates {
        enable: bool,
        x: u16,
        y: u16,
        width: u16,
        height: u16,
    },
    /// Type 248.
    ClientFence { flags: u32, payload: Vec<u8> },
    /// Type 250: power actions (shutdown, reboot, reset) on the server host.
    Xvp { version: u8, code: u8 },
    /// Type 251.
    SetDesktopSize {
        width: u16,
        height: u16,
        screens: Vec<Screen>,
    },
    /// Type 253, General Input Interface: opaque payload whose length
    /// prefix uses the endianness given by the sub-type byte's high bit.
    Gii {
        big_endian: bool,
        sub_type: u8,
        payload: Vec<u8>,
    },
    /// Type 255 sub-type 0: QEMU extended key event (keysym + scancode).
    QemuKeyEvent {
        down: bool,
        keysym: u32,
        keycode: u32,
    },
    /// Type 255 sub-type 1: QEMU audio control.
    QemuAudio(QemuAudio),
}

/// Why a parse attempt did not produce a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// The message is not complete yet; nothing was consumed.
    Incomplete,
    /// The stream cannot be followed safely any more.
    End(EndWhy),
}

impl From<Short> for ParseError {
    fn from(_: Short) -> Self {
        ParseError::Incomplete
    }
}

impl ClientMessage {
    pub fn kind(&self) -> MessageKind {
        match self {
            ClientMessage::SetPixelFormat(_) => MessageKind::SetPixelFormat,
            ClientMessage::SetEncodings(_) => MessageKind::SetEncodings,
            ClientMessage::FramebufferUpdateRequest { .. } => MessageKind::FramebufferUpdateRequest,
            ClientMessage::KeyEvent { .. } => MessageKind::KeyEvent,
            ClientMessage::PointerEvent { .. } => MessageKind::PointerEvent,
            ClientMessage::ClientCutText(_) => MessageKind::ClientCutText,
            ClientMessage::ExtendedClipboard { .. } => MessageKind::ExtendedClipboard,
            ClientMessage::EnableContinuousUpdates { .. } => MessageKind::EnableContinuousUpdates,
            ClientMessage::ClientFence { .. } => MessageKind::ClientFence,
            ClientMessage::Xvp { .. } => MessageKind::Xvp,
            ClientMessage::SetDesktopSize { .. } => MessageKind::SetDesktopSize,
            ClientMessage::Gii { .. } => MessageKind::Gii,
            ClientMessage::QemuKeyEvent { .. } => MessageKind::QemuKeyEvent,
            ClientMessage::QemuAudio(_) => MessageKind::QemuAudio,
        }
    }

    /// Parses one message from the front of `buf`, returning it with the
    /// number of bytes it occupied. Caps are checked as soon as the length
    /// field is read, before the body is awaited, so an over-long message
    /// ends the session at once instead of making Accord buffer it.
    pub(crate) fn parse(buf: &[u8]) -> Result<(ClientMessage, usize), ParseError> {
        let mut r = Reader::new(buf);
        let msg = match r.u8()? {
            0 => {
                r.skip(3)?;
                ClientMessage::SetPixelFormat(PixelFormat::read(&mut r)?)
            }
            2 => {
                r.skip(1)?;
                let count = usize::from(r.u16()?);
                if count > MAX_ENCODINGS {
                    return Err(ParseError::End(EndWhy::TooLong {
                        kind: MessageKind::SetEncodings,
                        len: count,
                        max: MAX_ENCODINGS,
                    }));
                }
                // Take the whole list first so a list arriving byte by byte
                // is not re-decoded entry by entry on every push.
                let body = r.take(count * 4)?;
                let list = body
                    .chunks_exact(4)
                    .map(|c| {
                        let mut e = Reader::new(c);
                        e.i32()
                    })
                    .collect::<Result<Vec<i32>, Short>>()?;
                ClientMessage::SetEncodings(list)
            }
            3 => ClientMessage::FramebufferUpdateRequest {
                incremental: r.u8()? != 0,
                x: r.u16()?,
                y: r.u16()?,
                width: r.u16()?,
                height: r.u16()?,
            },
            4 => {
                let down = r.u8()? != 0;
                r.skip(2)?;
                ClientMessage::KeyEvent {
                    down,
                    key: r.u32()?,
                }
            }
            5 => ClientMessage::PointerEvent {
                buttons: r.u8()?,
                x: r.u16()?,
                y: r.u16()?,
            },
            6 => {
                r.skip(3)?;
                let length = r.i32()?;
                let len = usize::try_from(length.unsigned_abs()).unwrap_or(usize::MAX);
                if len > MAX_CUT_TEXT {
                    let kind = if length < 0 {
                        MessageKind::ExtendedClipboard
                    } else {
                        MessageKind::ClientCutText
                    };
                    return Err(ParseError::End(EndWhy::TooLong {
                        kind,
                        len,
                        max: MAX_CUT_TEXT,
                    }));
                }
                if length >= 0 {
                    ClientMessage::ClientCutText(r.take(len)?.to_vec())
                } else {
                    // The extended format always starts with a flags word.
                    if len < 4 {
                        return Err(ParseError::End(EndWhy::Malformed {
                            kind: MessageKind::ExtendedClipboard,
                            why: "payload shorter than its flags word",
                        }));
                    }
                    let flags = r.u32()?;
                    ClientMessage::ExtendedClipboard {
                        flags,
                        data: r.take(len - 4)?.to_vec(),
                    }
                }
            }
            150 => ClientMessage::EnableContinuousUpdates {
                enable: r.u8()? != 0,
                x: r.u16()?,
                y: r.u16()?,
                width: r.u16()?,
                height: r.u16()?,
            },
            248 => {
                r.skip(3)?;
                let flags = r.u32()?;
                let len = usize::from(r.u8()?);
                if len > MAX_FENCE_PAYLOAD {
                    return Err(ParseError::End(EndWhy::TooLong {
                        kind: MessageKind::ClientFence,
                        len,
                        max: MAX_FENCE_PAYLOAD,
                    }));
                }
                ClientMessage::ClientFence {
                    flags,
                    payload: r.take(len)?.to_vec(),
                }
            }
            250 => {
                r.skip(1)?;
                ClientMessage::Xvp {
                    version: r.u8()?,
                    code: r.u8()?,
                }
            }
            251 => {
                r.skip(1)?;
                let width = r.u16()?;
                let height = r.u16()?;
                let count = usize::from(r.u8()?);
                r.skip(1)?;
                let body = r.take(count * 16)?;
                let screens = body
                    .chunks_exact(16)
                    .map(|c| {
                        let mut s = Reader::new(c);
                        Ok(Screen {
                            id: s.u32()?,
                            x: s.u16()?,
                            y: s.u16()?,
                            width: s.u16()?,
                            height: s.u16()?,
                            flags: s.u32()?,
                        })
                    })
                    .collect::<Result<Vec<Screen>, Short>>()?;
                ClientMessage::SetDesktopSize {
                    width,
                    height,
                    screens,
                }
            }
            253 => {
                let endian_and_sub_type = r.u8()?;
                let big_endian = endian_and_sub_type & 0x80 != 0;
                let raw_len = r.array::<2>()?;
                let len = usize::from(if big_endian {
                    u16::from_be_bytes(raw_len)
                } else {
                    u16::from_le_bytes(raw_len)
                });
                ClientMessage::Gii {
                    big_endian,
                    sub_type: endian_and_sub_type & 0x7f,
                    payload: r.take(len)?.to_vec(),
                }
            }
            255 => match r.u8()? {
                0 => ClientMessage::QemuKeyEvent {
                    down: r.u16()? != 0,
                    keysym: r.u32()?,
                    keycode: r.u32()?,
                },
                1 => match r.u16()? {
                    0 => ClientMessage::QemuAudio(QemuAudio::Enable),
                    1 => ClientMessage::QemuAudio(QemuAudio::Disable),
                    2 => ClientMessage::QemuAudio(QemuAudio::SetFormat {
                        sample_format: r.u8()?,
                        channels: r.u8()?,
                        frequency: r.u32()?,
                    }),
                    op => return Err(ParseError::End(EndWhy::UnknownQemuAudioOp(op))),
                },
                sub => return Err(ParseError::End(EndWhy::UnknownQemuSubType(sub))),
            },
            other => return Err(ParseError::End(EndWhy::UnknownType(other))),
        };
        Ok((msg, r.consumed()))
    }

    /// Serialises the message from its fields. Padding is zero and every
    /// length is recomputed. Variable-length fields longer than the framer's
    /// caps (only possible for hand-built messages; parsed ones are within
    /// them) are truncated to the cap, so whatever Accord writes is a message
    /// its own framer, and the server, frame identically.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            ClientMessage::SetPixelFormat(pf) => {
                out.extend_from_slice(&[0, 0, 0, 0]);
                pf.write_to(out);
            }
            ClientMessage::SetEncodings(list) => {
                let list = list.get(..MAX_ENCODINGS).unwrap_or(list);
                out.extend_from_slice(&[2, 0]);
                put_u16(out, list.len());
                for e in list {
                    out.extend_from_slice(&e.to_be_bytes());
                }
            }
            ClientMessage::FramebufferUpdateRequest {
                incremental,
                x,
                y,
                width,
                height,
            } => {
                out.extend_from_slice(&[3, u8::from(*incremental)]);
                for v in [x, y, width, height] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            ClientMessage::KeyEvent { down, key } => {
                out.extend_from_slice(&[4, u8::from(*down), 0, 0]);
                out.extend_from_slice(&key.to_be_bytes());
            }
            ClientMessage::PointerEvent { buttons, x, y } => {
                out.extend_from_slice(&[5, *buttons]);
                out.extend_from_slice(&x.to_be_bytes());
                out.extend_from_slice(&y.to_be_bytes());
            }
            ClientMessage::ClientCutText(text) => {
                let text = text.get(..MAX_CUT_TEXT).unwrap_or(text);
                out.extend_from_slice(&[6, 0, 0, 0]);
                put_u32(out, text.len());
                out.extend_from_slice(text);
            }
            ClientMessage::ExtendedClipboard { flags, data } => {
                let max = MAX_CUT_TEXT - 4;
                let data = data.get(..max).unwrap_or(data);
                // Within the cap, so the negation cannot overflow an i32.
                let len = i32::try_from(data.len() + 4).unwrap_or(i32::MAX);
                out.extend_from_slice(&[6, 0, 0, 0]);
                out.extend_from_slice(&(-len).to_be_bytes());
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(data);
            }
            ClientMessage::EnableContinuousUpdates {
                enable,
                x,
                y,
                width,
                height,
            } => {
                out.extend_from_slice(&[150, u8::from(*enable)]);
                for v in [x, y, width, height] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            ClientMessage::ClientFence { flags, payload } => {
                let payload = payload.get(..MAX_FENCE_PAYLOAD).unwrap_or(payload);
                out.extend_from_slice(&[248, 0, 0, 0]);
                out.extend_from_slice(&flags.to_be_bytes());
                out.push(u8::try_from(payload.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(payload);
            }
            ClientMessage::Xvp { version, code } => {
                out.extend_from_slice(&[250, 0, *version, *code]);
            }
            ClientMessage::SetDesktopSize {
                width,
                height,
                screens,
            } => {
                let screens = screens.get(..usize::from(u8::MAX)).unwrap_or(screens);
                out.extend_from_slice(&[251, 0]);
                out.extend_from_slice(&width.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
                out.push(u8::try_from(screens.len()).unwrap_or(u8::MAX));
                out.push(0);
                for s in screens {
                    out.extend_from_slice(&s.id.to_be_bytes());
                    for v in [s.x, s.y, s.width, s.height] {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    out.extend_from_slice(&s.flags.to_be_bytes());
                }
            }
            ClientMessage::Gii {
                big_endian,
                sub_type,
                payload,
            } => {
                let payload = payload.get(..usize::from(u16::MAX)).unwrap_or(payload);
                let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
                let endian_bit = if *big_endian { 0x80 } else { 0 };
                out.extend_from_slice(&[253, endian_bit | (sub_type & 0x7f)]);
                if *big_endian {
                    out.extend_from_slice(&len.to_be_bytes());
                } else {
                    out.extend_from_slice(&len.to_le_bytes());
                }
                out.extend_from_slice(payload);
            }
            ClientMessage::QemuKeyEvent {
                down,
                keysym,
                keycode,
            } => {
                out.extend_from_slice(&[255, 0]);
                out.extend_from_slice(&u16::from(*down).to_be_bytes());
                out.extend_from_slice(&keysym.to_be_bytes());
                out.extend_from_slice(&keycode.to_be_bytes());
            }
            ClientMessage::QemuAudio(op) => {
                out.extend_from_slice(&[255, 1]);
                match op {
                    QemuAudio::Enable => out.extend_from_slice(&[0, 0]),
                    QemuAudio::Disable => out.extend_from_slice(&[0, 1]),
                    QemuAudio::SetFormat {
                        sample_format,
                        channels,
                        frequency,
                    } => {
                        out.extend_from_slice(&[0, 2, *sample_format, *channels]);
                        out.extend_from_slice(&frequency.to_be_bytes());
                    }
                }
            }
        }
    }

    /// The message serialised into a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// Writes a length known to be within a u16 (callers cap it first).
fn put_u16(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
}

/// Writes a length known to be within a u32 (callers cap it first).
fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One sample of every message kind, with non-trivial field values.
    pub(crate) fn samples() -> Vec<ClientMessage> {
        vec![
            ClientMessage::SetPixelFormat(PixelFormat::RGB888),
            ClientMessage::SetEncodings(vec![7, 1, 0, -223, -258, -308, 0xC0A1_E5CEu32 as i32]),
            ClientMessage::SetEncodings(vec![]),
            ClientMessage::FramebufferUpdateRequest {
                incremental: true,
                x: 1,
                y: 2,
                width: 1920,
                height: 1080,
            },
            ClientMessage::KeyEvent {
                down: true,
                key: 0xffe1,
            },
            ClientMessage::PointerEvent {
                buttons: 0x81,
                x: 300,
                y: 65535,
            },
            ClientMessage::ClientCutText(b"hello".to_vec()),
            ClientMessage::ClientCutText(vec![]),
            ClientMessage::ExtendedClipboard {
                flags: 0x0100_0001,
                data: vec![1, 2, 3],
            },
            ClientMessage::ExtendedClipboard {
                flags: 7,
                data: vec![],
            },
            ClientMessage::EnableContinuousUpdates {
                enable: true,
                x: 0,
                y: 0,
                width: 800,
                height: 600,
            },
            ClientMessage::ClientFence {
                flags: 0x8000_0003,
                payload: vec![9; 64],
            },
            ClientMessage::ClientFence {
                flags: 0,
                payload: vec![],
            },
            ClientMessage::Xvp {
                version: 1,
                code: 3,
            },
            ClientMessage::SetDesktopSize {
                width: 1024,
                height: 768,
                screens: vec![
                    Screen {
                        id: 1,
                        x: 0,
                        y: 0,
                        width: 512,
                        height: 768,
                        flags: 0,
                    },
                    Screen {
                        id: 2,
                        x: 512,
                        y: 0,
                        width: 512,
                        height: 768,
                        flags: 0xdead_beef,
                    },
                ],
            },
            ClientMessage::Gii {
                big_endian: true,
                sub_type: 1,
                payload: vec![0, 1],
            },
            ClientMessage::Gii {
                big_endian: false,
                sub_type: 2,
                payload: (0..=255).collect(),
            },
            ClientMessage::QemuKeyEvent {
                down: true,
                keysym: 0x61,
                keycode: 0x1e,
            },
            ClientMessage::QemuAudio(QemuAudio::Enable),
            ClientMessage::QemuAudio(QemuAudio::Disable),
            ClientMessage::QemuAudio(QemuAudio::SetFormat {
                sample_format: 3,
                channels: 2,
                frequency: 44100,
            }),
        ]
    }

    #[test]
    fn exact_wire_lengths() {
        let len = |m: &ClientMessage| m.to_bytes().len();
        let s = samples();
        let expect = [
            20,
            4 + 7 * 4,
            4,
            10,
            8,
            6,
            8 + 5,
            8,
            8 + 4 + 3,
            8 + 4,
            10,
            9 + 64,
            9,
            4,
            8 + 2 * 16,
            4 + 2,
            4 + 256,
            12,
            4,
            4,
            10,
        ];
        assert_eq!(s.len(), expect.len());
        for (m, want) in s.iter().zip(expect) {
            assert_eq!(len(m), want, "{m:?}");
        }
    }

    #[test]
    fn known_encodings_byte_for_byte() {
        let key = ClientMessage::KeyEvent {
            down: true,
            key: 0x0000_ff0d,
        };
        assert_eq!(key.to_bytes(), [4, 1, 0, 0, 0, 0, 0xff, 0x0d]);
        let ext = ClientMessage::ExtendedClipboard {
            flags: 0x0100_0000,
            data: vec![],
        };
        assert_eq!(
            ext.to_bytes(),
            [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 1, 0, 0, 0]
        );
        let gii = ClientMessage::Gii {
            big_endian: false,
            sub_type: 1,
            payload: vec![1, 0],
        };
        assert_eq!(gii.to_bytes(), [253, 1, 2, 0, 1, 0]);
        let gii_be = ClientMessage::Gii {
            big_endian: true,
            sub_type: 1,
            payload: vec![1, 0],
        };
        assert_eq!(gii_be.to_bytes(), [253, 0x81, 0, 2, 1, 0]);
    }

    #[test]
    fn round_trip_every_sample() {
        for m in samples() {
            let bytes = m.to_bytes();
            assert_eq!(ClientMessage::parse(&bytes), Ok((m, bytes.len())));
        }
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        for m in samples() {
            let bytes = m.to_bytes();
            for cut in 0..bytes.len() {
                let prefix = bytes.get(..cut).unwrap_or_default();
                assert_eq!(
                    ClientMessage::parse(prefix),
                    Err(ParseError::Incomplete),
                    "{m:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn padding_and_flags_are_normalised() {
        // Non-zero padding and a down-flag of 7 from a sloppy (or hostile)
        // viewer come out as zero padding and a down-flag of 1.
        let raw = [4, 7, 0xaa, 0xbb, 0, 0, 0, 0x61];
        let Ok((m, 8)) = ClientMessage::parse(&raw) else {
            panic!("KeyEvent with dirty padding did not parse as 8 bytes");
        };
        assert_eq!(m.to_bytes(), [4, 1, 0, 0, 0, 0, 0, 0x61]);
    }

    #[test]
    fn hand_built_oversize_fields_are_truncated_to_caps() {
        let m = ClientMessage::ClientCutText(vec![b'a'; MAX_CUT_TEXT + 10]);
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), 8 + MAX_CUT_TEXT);
        assert!(ClientMessage::parse(&bytes).is_ok());
        let m = ClientMessage::SetEncodings(vec![1; MAX_ENCODINGS + 1]);
        assert!(ClientMessage::parse(&m.to_bytes()).is_ok());
        let m = ClientMessage::ClientFence {
            flags: 0,
            payload: vec![0; 300],
        };
        assert!(ClientMessage::parse(&m.to_bytes()).is_ok());
        let m = ClientMessage::ExtendedClipboard {
            flags: 0,
            data: vec![0; MAX_CUT_TEXT],
        };
        assert!(ClientMessage::parse(&m.to_bytes()).is_ok());
    }
}
