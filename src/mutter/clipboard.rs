//! The clipboard of `accord screen-server`, through Mutter's RemoteDesktop
//! session and only as far as the policy's `[session] clipboard` grants:
//! Accord's relay filters cut text too, and the server shares no more than
//! the grant even if that filter were bypassed.
//!
//! - technician → workstation (`to_workstation`, `both`): the viewer's
//!   cut text becomes the session's selection (`SetSelection`), written as
//!   UTF-8 into the fd of `SelectionWrite` when an application pastes.
//! - workstation → technician (`both` only): a new desktop selection with
//!   a text type is read (`SelectionRead`), bounded in size and time, and
//!   sent to the viewer as Latin-1.
//!
//! There is a clipboard only once a RemoteDesktop session exists: a
//! view-only session never opens one, so it has none, and cut text that
//! arrives before it is dropped. A clipboard failure is logged by the
//! caller and never ends the session.

/// RFB cut text is Latin-1: each byte is its own code point.
pub fn latin1_to_utf8(text: &[u8]) -> String {
    text.iter().map(|&b| char::from(b)).collect()
}

/// UTF-8 (from the desktop) to RFB's Latin-1: a character outside Latin-1,
/// or a byte that is not UTF-8, becomes `?`.
pub fn utf8_to_latin1(text: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

#[cfg(all(feature = "mutter", target_os = "linux"))]
pub use self::dbus::{Clipboard, ClipboardError, READ_TIMEOUT, WRITE_TIMEOUT};

#[cfg(all(feature = "mutter", target_os = "linux"))]
mod dbus {
    use std::collections::HashMap;
    use std::future::poll_fn;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::unix::pipe;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use zbus::export::futures_core::Stream;
    use zbus::zvariant::{OwnedValue, Value};

    use super::super::proxy::remote_desktop::{
        RemoteDesktopSessionProxy, SelectionOwnerChanged, SelectionTransfer,
    };
    use super::super::session::{MutterError, MutterSession, bounded};
    use super::{latin1_to_utf8, utf8_to_latin1};
    use crate::policy::Clipboard as Grant;
    use crate::rfb::MAX_CUT_TEXT;

    /// A desktop application that does not hand its selection over in this
    /// time is given up on: it must not hang the server.
    pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
    /// The same for the application reading the technician's text.
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
    /// What the technician's text is offered as, best first.
    const OFFERED: [&str; 2] = ["text/plain;charset=utf-8", "text/plain"];

    #[derive(Debug, thiserror::Error)]
    pub enum ClipboardError {
        #[error(transparent)]
        Mutter(#[from] MutterError),
        #[error("{what}: {source}")]
        Io {
            what: &'static str,
            #[source]
            source: std::io::Error,
        },
        #[error("the desktop's selection is over {max} bytes: not sent")]
        TooLong { max: usize },
        #[error("{what} took over {timeout:?}")]
        Timeout {
            what: &'static str,
            timeout: Duration,
        },
    }

    /// The technician's text, as offered to the desktop.
    type Offered = Arc<Mutex<Option<String>>>;

    /// One screen server's clipboard: inert until [`Clipboard::enable`]
    /// finds a RemoteDesktop session and a grant other than `none`.
    pub struct Clipboard {
        grant: Grant,
        remote: Option<RemoteDesktopSessionProxy<'static>>,
        offered: Offered,
        /// The desktop's selections, in Latin-1, for the viewer.
        incoming: Option<mpsc::Receiver<Vec<u8>>>,
        /// Answers Mutter's signals.
        task: Option<JoinHandle<()>>,
        /// Bytes of the desktop's selection read at most.
        limit: usize,
    }

    impl Clipboard {
        pub fn new(grant: Grant) -> Clipboard {
            Clipboard {
                grant,
                remote: None,
                offered: Offered::default(),
                incoming: None,
                task: None,
                limit: MAX_CUT_TEXT,
            }
        }

        /// Whether the clipboard has been enabled on a RemoteDesktop session.
        pub fn is_enabled(&self) -> bool {
            self.remote.is_some()
        }

        /// `EnableClipboard` on the session's RemoteDesktop side, once, and
        /// answers Mutter's selection signals from then on. Nothing at all
        /// when the grant is `none` or the session has no RemoteDesktop side
        /// (view only): call it again after control is granted.
        pub async fn enable(&mut self, session: &MutterSession) -> Result<(), ClipboardError> {
            if self.grant == Grant::None || self.remote.is_some() {
                return Ok(());
            }
            let Some(remote) = session.remote_desktop() else {
                return Ok(());
            };
            // Subscribed before EnableClipboard, after which Mutter announces
            // the current selection.
            let owner = bounded(
                "SelectionOwnerChanged",
                remote.receive_selection_owner_changed(),
            )
            .await?;
            let transfer =
                bounded("SelectionTransfer", remote.receive_selection_transfer()).await?;
            bounded("EnableClipboard", remote.enable_clipboard(HashMap::new())).await?;
            let (tx, rx) = mpsc::channel(4);
            let answer = Answer {
                remote: remote.clone(),
                offered: self.offered.clone(),
                to_viewer: (self.grant == Grant::Both).then_some(tx),
                limit: self.limit,
            };
            self.task = Some(tokio::spawn(answer.run(owner, transfer)));
            self.incoming = Some(rx);
            self.remote = Some(remote.clone());
            tracing::info!(grant = self.grant.as_str(), "clipboard enabled");
            Ok(())
        }

        /// The viewer's cut text (Latin-1): offered to the desktop if the
        /// grant lets the technician paste and the clipboard is enabled,
        /// dropped otherwise.
        pub async fn from_viewer(&mut self, latin1: &[u8]) -> Result<(), ClipboardError> {
            let Some(remote) = &self.remote else {
                tracing::debug!("the viewer's cut text dropped: no clipboard");
                return Ok(());
            };
            if !self.grant.allows_to_workstation(false) {
                return Ok(());
            }
            *lock(&self.offered) = Some(latin1_to_utf8(latin1));
            let options = HashMap::from([("mime-types", Value::from(OFFERED.to_vec()))]);
            bounded("SetSelection", remote.set_selection(options)).await?;
            Ok(())
        }

        /// The desktop's next selection, in Latin-1, for the viewer (grant
        /// `both` only; pending for ever otherwise). Cancel safe.
        pub async fn from_desktop(&mut self) -> Vec<u8> {
            if let Some(rx) = &mut self.incoming
                && let Some(text) = rx.recv().await
            {
                return text;
            }
            std::future::pending().await
        }
    }

    impl Drop for Clipboard {
        fn drop(&mut self) {
            if let Some(task) = &self.task {
                task.abort();
            }
        }
    }

    /// What answers Mutter's selection signals, owned by its task.
    struct Answer {
        remote: RemoteDesktopSessionProxy<'static>,
        offered: Offered,
        /// `None`: nothing of the desktop's leaves (grant `to_workstation`).
        to_viewer: Option<mpsc::Sender<Vec<u8>>>,
        limit: usize,
    }

    impl Answer {
        async fn run<O, T>(self, mut owner: O, mut transfer: T)
        where
            O: Stream<Item = SelectionOwnerChanged> + Unpin,
            T: Stream<Item = SelectionTransfer> + Unpin,
        {
            loop {
                tokio::select! {
                    Some(signal) = next(&mut owner) => {
                        let Ok(args) = signal.args() else { continue };
                        self.owner_changed(&args.options).await;
                    }
                    Some(signal) = next(&mut transfer) => {
                        let Ok(args) = signal.args() else { continue };
                        self.transfer(args.mime_type(), *args.serial()).await;
                    }
                    else => return,
                }
            }
        }

        /// Mutter asks for the technician's text: written, then
        /// `SelectionWriteDone` says whether it all went.
        async fn transfer(&self, mime: &str, serial: u32) {
            let text = lock(&self.offered).clone();
            let ok = match text {
                Some(text) if OFFERED.contains(&mime) => match self.write(serial, &text).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("clipboard to the desktop: {e}");
                        false
                    }
                },
                _ => {
                    tracing::debug!(mime, "selection transfer of nothing offered");
                    false
                }
            };
            if let Err(e) = bounded(
                "SelectionWriteDone",
                self.remote.selection_write_done(serial, ok),
            )
            .await
            {
                tracing::warn!("clipboard to the desktop: {e}");
            }
        }

        async fn write(&self, serial: u32, text: &str) -> Result<(), ClipboardError> {
            let fd = bounded("SelectionWrite", self.remote.selection_write(serial)).await?;
            let mut pipe =
                pipe::Sender::from_owned_fd(std::os::fd::OwnedFd::from(fd)).map_err(|source| {
                    ClipboardError::Io {
                        what: "SelectionWrite's fd",
                        source,
                    }
                })?;
            let write = async {
                pipe.write_all(text.as_bytes()).await?;
                pipe.flush().await
            };
            tokio::time::timeout(WRITE_TIMEOUT, write)
                .await
                .map_err(|_| ClipboardError::Timeout {
                    what: "writing the technician's text",
                    timeout: WRITE_TIMEOUT,
                })?
                .map_err(|source| ClipboardError::Io {
                    what: "writing the technician's text",
                    source,
                })
            // The fd closes here: the reader's end of file.
        }

        /// A new selection: the desktop's text is read and sent to the
        /// viewer, if the grant lets it leave and it is not the
        /// technician's own.
        async fn owner_changed(&self, options: &HashMap<String, OwnedValue>) {
            let Some(to_viewer) = &self.to_viewer else {
                return;
            };
            if session_is_owner(options) {
                return;
            }
            let Some(mime) = text_type(options) else {
                return;
            };
            match self.read(mime).await {
                Ok(text) => {
                    // The server may be gone: nothing to do then.
                    let _ = to_viewer.send(utf8_to_latin1(&text)).await;
                }
                Err(e) => tracing::warn!("clipboard to the viewer: {e}"),
            }
        }

        async fn read(&self, mime: &str) -> Result<Vec<u8>, ClipboardError> {
            let fd = bounded("SelectionRead", self.remote.selection_read(mime)).await?;
            let pipe = pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(fd)).map_err(
                |source| ClipboardError::Io {
                    what: "SelectionRead's fd",
                    source,
                },
            )?;
            let mut text = Vec::new();
            // One byte over the limit tells an oversized selection.
            let mut bounded_pipe = pipe.take(self.limit as u64 + 1);
            let read = bounded_pipe.read_to_end(&mut text);
            tokio::time::timeout(READ_TIMEOUT, read)
                .await
                .map_err(|_| ClipboardError::Timeout {
                    what: "reading the desktop's selection",
                    timeout: READ_TIMEOUT,
                })?
                .map_err(|source| ClipboardError::Io {
                    what: "reading the desktop's selection",
                    source,
                })?;
            if text.len() > self.limit {
                return Err(ClipboardError::TooLong { max: self.limit });
            }
            Ok(text)
        }
    }

    /// `session-is-owner`: the selection is the technician's own (absent:
    /// it is not).
    fn session_is_owner(options: &HashMap<String, OwnedValue>) -> bool {
        options
            .get("session-is-owner")
            .and_then(|v| v.downcast_ref::<bool>().ok())
            .unwrap_or(false)
    }

    /// The text type to ask for, UTF-8 first; `None` when the selection
    /// has no text.
    fn text_type(options: &HashMap<String, OwnedValue>) -> Option<&'static str> {
        let types = mime_types(options.get("mime-types")?)?;
        OFFERED.into_iter().find(|t| types.iter().any(|m| m == t))
    }

    /// The types of `SelectionOwnerChanged`: Mutter sends them inside a
    /// tuple, `(as)` (while `SetSelection` takes a bare `as`); a bare list
    /// is taken too.
    fn mime_types(v: &OwnedValue) -> Option<Vec<String>> {
        let list = match &**v {
            Value::Structure(s) => s.fields().first()?.try_clone().ok()?,
            other => other.try_clone().ok()?,
        };
        Vec::<String>::try_from(list).ok()
    }

    fn lock(offered: &Offered) -> std::sync::MutexGuard<'_, Option<String>> {
        offered.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn opts(pairs: Vec<(&str, Value<'_>)>) -> HashMap<String, OwnedValue> {
            pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), OwnedValue::try_from(v).ok()?)))
                .collect()
        }

        #[test]
        fn the_text_type_is_chosen_utf8_first_and_none_without_text() {
            let o = opts(vec![(
                "mime-types",
                Value::from(vec!["image/png", "text/plain", "text/plain;charset=utf-8"]),
            )]);
            assert_eq!(text_type(&o), Some("text/plain;charset=utf-8"));
            let o = opts(vec![("mime-types", Value::from(vec!["text/plain"]))]);
            assert_eq!(text_type(&o), Some("text/plain"));
            // Mutter's signal: the list in a tuple.
            let o = opts(vec![(
                "mime-types",
                Value::from(zbus::zvariant::Structure::from((vec![
                    "text/plain;charset=utf-8",
                ],))),
            )]);
            assert_eq!(text_type(&o), Some("text/plain;charset=utf-8"));
            let o = opts(vec![("mime-types", Value::from(vec!["image/png"]))]);
            assert_eq!(text_type(&o), None);
            assert_eq!(
                text_type(&opts(vec![("mime-types", Value::from(3u32))])),
                None
            );
            assert_eq!(text_type(&HashMap::new()), None);
        }

        #[test]
        fn only_an_explicit_true_is_the_sessions_own_selection() {
            assert!(session_is_owner(&opts(vec![(
                "session-is-owner",
                Value::from(true)
            )])));
            assert!(!session_is_owner(&opts(vec![(
                "session-is-owner",
                Value::from(false)
            )])));
            assert!(!session_is_owner(&opts(vec![(
                "session-is-owner",
                Value::from("yes")
            )])));
            assert!(!session_is_owner(&HashMap::new()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn latin1_and_utf8_convert_as_rfb_needs() {
        assert_eq!(latin1_to_utf8(b"h\xe9llo"), "héllo");
        assert_eq!(utf8_to_latin1("€ and é".as_bytes()), b"? and \xe9");
        assert_eq!(utf8_to_latin1(b"bad \xff byte"), b"bad ? byte");
        assert_eq!(utf8_to_latin1("日本".as_bytes()), b"??");
        assert_eq!(utf8_to_latin1(b""), b"");
    }

    proptest! {
        #[test]
        fn latin1_survives_the_round_trip(text in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert_eq!(utf8_to_latin1(latin1_to_utf8(&text).as_bytes()), text);
        }

        #[test]
        fn any_bytes_become_latin1_one_per_character(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let out = utf8_to_latin1(&bytes);
            prop_assert_eq!(out.len(), String::from_utf8_lossy(&bytes).chars().count());
        }
    }
}
