//! When a viewer's SetPixelFormat may pass to the server (sans-IO: the
//! caller passes `now` and says what it saw).
//!
//! RFB forbids a viewer to change its pixel format while an update is
//! outstanding, but nothing stops a hostile or sloppy one from sending
//! FramebufferUpdateRequest and SetPixelFormat in one write. The server then
//! answers the request in the old format, and Accord's server framer, told
//! of the new format, would measure that update wrong and have to end the
//! session. So once the viewer has asked for an update, its SetPixelFormat
//! (and everything after it: order is kept) is held until the server has
//! answered what it was asked: all the bytes ahead of it written, the
//! server's stream between two messages and silent for [`QUIET`]. While it
//! is held Accord forwards no new request, so a server that answers its
//! requests goes quiet. Silence alone could be a server slow to start its
//! answer (a loaded machine): unless an update has begun since everything
//! ahead was written, the wait is [`UNANSWERED`] (a still screen, whose
//! incremental request gets no answer). [`HOLD_MAX`] bounds the wait (a server that never
//! goes quiet): the format is then forwarded anyway, and should the framer
//! lose track, the session ends `protocol`, as it would have before.
//!
//! Before the viewer's first request nothing can be outstanding: the usual
//! SetPixelFormat right after the handshake passes at once.

use crate::rfb::PixelFormat;
use std::time::{Duration, Instant};

/// How long the server's stream must stay silent, between two messages,
/// before a held SetPixelFormat is forwarded. x11vnc defers an update by up
/// to 20 ms and polls the screen every ~30 ms; 100 ms leaves room for both.
pub const QUIET: Duration = Duration::from_millis(100);
/// How long to wait for silence when no update has begun since the
/// requests ahead were written.
pub const UNANSWERED: Duration = Duration::from_millis(500);
/// The longest a SetPixelFormat is held.
pub const HOLD_MAX: Duration = Duration::from_secs(1);

/// What the server → technician relay publishes for the other direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerProgress {
    /// Bytes of the server's stream classified so far.
    pub bytes: u64,
    /// Whether the stream is between two messages.
    pub at_boundary: bool,
    /// FramebufferUpdates begun so far.
    pub updates: u64,
}

#[derive(Debug)]
struct Held {
    pf: PixelFormat,
    since: Instant,
    /// The last time something moved: the server sent, or Accord wrote.
    quiet_from: Instant,
    /// When everything ahead was first seen written, and the updates begun
    /// by then.
    flushed: Option<(Instant, u64)>,
    /// The server's stream as last polled.
    server: ServerProgress,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct FormatHold {
    requested: bool,
    held: Option<Held>,
}

impl FormatHold {
    pub fn new() -> Self {
        Self::default()
    }

    /// A FramebufferUpdateRequest was forwarded.
    pub fn on_request(&mut self) {
        self.requested = true;
    }

    /// The viewer's SetPixelFormat passed the filter: `Some(pf)` to forward
    /// now, `None` when it is held (the caller stops forwarding until
    /// [`Self::poll`] releases it).
    pub fn on_set_pixel_format(&mut self, pf: PixelFormat, now: Instant) -> Option<PixelFormat> {
        if !self.requested {
            return Some(pf);
        }
        self.held = Some(Held {
            pf,
            since: now,
            quiet_from: now,
            flushed: None,
            server: ServerProgress::default(),
        });
        None
    }

    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// The server sent something, or Accord wrote to it: the silence
    /// starts again.
    pub fn on_activity(&mut self, now: Instant) {
        if let Some(h) = &mut self.held {
            h.quiet_from = now;
        }
    }

    /// `flushed`: every byte ahead of the held message has been written to
    /// the server. Returns the format to forward now, if its time has come.
    pub fn poll(
        &mut self,
        now: Instant,
        flushed: bool,
        server: ServerProgress,
    ) -> Option<PixelFormat> {
        let h = self.held.as_mut()?;
        h.server = server;
        if !flushed {
            h.flushed = None;
        } else if h.flushed.is_none() {
            h.flushed = Some((now, server.updates));
        }
        if h.answered_at().is_some_and(|at| now >= at) || now >= h.since + HOLD_MAX {
            return self.held.take().map(|h| h.pf);
        }
        None
    }

    /// When [`Self::poll`] should be called again while holding, short of
    /// news from either side (a write done, the server's stream moving).
    pub fn deadline(&self) -> Option<Instant> {
        let h = self.held.as_ref()?;
        let bound = h.since + HOLD_MAX;
        Some(h.answered_at().map_or(bound, |at| at.min(bound)))
    }
}

impl Held {
    /// When the server will count as having answered, if nothing moves
    /// until then; `None` while bytes ahead are unwritten or the server is
    /// in the middle of a message.
    fn answered_at(&self) -> Option<Instant> {
        let (at, updates) = self.flushed?;
        if !self.server.at_boundary {
            return None;
        }
        let quiet = self.quiet_from + QUIET;
        Some(if self.server.updates > updates {
            quiet
        } else {
            quiet.max(at + UNANSWERED)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rfb::server::tests::PF16;

    fn idle() -> ServerProgress {
        ServerProgress {
            bytes: 0,
            at_boundary: true,
            updates: 0,
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn before_any_request_it_passes_at_once() {
        let mut h = FormatHold::new();
        assert_eq!(h.on_set_pixel_format(PF16, Instant::now()), Some(PF16));
        assert!(!h.is_holding());
    }

    #[test]
    fn after_a_request_it_waits_for_the_answer_then_silence() {
        let t0 = Instant::now();
        let mut h = FormatHold::new();
        h.on_request();
        assert_eq!(h.on_set_pixel_format(PF16, t0), None);
        assert!(h.is_holding());
        // The update answering the request streams in: not yet.
        let mid = ServerProgress {
            bytes: 500,
            at_boundary: false,
            updates: 1,
        };
        h.on_activity(t0 + 30 * MS);
        assert_eq!(h.poll(t0 + 30 * MS, true, idle()), None);
        assert_eq!(h.poll(t0 + 200 * MS, true, mid), None);
        // Finished at 260 ms; silent since: released 100 ms later, not before.
        h.on_activity(t0 + 260 * MS);
        let done = ServerProgress {
            bytes: 900,
            at_boundary: true,
            updates: 1,
        };
        assert_eq!(h.poll(t0 + 350 * MS, true, done), None);
        assert_eq!(h.deadline(), Some(t0 + 360 * MS));
        assert_eq!(h.poll(t0 + 360 * MS, true, done), Some(PF16));
        assert!(!h.is_holding());
        assert_eq!(h.deadline(), None);
    }

    #[test]
    fn silence_without_an_answer_waits_longer() {
        let t0 = Instant::now();
        let mut h = FormatHold::new();
        h.on_request();
        h.on_set_pixel_format(PF16, t0);
        // A still screen: the incremental request gets no answer; a loaded
        // server may also just be late. 100 ms of silence is not enough.
        assert_eq!(h.poll(t0, true, idle()), None);
        assert_eq!(h.poll(t0 + 150 * MS, true, idle()), None);
        assert_eq!(h.deadline(), Some(t0 + UNANSWERED));
        assert_eq!(h.poll(t0 + UNANSWERED, true, idle()), Some(PF16));
    }

    #[test]
    fn the_deadline_is_never_in_the_past_while_waiting() {
        let t0 = Instant::now();
        let mut h = FormatHold::new();
        h.on_request();
        h.on_set_pixel_format(PF16, t0);
        let busy = ServerProgress {
            bytes: 9,
            at_boundary: false,
            updates: 1,
        };
        let t = t0 + 300 * MS;
        assert_eq!(h.poll(t, true, busy), None);
        assert!(h.deadline().is_some_and(|d| d > t));
    }

    #[test]
    fn bytes_still_to_write_keep_it_held() {
        let t0 = Instant::now();
        let mut h = FormatHold::new();
        h.on_request();
        h.on_set_pixel_format(PF16, t0);
        // The request is still in Accord's outbox: whatever the server does.
        assert_eq!(h.poll(t0 + 400 * MS, false, idle()), None);
        // Written at 400 ms; the answer begins and ends at 420 ms.
        assert_eq!(h.poll(t0 + 400 * MS, true, idle()), None);
        h.on_activity(t0 + 420 * MS);
        let answered = ServerProgress {
            bytes: 100,
            at_boundary: true,
            updates: 1,
        };
        assert_eq!(h.poll(t0 + 510 * MS, true, answered), None);
        assert_eq!(h.poll(t0 + 520 * MS, true, answered), Some(PF16));
    }

    #[test]
    fn a_server_that_never_goes_quiet_is_waited_for_a_bounded_time() {
        let t0 = Instant::now();
        let mut h = FormatHold::new();
        h.on_request();
        h.on_set_pixel_format(PF16, t0);
        let busy = ServerProgress {
            bytes: 1,
            at_boundary: false,
            updates: 1,
        };
        let mut t = t0;
        while t < t0 + HOLD_MAX {
            assert_eq!(h.poll(t, true, busy), None);
            t += Duration::from_millis(10);
            h.on_activity(t);
        }
        assert!(h.deadline().is_some_and(|d| d <= t0 + HOLD_MAX));
        assert_eq!(h.poll(t0 + HOLD_MAX, true, busy), Some(PF16));
    }
}
