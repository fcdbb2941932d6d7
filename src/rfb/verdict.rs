//! The verdicts shared by the client→server parser, framer and filter.
//!
//! They live below all three so that dependencies point one way
//! (`kind` ← `verdict` ← `messages` ← `framer`, `filter`): a reason to end the
//! session is a plain value any layer can produce.

use super::kind::MessageKind;

/// Why the session must end. Carries enough detail for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndWhy {
    #[error("unknown client message type {0}: its length cannot be known")]
    UnknownType(u8),
    #[error("unknown QEMU client message sub-type {0}: its length cannot be known")]
    UnknownQemuSubType(u8),
    #[error("unknown QEMU audio operation {0}: its length cannot be known")]
    UnknownQemuAudioOp(u16),
    #[error("{kind} declares {len} (bytes or entries), more than the limit of {max}")]
    TooLong {
        kind: MessageKind,
        len: usize,
        max: usize,
    },
    #[error("malformed {kind}: {why}")]
    Malformed {
        kind: MessageKind,
        why: &'static str,
    },
    #[error("{0} is not allowed in view-only mode")]
    ForbiddenInViewOnly(MessageKind),
    #[error("{buffered} bytes already buffered, {pushed} more pushed: over the {max}-byte bound")]
    BufferFull {
        buffered: usize,
        pushed: usize,
        max: usize,
    },
}

/// What the framer says when it cannot yield a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Verdict {
    /// The session must end; nothing more from this viewer is forwarded.
    #[error("ending the session: {0}")]
    End(EndWhy),
}
