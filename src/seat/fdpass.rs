//! Lines with a file descriptor attached (`SCM_RIGHTS`) on `ui.sock`: how a
//! helper hands the service the connection to the VNC server it started for
//! a session, so that the service never enters the user's
//! runtime directory and no port is opened.
//!
//! The service reads every line with `recvmsg`: a descriptor may come with
//! any bytes, so they are queued and taken by the one message that carries
//! one (`opened`). A helper that sends more than [`MAX_QUEUED`] descriptors
//! ahead, or more than fit in one read's control buffer, is cut off.

use super::proto::MAX_LINE;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// Descriptors a helper may have in flight before its `opened` line is read.
pub const MAX_QUEUED: usize = 2;
/// Descriptors one read accepts; more is a breach (the kernel closes the rest).
const PER_READ: usize = 4;
const CHUNK: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FdLineError {
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("too many file descriptors sent")]
    TooManyFds,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads lines, and the descriptors that came with them, from a Unix stream.
pub struct FdLines {
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl Default for FdLines {
    fn default() -> Self {
        Self::new()
    }
}

impl FdLines {
    pub fn new() -> FdLines {
        FdLines {
            buf: Vec::with_capacity(CHUNK),
            fds: VecDeque::new(),
        }
    }

    /// The next line into `line` (with its `\n`); `Ok(false)` at a clean end.
    /// Cancel-safe: bytes and descriptors read stay in `self`.
    pub async fn read_line(
        &mut self,
        stream: &UnixStream,
        line: &mut Vec<u8>,
    ) -> Result<bool, FdLineError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                if i + 1 > MAX_LINE {
                    return Err(FdLineError::TooLong);
                }
                line.clear();
                line.extend(self.buf.drain(..=i));
                return Ok(true);
            }
            if self.buf.len() >= MAX_LINE {
                return Err(FdLineError::TooLong);
            }
            let n = self.fill(stream).await?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(false);
                }
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// The oldest descriptor received and not yet taken.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    async fn fill(&mut self, stream: &UnixStream) -> Result<usize, FdLineError> {
        let mut chunk = [0u8; CHUNK];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(PER_READ))];
        loop {
            stream.readable().await?;
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = stream.try_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(&mut chunk)];
                rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
                    .map_err(io::Error::from)
            });
            let msg = match r {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            };
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    self.fds.extend(fds);
                }
            }
            if msg.flags.contains(ReturnFlags::CTRUNC) || self.fds.len() > MAX_QUEUED {
                self.fds.clear();
                return Err(FdLineError::TooManyFds);
            }
            self.buf.extend_from_slice(&chunk[..msg.bytes]);
            return Ok(msg.bytes);
        }
    }
}

/// Writes `line` with `fd` attached to its first byte.
pub async fn send_line_with_fd(
    stream: &UnixStream,
    line: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<()> {
    let fds = [fd];
    let sent = loop {
        stream.writable().await?;
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("control buffer too small"));
        }
        let r = stream.try_io(Interest::WRITABLE, || {
            rustix::net::sendmsg(
                stream,
                &[IoSlice::new(line)],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .map_err(io::Error::from)
        });
        match r {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    // The descriptor went with the first bytes; the rest is plain.
    send_line(stream, &line[sent..]).await
}

/// Writes `line` without a descriptor (on a stream shared with
/// [`send_line_with_fd`], which has no write half of its own).
pub async fn send_line(stream: &UnixStream, line: &[u8]) -> io::Result<()> {
    let mut rest = line;
    while !rest.is_empty() {
        stream.writable().await?;
        match stream.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why a descriptor a helper handed over cannot be a session's server leg
/// (the helper is cut off and the session's record says why).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServerSocketError {
    #[error("not a socket: {0}")]
    NotASocket(#[source] rustix::io::Errno),
    #[error("not a Unix socket")]
    NotUnix,
    /// The kernel would not say the socket's type.
    #[error("{0}")]
    Type(#[source] rustix::io::Errno),
    #[error("not a stream socket")]
    NotStream,
    #[error("not connected: {0}")]
    NotConnected(#[source] rustix::io::Errno),
    /// A server of another user: its screen is not the consenting user's.
    #[error("its other end runs as uid {peer}, not as the helper's user ({uid})")]
    ForeignPeer { peer: u32, uid: u32 },
}

/// What a received descriptor must be to serve as a session's server leg:
/// a connected Unix stream socket whose other end is a process of `uid`
/// (the server the consenting user's helper started), not anything else a
/// helper could send.
pub fn check_server_socket(fd: &OwnedFd, uid: u32) -> Result<(), ServerSocketError> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let fd = fd.as_fd();
    let family = sockopt::socket_domain(fd).map_err(ServerSocketError::NotASocket)?;
    if family != AddressFamily::UNIX {
        return Err(ServerSocketError::NotUnix);
    }
    if sockopt::socket_type(fd).map_err(ServerSocketError::Type)? != SocketType::STREAM {
        return Err(ServerSocketError::NotStream);
    }
    let peer = sockopt::socket_peercred(fd).map_err(ServerSocketError::NotConnected)?;
    if peer.uid.as_raw() != uid {
        return Err(ServerSocketError::ForeignPeer {
            peer: peer.uid.as_raw(),
            uid,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[tokio::test]
    async fn a_line_carries_its_descriptor_and_lines_split_right() {
        let (a, b) = UnixStream::pair().unwrap();
        let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
        send_line(&a, b"one\ntw").await.unwrap();
        send_line_with_fd(&a, b"o\nthree\n", x.as_fd())
            .await
            .unwrap();
        let mut r = FdLines::new();
        let mut line = Vec::new();
        assert!(r.read_line(&b, &mut line).await.unwrap());
        assert_eq!(line, b"one\n");
        assert!(r.read_line(&b, &mut line).await.unwrap());
        assert_eq!(line, b"two\n");
        let fd = r.take_fd().expect("the descriptor arrived");
        assert_ne!(fd.as_raw_fd(), x.as_raw_fd());
        assert!(r.read_line(&b, &mut line).await.unwrap());
        assert_eq!(line, b"three\n");
        assert!(r.take_fd().is_none());
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        assert_eq!(check_server_socket(&fd, me), Ok(()));
        assert_eq!(
            check_server_socket(&fd, me + 1),
            Err(ServerSocketError::ForeignPeer {
                peer: me,
                uid: me + 1
            })
        );
        drop(a);
        assert!(!r.read_line(&b, &mut line).await.unwrap());
    }

    #[tokio::test]
    async fn a_flood_of_descriptors_or_a_file_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        for _ in 0..=MAX_QUEUED {
            send_line_with_fd(&a, b"x", f.as_fd()).await.unwrap();
        }
        let mut r = FdLines::new();
        let mut err = None;
        for _ in 0..=MAX_QUEUED {
            if let Err(e) = r.fill(&b).await {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(FdLineError::TooManyFds)), "{err:?}");
        let file: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let e = check_server_socket(&file, 0).unwrap_err();
        assert!(matches!(e, ServerSocketError::NotASocket(_)), "{e:?}");
        assert!(e.to_string().starts_with("not a socket: "), "{e}");
    }

    #[tokio::test]
    async fn an_endless_line_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        tokio::spawn(async move {
            let junk = vec![b'a'; MAX_LINE + 10];
            let _ = send_line(&a, &junk).await;
        });
        let mut r = FdLines::new();
        let mut line = Vec::new();
        assert!(matches!(
            r.read_line(&b, &mut line).await,
            Err(FdLineError::TooLong)
        ));
    }
}
