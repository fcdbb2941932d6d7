//! The client→server framer: the technician's bytes in, whole parsed
//! messages out, or a verdict that the stream can no longer be followed.
//!
//! The framer fails closed. A message type it does not know has no knowable
//! length, so it cannot be skipped: guessing would let the server and Accord
//! disagree on message boundaries, and then a viewer could hide input inside
//! bytes Accord believes are harmless. Such streams end the session.
//!
//! Memory is bounded: the buffer holds at most one incomplete message (whose
//! declared length was already checked against its cap) plus one pushed
//! chunk; pushing more than that without draining is refused.

use super::messages::{ClientMessage, ParseError};
use super::verdict::{EndWhy, Verdict};
use super::{MAX_MESSAGE_LEN, READ_CHUNK};

/// Upper bound of [`ClientFramer`]'s buffer.
pub const MAX_BUFFERED: usize = MAX_MESSAGE_LEN + READ_CHUNK;

/// Buffers the viewer's byte stream and cuts it into [`ClientMessage`]s.
#[derive(Debug, Default)]
pub struct ClientFramer {
    buf: Vec<u8>,
    /// Start of the unparsed bytes in `buf`: parsed bytes are only removed
    /// on the next push, so draining many small messages costs one move.
    start: usize,
    /// Once a verdict is given it sticks: the stream position is lost.
    ended: Option<EndWhy>,
}

impl ClientFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the viewer. Drain [`Self::next_message`]
    /// until it returns `Ok(None)` before pushing again, in chunks of at
    /// most [`READ_CHUNK`]: then this never fails. Pushing past
    /// [`MAX_BUFFERED`] is refused (and ends the stream) rather than grown.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        if let Some(why) = &self.ended {
            return Err(Verdict::End(why.clone()));
        }
        self.buf.drain(..self.start.min(self.buf.len()));
        self.start = 0;
        if self.buf.len().saturating_add(bytes.len()) > MAX_BUFFERED {
            let why = EndWhy::BufferFull {
                buffered: self.buf.len(),
                pushed: bytes.len(),
                max: MAX_BUFFERED,
            };
            self.ended = Some(why.clone());
            return Err(Verdict::End(why));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or
    /// the verdict that ends the session (repeated on every later call).
    pub fn next_message(&mut self) -> Result<Option<ClientMessage>, Verdict> {
        if let Some(why) = &self.ended {
            return Err(Verdict::End(why.clone()));
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        if pending.is_empty() {
            return Ok(None);
        }
        match ClientMessage::parse(pending) {
            Ok((msg, len)) => {
                self.start += len;
                Ok(Some(msg))
            }
            Err(ParseError::Incomplete) => Ok(None),
            Err(ParseError::End(why)) => {
                self.ended = Some(why.clone());
                Err(Verdict::End(why))
            }
        }
    }

    /// Bytes received but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::super::kind::MessageKind;
    use super::super::messages::tests::samples;
    use super::super::{MAX_CUT_TEXT, MAX_ENCODINGS};
    use super::*;

    /// Feeds `bytes` in chunks of `chunk` bytes, draining after each push.
    fn feed(bytes: &[u8], chunk: usize) -> Result<Vec<ClientMessage>, Verdict> {
        let mut f = ClientFramer::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            f.push(piece)?;
            while let Some(m) = f.next_message()? {
                out.push(m);
            }
        }
        assert_eq!(f.buffered(), 0, "bytes left over");
        Ok(out)
    }

    #[test]
    fn every_message_at_every_split_point() {
        for m in samples() {
            let bytes = m.to_bytes();
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                let mut f = ClientFramer::new();
                let mut got = Vec::new();
                for part in [a, b] {
                    assert_eq!(f.push(part), Ok(()));
                    while let Ok(Some(x)) = f.next_message() {
                        got.push(x);
                    }
                }
                assert_eq!(got, vec![m.clone()], "split at {split}");
            }
        }
    }

    #[test]
    fn all_messages_byte_by_byte_and_in_chunks() {
        let all = samples();
        let stream: Vec<u8> = all.iter().flat_map(ClientMessage::to_bytes).collect();
        for chunk in [1, 2, 3, 5, 7, 13, 64, 1000, stream.len()] {
            assert_eq!(feed(&stream, chunk), Ok(all.clone()), "chunk {chunk}");
        }
    }

    #[test]
    fn unknown_type_ends_and_verdict_sticks() {
        let mut f = ClientFramer::new();
        assert_eq!(f.push(&[3, 0, 0, 0, 0, 0, 0, 1, 0, 1, 7, 1, 2]), Ok(()));
        assert!(matches!(f.next_message(), Ok(Some(_))));
        let end = Err(Verdict::End(EndWhy::UnknownType(7)));
        assert_eq!(f.next_message(), end);
        assert_eq!(f.next_message(), end);
        assert_eq!(f.push(&[3]), end.map(|_| ()));
    }

    #[test]
    fn unknown_types_all_end() {
        let known = [0u8, 2, 3, 4, 5, 6, 150, 248, 250, 251, 253, 255];
        for t in (0..=255u8).filter(|t| !known.contains(t)) {
            assert_eq!(
                feed(&[t], 1),
                Err(Verdict::End(EndWhy::UnknownType(t))),
                "type {t}"
            );
        }
    }

    #[test]
    fn unknown_qemu_sub_type_and_audio_op_end() {
        assert_eq!(
            feed(&[255, 2, 0, 0], 1),
            Err(Verdict::End(EndWhy::UnknownQemuSubType(2)))
        );
        assert_eq!(
            feed(&[255, 1, 0, 3], 1),
            Err(Verdict::End(EndWhy::UnknownQemuAudioOp(3)))
        );
    }

    fn too_long(kind: MessageKind, len: usize, max: usize) -> Result<Vec<ClientMessage>, Verdict> {
        Err(Verdict::End(EndWhy::TooLong { kind, len, max }))
    }

    #[test]
    fn over_limit_lengths_end_before_the_body_arrives() {
        // Only the header is sent: the verdict must not wait for the body.
        let cut = (MAX_CUT_TEXT as u32 + 1).to_be_bytes();
        let mut msg = vec![6, 0, 0, 0];
        msg.extend_from_slice(&cut);
        assert_eq!(
            feed(&msg, 1),
            too_long(MessageKind::ClientCutText, MAX_CUT_TEXT + 1, MAX_CUT_TEXT)
        );

        let ext = (-(MAX_CUT_TEXT as i32) - 1).to_be_bytes();
        let mut msg = vec![6, 0, 0, 0];
        msg.extend_from_slice(&ext);
        assert_eq!(
            feed(&msg, 1),
            too_long(
                MessageKind::ExtendedClipboard,
                MAX_CUT_TEXT + 1,
                MAX_CUT_TEXT
            )
        );

        let mut msg = vec![6, 0, 0, 0];
        msg.extend_from_slice(&i32::MIN.to_be_bytes());
        assert_eq!(
            feed(&msg, 3),
            too_long(MessageKind::ExtendedClipboard, 1 << 31, MAX_CUT_TEXT)
        );

        let mut msg = vec![6, 0, 0, 0];
        msg.extend_from_slice(&u32::MAX.to_be_bytes()); // -1: too short for flags
        assert_eq!(
            feed(&msg, 1),
            Err(Verdict::End(EndWhy::Malformed {
                kind: MessageKind::ExtendedClipboard,
                why: "payload shorter than its flags word",
            }))
        );

        let n = MAX_ENCODINGS as u16 + 1;
        let mut msg = vec![2, 0];
        msg.extend_from_slice(&n.to_be_bytes());
        assert_eq!(
            feed(&msg, 1),
            too_long(MessageKind::SetEncodings, MAX_ENCODINGS + 1, MAX_ENCODINGS)
        );

        let msg = [248, 0, 0, 0, 0, 0, 0, 0, 65];
        assert_eq!(feed(&msg, 1), too_long(MessageKind::ClientFence, 65, 64));
    }

    #[test]
    fn largest_messages_fit() {
        let big = [
            ClientMessage::ClientCutText(vec![b'x'; MAX_CUT_TEXT]),
            ClientMessage::ExtendedClipboard {
                flags: 1,
                data: vec![0; MAX_CUT_TEXT - 4],
            },
            ClientMessage::SetEncodings(vec![-1; MAX_ENCODINGS]),
            ClientMessage::Gii {
                big_endian: false,
                sub_type: 0,
                payload: vec![0; 65535],
            },
        ];
        for m in big {
            assert_eq!(feed(&m.to_bytes(), READ_CHUNK), Ok(vec![m.clone()]));
        }
    }

    #[test]
    fn pushing_without_draining_is_bounded() {
        let mut f = ClientFramer::new();
        let chunk = vec![3u8; READ_CHUNK];
        let mut pushed = 0;
        let verdict = loop {
            match f.push(&chunk) {
                Ok(()) => pushed += chunk.len(),
                Err(v) => break v,
            }
        };
        assert!(pushed <= MAX_BUFFERED);
        assert!(matches!(verdict, Verdict::End(EndWhy::BufferFull { .. })));
        assert!(f.next_message().is_err());
    }

    #[test]
    fn draining_keeps_the_buffer_small() {
        // A stream of pointer events pushed in read-sized chunks never
        // leaves more than one partial message behind.
        let one = ClientMessage::PointerEvent {
            buttons: 0,
            x: 1,
            y: 2,
        }
        .to_bytes();
        let stream: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(READ_CHUNK * 4 + 3)
            .collect();
        let mut f = ClientFramer::new();
        let mut count = 0;
        for piece in stream.chunks(READ_CHUNK - 1) {
            assert_eq!(f.push(piece), Ok(()));
            while let Ok(Some(_)) = f.next_message() {
                count += 1;
            }
            assert!(f.buffered() < one.len());
        }
        assert_eq!(count, (READ_CHUNK * 4 + 3) / one.len());
    }
}
