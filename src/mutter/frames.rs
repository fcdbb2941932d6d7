//! The frames of Mutter's screen cast, read from its PipeWire stream.
//!
//! PipeWire's API is callbacks on a loop of its own, so a [`Capture`] runs
//! that loop on a dedicated thread and keeps only the latest frame, in one
//! buffer reused from frame to frame ([`Latest`]): the screen server takes
//! it when it has room to send, and frames it had no time for are simply
//! overwritten (RFB sends the screen as it is, not a history). Memory is
//! one frame, whatever the rate.
//!
//! Buffers are SHM (memfd) mapped by PipeWire (`MAP_BUFFERS`): Accord
//! announces no DMA-BUF modifier, so Mutter does not hand out GPU buffers.
//! The negotiated format is one of the 4-byte layouts [`FrameFormat`] knows.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use pipewire as pw;
use pw::spa;
use pw::spa::param::video::VideoFormat;
use pw::spa::pod::Pod;
use tokio::sync::Notify;

use crate::rfb::host::{Frame, FrameFormat, MAX_DIMENSION};

/// Why frames stopped, or never came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramesError {
    #[error("PipeWire: {0}")]
    PipeWire(String),
    #[error("the screen cast's PipeWire stream failed: {0}")]
    Stream(String),
    #[error("the screen cast's PipeWire stream ended")]
    Ended,
    #[error("the screen cast sent a frame Accord cannot read: {0}")]
    Unreadable(&'static str),
}

/// The latest frame, shared between the PipeWire thread and the screen
/// server.
#[derive(Default)]
pub struct Latest {
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Default)]
struct State {
    frame: Option<OwnedFrame>,
    /// Bumped with every frame written; the reader compares it with the last
    /// one it took.
    seq: u64,
    end: Option<FramesError>,
}

/// A frame in a buffer owned by [`Latest`] (rows of `stride` bytes).
#[derive(Debug, Clone)]
pub struct OwnedFrame {
    pub width: u16,
    pub height: u16,
    pub stride: usize,
    pub format: FrameFormat,
    pub data: Vec<u8>,
}

impl OwnedFrame {
    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            width: self.width,
            height: self.height,
            stride: self.stride,
            format: self.format,
            data: &self.data,
        }
    }
}

/// What [`Latest::wait`] found.
pub enum Taken<'a> {
    /// A frame newer than `seen`; the guard holds the lock, keep it short.
    Frame(FrameGuard<'a>),
    Ended(FramesError),
}

/// The lock on a new frame, and its sequence number.
pub struct FrameGuard<'a> {
    guard: MutexGuard<'a, State>,
    pub seq: u64,
}

impl FrameGuard<'_> {
    pub fn frame(&self) -> Option<&OwnedFrame> {
        self.guard.frame.as_ref()
    }
}

impl Latest {
    pub fn new() -> Arc<Latest> {
        Arc::new(Latest::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sequence number of the latest frame (0: none yet).
    pub fn seq(&self) -> u64 {
        self.lock().seq
    }

    /// A frame newer than `seen`, if there is one now; the end of the
    /// stream as an error.
    pub fn newer(&self, seen: u64) -> Result<Option<FrameGuard<'_>>, FramesError> {
        let state = self.lock();
        if let Some(end) = &state.end {
            return Err(end.clone());
        }
        if state.seq != seen && state.frame.is_some() {
            let seq = state.seq;
            return Ok(Some(FrameGuard { guard: state, seq }));
        }
        Ok(None)
    }

    /// Waits for a frame newer than `seen` (0: any), or the end of the
    /// stream.
    pub async fn wait(&self, seen: u64) -> Taken<'_> {
        loop {
            let notified = self.notify.notified();
            match self.newer(seen) {
                Err(end) => return Taken::Ended(end),
                Ok(Some(frame)) => return Taken::Frame(frame),
                Ok(None) => {}
            }
            notified.await;
        }
    }

    /// Writes a frame (from the PipeWire thread), reusing the buffer.
    fn put(&self, width: u16, height: u16, format: FrameFormat, rows: Rows<'_>) {
        let mut state = self.lock();
        let frame = state.frame.get_or_insert_with(|| OwnedFrame {
            width,
            height,
            stride: usize::from(width) * 4,
            format,
            data: Vec::new(),
        });
        let row = usize::from(width) * 4;
        frame.width = width;
        frame.height = height;
        frame.stride = row;
        frame.format = format;
        frame.data.clear();
        frame.data.reserve(row * usize::from(height));
        for y in 0..usize::from(height) {
            let start = rows.offset + y * rows.stride;
            frame.data.extend_from_slice(&rows.data[start..start + row]);
        }
        state.seq += 1;
        drop(state);
        self.notify.notify_waiters();
    }

    fn end(&self, why: FramesError) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(why);
        }
        drop(state);
        self.notify.notify_waiters();
    }
}

/// Where a buffer's rows are, checked against its length.
struct Rows<'a> {
    data: &'a [u8],
    offset: usize,
    stride: usize,
}

/// The 4-byte SPA formats and their layout; alpha is ignored (the screen is
/// opaque).
fn frame_format(f: VideoFormat) -> Option<FrameFormat> {
    Some(match f {
        VideoFormat::BGRx | VideoFormat::BGRA => FrameFormat::Bgrx,
        VideoFormat::RGBx | VideoFormat::RGBA => FrameFormat::Rgbx,
        VideoFormat::xRGB | VideoFormat::ARGB => FrameFormat::Xrgb,
        VideoFormat::xBGR | VideoFormat::ABGR => FrameFormat::Xbgr,
        _ => return None,
    })
}

/// Checks a buffer's chunk against the negotiated size: where each of the
/// `height` rows of `width` pixels starts, or why it cannot be read.
fn rows(
    data: &[u8],
    chunk_offset: u32,
    chunk_stride: i32,
    width: u16,
    height: u16,
) -> Result<Rows<'_>, &'static str> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err("no usable size was negotiated");
    }
    let row = usize::from(width) * 4;
    let stride = match usize::try_from(chunk_stride) {
        Ok(0) => row,
        Ok(s) if s >= row => s,
        _ => return Err("the buffer's stride is negative or shorter than a row"),
    };
    let offset = chunk_offset as usize;
    let need = (usize::from(height) - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(row))
        .and_then(|n| n.checked_add(offset));
    match need {
        Some(need) if need <= data.len() => Ok(Rows {
            data,
            offset,
            stride,
        }),
        _ => Err("the buffer is shorter than the negotiated frame"),
    }
}

/// A running capture of one PipeWire node; stops when dropped.
pub struct Capture {
    quit: pw::channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Connects to the user's PipeWire daemon and starts reading `node`
    /// into `latest`. Errors after the start (the stream failing or ending)
    /// are reported through [`Latest::wait`].
    pub fn start(node: u32, latest: Arc<Latest>) -> Result<Capture, FramesError> {
        static INIT: OnceLock<()> = OnceLock::new();
        INIT.get_or_init(pw::init);
        let (quit, quit_rx) = pw::channel::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), FramesError>>();
        let thread = std::thread::Builder::new()
            .name("accord-pipewire".into())
            .spawn(move || {
                let fail = latest.clone();
                if let Err(e) = run(node, latest, quit_rx, &ready_tx) {
                    // Before the loop ran: `start` reports it; after: the
                    // reader does.
                    if ready_tx.send(Err(e.clone())).is_err() {
                        fail.end(e);
                    }
                }
            })
            .map_err(|e| FramesError::PipeWire(format!("thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Capture {
                quit,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(FramesError::PipeWire("the capture thread ended".into()))
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // Fails only when the loop already ended.
        let _ = self.quit.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The negotiated format, kept between `param_changed` and `process`.
#[derive(Default)]
struct Negotiated {
    info: spa::param::video::VideoInfoRaw,
    format: Option<FrameFormat>,
}

/// The capture thread: PipeWire's main loop until told to quit or the
/// stream ends.
fn run(
    node: u32,
    latest: Arc<Latest>,
    quit: pw::channel::Receiver<()>,
    ready: &std::sync::mpsc::Sender<Result<(), FramesError>>,
) -> Result<(), FramesError> {
    let pwe = |what: &str, e: pw::Error| FramesError::PipeWire(format!("{what}: {e}"));
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(|e| pwe("main loop", e))?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(|e| pwe("context", e))?;
    let core = context
        .connect_rc(None)
        .map_err(|e| pwe("connecting to the user's PipeWire daemon", e))?;
    let stream = pw::stream::StreamBox::new(
        &core,
        "accord-screen",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(|e| pwe("stream", e))?;

    let ml = mainloop.clone();
    let _quit = quit.attach(mainloop.loop_(), move |()| ml.quit());

    let (on_state, on_process) = (latest.clone(), latest.clone());
    let (ml_state, ml_process) = (mainloop.clone(), mainloop.clone());
    let listener = stream
        .add_local_listener_with_user_data(Negotiated::default())
        .state_changed(move |_, _, old, new| {
            tracing::debug!("PipeWire stream: {old:?} -> {new:?}");
            match new {
                pw::stream::StreamState::Error(why) => {
                    on_state.end(FramesError::Stream(why));
                    ml_state.quit();
                }
                pw::stream::StreamState::Unconnected
                    if matches!(old, pw::stream::StreamState::Streaming) =>
                {
                    on_state.end(FramesError::Ended);
                    ml_state.quit();
                }
                _ => {}
            }
        })
        .param_changed(|_, neg, id, param| {
            let Some(param) = param else { return };
            if id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            if neg.info.parse(param).is_ok() {
                neg.format = frame_format(neg.info.format());
            }
        })
        .process(move |stream, neg| {
            // Every buffer ready now, the latest kept: one left dequeued
            // would never go back to Mutter, which then stops recording.
            let mut latest_buffer = None;
            while let Some(b) = stream.dequeue_buffer() {
                latest_buffer = Some(b);
            }
            let Some(mut buffer) = latest_buffer else {
                return;
            };
            let Some(format) = neg.format else { return };
            let size = neg.info.size();
            let (Ok(width), Ok(height)) = (u16::try_from(size.width), u16::try_from(size.height))
            else {
                on_process.end(FramesError::Unreadable("the frame is too large"));
                ml_process.quit();
                return;
            };
            let datas = buffer.datas_mut();
            let Some(d) = datas.first_mut() else { return };
            let chunk = d.chunk();
            let (offset, stride, filled) = (chunk.offset(), chunk.stride(), chunk.size());
            let corrupted = chunk.flags().contains(spa::buffer::ChunkFlags::CORRUPTED);
            // An empty chunk: Mutter sent only metadata (the cursor moved
            // with the cursor not embedded); a corrupted one is skipped.
            if filled == 0 || corrupted {
                return;
            }
            let Some(bytes) = d.data() else {
                on_process.end(FramesError::Unreadable("the buffer is not mappable memory"));
                ml_process.quit();
                return;
            };
            match rows(bytes, offset, stride, width, height) {
                Ok(r) => on_process.put(width, height, format, r),
                Err(why) => {
                    on_process.end(FramesError::Unreadable(why));
                    ml_process.quit();
                }
            }
        })
        .register()
        .map_err(|e| pwe("stream listener", e))?;

    let params = format_params()?;
    let mut params = [Pod::from_bytes(&params)
        .ok_or_else(|| FramesError::PipeWire("format parameters".into()))?];
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(node),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .map_err(|e| pwe("connecting to the screen cast's node", e))?;
    if ready.send(Ok(())).is_err() {
        return Ok(());
    }
    mainloop.run();
    // Disconnecting reports the stream Unconnected at once: without the
    // listener, so that a capture stopped on purpose is not taken for the
    // end of the screen cast.
    drop(listener);
    let _ = stream.disconnect();
    Ok(())
}

/// The formats Accord takes: raw video in a 4-byte layout, any size up to
/// the RFB host's limit, any rate.
fn format_params() -> Result<Vec<u8>, FramesError> {
    use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
    use spa::utils::{Fraction, Rectangle};
    let max = u32::from(MAX_DIMENSION);
    let obj = spa::pod::object!(
        spa::utils::SpaTypes::ObjectParamFormat,
        spa::param::ParamType::EnumFormat,
        spa::pod::property!(FormatProperties::MediaType, Id, MediaType::Video),
        spa::pod::property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
        spa::pod::property!(
            FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA,
            VideoFormat::xRGB,
            VideoFormat::ARGB,
            VideoFormat::xBGR,
            VideoFormat::ABGR
        ),
        spa::pod::property!(
            FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            Rectangle {
                width: 1280,
                height: 800
            },
            Rectangle {
                width: 1,
                height: 1
            },
            Rectangle {
                width: max,
                height: max
            }
        ),
        spa::pod::property!(
            FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            Fraction { num: 30, denom: 1 },
            Fraction { num: 0, denom: 1 },
            Fraction { num: 240, denom: 1 }
        ),
    );
    spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &spa::pod::Value::Object(obj),
    )
    .map(|(c, _)| c.into_inner())
    .map_err(|e| FramesError::PipeWire(format!("format parameters: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_against_the_buffer() {
        let data = vec![0u8; 64 * 4 * 10];
        assert!(rows(&data, 0, 256, 64, 10).is_ok());
        assert!(rows(&data, 0, 0, 64, 10).is_ok(), "0: rows packed");
        assert!(
            rows(&data, 4, 256, 64, 10).is_err(),
            "an offset past the end"
        );
        assert!(
            rows(&data, 0, 300, 64, 10).is_err(),
            "a stride past the end"
        );
        assert!(rows(&data, 0, -256, 64, 10).is_err(), "a negative stride");
        assert!(
            rows(&data, 0, 100, 64, 10).is_err(),
            "a stride shorter than a row"
        );
        assert!(rows(&data, 0, 256, 0, 10).is_err());
        assert!(rows(&data, u32::MAX, 256, 64, 10).is_err());
    }

    #[test]
    fn a_frame_is_copied_without_its_padding_and_the_reader_woken() {
        let latest = Latest::new();
        // 2×2 pixels, rows of 12 bytes (4 of padding), offset 4
        let mut data = vec![0xEEu8; 4 + 12 * 2];
        data[4..12].copy_from_slice(&[1, 2, 3, 0, 4, 5, 6, 0]);
        data[16..24].copy_from_slice(&[7, 8, 9, 0, 10, 11, 12, 0]);
        let r = rows(&data, 4, 12, 2, 2).unwrap();
        latest.put(2, 2, FrameFormat::Bgrx, r);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let Taken::Frame(g) = latest.wait(0).await else {
                panic!("no frame")
            };
            let f = g.frame().unwrap();
            assert_eq!((f.width, f.height, f.stride), (2, 2, 8));
            assert_eq!(f.data, [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 10, 11, 12, 0]);
            let seq = g.seq;
            drop(g);
            latest.end(FramesError::Ended);
            assert!(matches!(
                latest.wait(seq).await,
                Taken::Ended(FramesError::Ended)
            ));
        });
    }

    #[test]
    fn the_format_parameters_serialize() {
        let bytes = format_params().unwrap();
        assert!(Pod::from_bytes(&bytes).is_some());
    }
}
