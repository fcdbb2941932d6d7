//! The technician's messages between the filter and the local VNC server,
//! sans-IO: messages in, bytes to write out, time passed in.
//!
//! Rule: **input cannot outlive a decision.** After "Passer en affichage
//! seul" or "Terminer", no technician input may reach the X server more than
//! a moment later. Whatever sits in a kernel buffer (Accord's send buffer,
//! the server's receive buffer) can no longer be taken back, so the backlog
//! must stay here, where a mode change or the end of the session drops it:
//!
//! - input messages leave at a paced rate ([`INPUT_RATE`] per second with a
//!   burst of [`INPUT_BURST`]), well above what a human produces but below
//!   what x11vnc drains, so the server's buffers stay empty;
//! - consecutive pointer *motion* with the same button mask is coalesced
//!   while it waits (only the latest position matters); key and button
//!   transitions are never merged or dropped;
//! - at most [`WIRE_MAX`] unsent bytes are handed to the socket at a time
//!   (whose send buffer is small too, see `session::UPSTREAM_SNDBUF`);
//! - the queue is bounded ([`QUEUE_MAX`] messages, [`QUEUE_MAX_BYTES`]):
//!   when full the relay stops reading from the technician, whose own TCP
//!   window then fills.
//!
//! Messages that are not input (FramebufferUpdateRequest, SetEncodings...)
//! are not paced but keep their order behind input.

use crate::rfb::ClientMessage;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Input messages per second let through. A 1000 Hz mouse is coalesced
/// anyway; typing is tens of keys per second.
pub const INPUT_RATE: u64 = 1000;
/// Input messages that may leave at once after a pause (a pasted burst of
/// keys, a click with its motion).
pub const INPUT_BURST: u64 = 32;
/// Messages waiting in Accord before it stops reading from the technician.
pub const QUEUE_MAX: usize = 256;
/// Bytes waiting in Accord before it stops reading (one large cut text fits).
pub const QUEUE_MAX_BYTES: usize = 512 * 1024;
/// Unsent bytes handed to the socket at once.
pub const WIRE_MAX: usize = 1024;

const NS_PER_TOKEN: u64 = 1_000_000_000 / INPUT_RATE;
const BUCKET_NS: u64 = NS_PER_TOKEN * INPUT_BURST;

struct Queued {
    bytes: Vec<u8>,
    input: bool,
    /// A pointer motion that may be replaced by the next motion with the
    /// same mask (it is not itself a button transition).
    motion: Option<u8>,
}

/// See the module documentation.
pub struct Outbox {
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// Bytes handed to (or being handed to) the socket; `sent` of them are
    /// written. `ends` holds each message's end offset and whether it is
    /// input, so that a decision can drop whole unsent messages.
    wire: Vec<u8>,
    sent: usize,
    ends: VecDeque<(usize, bool)>,
    /// Button mask of the last pointer event queued, to tell a button
    /// transition from motion.
    last_mask: u8,
    tokens_ns: u64,
    refilled: Instant,
}

impl Outbox {
    pub fn new(now: Instant) -> Self {
        Outbox {
            queue: VecDeque::new(),
            queued_bytes: 0,
            wire: Vec::with_capacity(WIRE_MAX * 2),
            sent: 0,
            ends: VecDeque::new(),
            last_mask: 0,
            tokens_ns: BUCKET_NS,
            refilled: now,
        }
    }

    /// Whether the relay should stop taking messages from the technician.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= QUEUE_MAX || self.queued_bytes >= QUEUE_MAX_BYTES
    }

    /// Queues a message the filter forwarded.
    pub fn push(&mut self, msg: &ClientMessage) {
        let mut bytes = Vec::new();
        msg.write_to(&mut bytes);
        let input = msg.kind().is_input();
        let motion = match msg {
            ClientMessage::PointerEvent { buttons, .. } => {
                let transition = *buttons != self.last_mask;
                self.last_mask = *buttons;
                (!transition).then_some(*buttons)
            }
            _ => None,
        };
        if let (Some(mask), Some(back)) = (motion, self.queue.back_mut())
            && back.motion == Some(mask)
        {
            self.queued_bytes = self.queued_bytes - back.bytes.len() + bytes.len();
            back.bytes = bytes;
            return;
        }
        self.queued_bytes += bytes.len();
        self.queue.push_back(Queued {
            bytes,
            input,
            motion,
        });
    }

    /// Moves queued messages to the wire as far as the pacing and
    /// [`WIRE_MAX`] allow.
    pub fn fill(&mut self, now: Instant) {
        self.refill(now);
        while self.wire.len() - self.sent < WIRE_MAX {
            let Some(head) = self.queue.front() else {
                break;
            };
            if head.input {
                if self.tokens_ns < NS_PER_TOKEN {
                    break;
                }
                self.tokens_ns -= NS_PER_TOKEN;
            }
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= q.bytes.len();
            self.append(&q.bytes, q.input);
        }
    }

    /// When the next input message may leave, if one is waiting for pacing
    /// (and nothing else is being written that would wake the relay).
    pub fn next_send_at(&self) -> Option<Instant> {
        if self.sent < self.wire.len() {
            return None;
        }
        let head = self.queue.front()?;
        if !head.input || self.tokens_ns >= NS_PER_TOKEN {
            return Some(self.refilled);
        }
        Some(self.refilled + Duration::from_nanos(NS_PER_TOKEN - self.tokens_ns))
    }

    /// The bytes to write next.
    pub fn unsent(&self) -> &[u8] {
        self.wire.get(self.sent..).unwrap_or_default()
    }

    /// `n` bytes of [`Self::unsent`] were written.
    pub fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.wire.len());
        let mut done = 0;
        while let Some(&(end, _)) = self.ends.front() {
            if end > self.sent {
                break;
            }
            done = end;
            self.ends.pop_front();
        }
        if done > 0 {
            self.wire.drain(..done);
            self.sent -= done;
            for e in self.ends.iter_mut() {
                e.0 -= done;
            }
        }
    }

    /// A decision took input away: every input message not yet (partly)
    /// written is dropped. A message half written is completed, or the
    /// server would read the next one from the middle of it.
    pub fn drop_input(&mut self) {
        self.queue.retain(|q| !q.input);
        self.queued_bytes = self.queue.iter().map(|q| q.bytes.len()).sum();
        self.retain_wire(|input| !input);
    }

    /// The session ends: drop everything but the message being written.
    pub fn abandon(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.retain_wire(|_| false);
    }

    /// Writes messages (releases) right after what must still go out,
    /// without pacing.
    pub fn push_now(&mut self, msg: &ClientMessage) {
        let mut bytes = Vec::new();
        msg.write_to(&mut bytes);
        self.append(&bytes, false);
    }

    /// Messages and bytes held in Accord, for tests and the audit detail.
    pub fn backlog(&self) -> (usize, usize) {
        (self.queue.len(), self.queued_bytes + self.unsent().len())
    }

    fn append(&mut self, bytes: &[u8], input: bool) {
        self.wire.extend_from_slice(bytes);
        self.ends.push_back((self.wire.len(), input));
    }

    fn retain_wire(&mut self, keep: impl Fn(bool) -> bool) {
        let mut wire = Vec::with_capacity(self.wire.len());
        let mut ends = VecDeque::with_capacity(self.ends.len());
        let mut start = 0;
        for &(end, input) in &self.ends {
            let started = start < self.sent;
            if (started || keep(input))
                && let Some(b) = self.wire.get(start..end)
            {
                wire.extend_from_slice(b);
                ends.push_back((wire.len(), input));
            }
            start = end;
        }
        self.wire = wire;
        self.ends = ends;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.tokens_ns = self.tokens_ns.saturating_add(ns).min(BUCKET_NS);
        self.refilled = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptr(buttons: u8, x: u16) -> ClientMessage {
        ClientMessage::PointerEvent { buttons, x, y: 0 }
    }
    fn key(down: bool) -> ClientMessage {
        ClientMessage::KeyEvent { down, key: 0xffe3 }
    }
    fn fbur() -> ClientMessage {
        ClientMessage::FramebufferUpdateRequest {
            incremental: true,
            x: 0,
            y: 0,
            width: 10,
            height: 10,
        }
    }
    fn bytes(msgs: &[ClientMessage]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            m.write_to(&mut out);
        }
        out
    }
    /// Everything the outbox lets out at `now`, written in full.
    fn drain(o: &mut Outbox, now: Instant) -> Vec<u8> {
        o.fill(now);
        let out = o.unsent().to_vec();
        o.advance(out.len());
        out
    }

    #[test]
    fn motion_coalesces_but_transitions_never_do() {
        let t = Instant::now();
        let mut o = Outbox::new(t);
        // Use the whole burst so everything below waits in the queue.
        for i in 0..INPUT_BURST {
            o.push(&ptr(0, i as u16));
        }
        assert_eq!(drain(&mut o, t).len(), 6, "one coalesced motion");
        for x in 100..200 {
            o.push(&ptr(0, x));
        }
        o.push(&ptr(1, 300)); // press: a transition
        o.push(&ptr(1, 301));
        o.push(&ptr(1, 302));
        o.push(&key(true));
        o.push(&key(false));
        o.push(&ptr(0, 400)); // release
        o.push(&ptr(0, 401));
        assert_eq!(o.backlog().0, 7);
        let out = drain(&mut o, t + Duration::from_secs(1));
        assert_eq!(
            out,
            bytes(&[
                ptr(0, 199),
                ptr(1, 300),
                ptr(1, 302),
                key(true),
                key(false),
                ptr(0, 400),
                ptr(0, 401),
            ])
        );
    }

    #[test]
    fn input_is_paced_and_other_messages_are_not() {
        let t = Instant::now();
        let mut o = Outbox::new(t);
        for i in 0..200 {
            o.push(&key(i % 2 == 0));
        }
        let mut sent = drain(&mut o, t).len() / 8;
        assert_eq!(sent as u64, INPUT_BURST);
        let wake = o.next_send_at().unwrap();
        assert_eq!(wake - t, Duration::from_nanos(NS_PER_TOKEN));
        // Drained every millisecond for 100 ms: 100 more at 1000/s.
        for ms in 1..=100 {
            sent += drain(&mut o, t + Duration::from_millis(ms)).len() / 8;
        }
        assert_eq!(sent as u64, INPUT_BURST + INPUT_RATE / 10);
        // After a pause, never more than the burst at once.
        let later = drain(&mut o, t + Duration::from_secs(10)).len() / 8;
        assert_eq!(later as u64, INPUT_BURST);
        // A non-input message behind the backlog still waits its turn, but
        // costs no token.
        let mut o = Outbox::new(t);
        for _ in 0..10 {
            o.push(&fbur());
        }
        assert_eq!(drain(&mut o, t).len(), 100);
    }

    #[test]
    fn a_decision_drops_unsent_input_and_completes_the_partial_message() {
        let t = Instant::now();
        let mut o = Outbox::new(t);
        o.push(&key(true));
        o.push(&fbur());
        o.push(&key(false));
        o.fill(t);
        o.advance(3); // the first KeyEvent is half written
        for i in 0..50 {
            o.push(&ptr(i % 2, i as u16));
        }
        o.push(&fbur());
        o.drop_input();
        assert_eq!(o.backlog().0, 1, "only the FBUR stays queued");
        let mut rest = o.unsent().to_vec();
        o.advance(rest.len());
        rest.extend(drain(&mut o, t));
        let mut want = bytes(&[key(true), fbur()]);
        want.drain(..3);
        want.extend(bytes(&[fbur()]));
        assert_eq!(rest, want);
    }

    #[test]
    fn abandon_keeps_only_the_message_in_flight_then_releases() {
        let t = Instant::now();
        let mut o = Outbox::new(t);
        o.push(&ptr(1, 5));
        o.push(&fbur());
        o.fill(t);
        o.advance(1);
        o.abandon();
        o.push_now(&ptr(0, 5));
        let mut want = bytes(&[ptr(1, 5), ptr(0, 5)]);
        want.remove(0);
        assert_eq!(o.unsent(), &want[..]);
        // Nothing written yet: nothing of the old backlog goes out.
        let mut o = Outbox::new(t);
        o.push(&key(true));
        o.fill(t);
        o.abandon();
        assert!(o.unsent().is_empty());
    }

    #[test]
    fn the_queue_is_bounded() {
        let t = Instant::now();
        let mut o = Outbox::new(t);
        let mut n = 0;
        while !o.is_full() {
            o.push(&key(n % 2 == 0));
            n += 1;
        }
        assert_eq!(n, QUEUE_MAX);
    }
}
