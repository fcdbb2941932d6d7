//! What eframe does not reach on X11, for the banner (O7):
//! - the monitors of the X screen (RandR 1.5 `XRRGetMonitors`), so that a
//!   banner shows on every one of them: whichever screen the clinician looks
//!   at says that someone is connected. egui only tells a window the size of
//!   the monitor it is on, and winit's monitor list is not reachable through
//!   eframe;
//! - raising our windows over one that covers them: winit can only raise by
//!   taking the keyboard focus, which the banner must never do.
//!
//! Both talk to Xlib and libXrandr directly. The libraries are opened at run time (`dlopen`), as
//! winit does: they are already in the package's runtime dependencies and a
//! missing one only means "one banner" (the caller falls back to the monitor
//! egui reports).

use std::ffi::CStr;

/// Why the monitors could not be read or the banners cannot be raised: the
/// caller falls back (one banner; "always on top" alone) and logs why.
#[derive(Debug, thiserror::Error)]
pub enum X11Error {
    /// libX11 or libXrandr is not installed (or not the expected soname).
    #[error("cannot load {}", .0.to_string_lossy())]
    Load(&'static CStr),
    #[error("no symbol {}", .0.to_string_lossy())]
    Symbol(&'static CStr),
    #[error("cannot open the X display")]
    NoDisplay,
    #[error("XRRGetMonitors failed (RandR < 1.5?)")]
    NoRandr,
    #[error("RandR lists no monitor")]
    NoMonitor,
    #[cfg(not(target_os = "linux"))]
    #[error("monitor list not implemented on this platform")]
    NoMonitorList,
    #[cfg(not(target_os = "linux"))]
    #[error("not implemented on this platform")]
    NoRaiser,
}

/// One monitor, in X screen pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub primary: bool,
}

/// The monitors of `$DISPLAY`, primary first; an error says why they could
/// not be read.
#[cfg(target_os = "linux")]
pub fn monitors() -> Result<Vec<Monitor>, X11Error> {
    let mut v = ffi::monitors()?;
    v.retain(|m| m.width > 0 && m.height > 0);
    if v.is_empty() {
        return Err(X11Error::NoMonitor);
    }
    // Primary first, then left to right, top to bottom.
    v.sort_by_key(|m| (!m.primary, m.x, m.y));
    Ok(v)
}

#[cfg(not(target_os = "linux"))]
pub fn monitors() -> Result<Vec<Monitor>, X11Error> {
    Err(X11Error::NoMonitorList)
}

/// Raises this process's managed windows (those in the window manager's
/// `_NET_CLIENT_LIST` whose `_NET_WM_PID` is ours: while a banner shows, the
/// banners and a question asked during the session, raised in the order
/// they were mapped so that the question stays over the banners) without
/// touching the keyboard focus.
#[cfg(target_os = "linux")]
pub struct Raiser(ffi::Raiser);

#[cfg(target_os = "linux")]
impl Raiser {
    pub fn new() -> Result<Raiser, X11Error> {
        ffi::Raiser::new().map(Raiser)
    }

    /// Raises our windows; returns how many.
    pub fn raise(&self) -> usize {
        self.0.raise()
    }
}

#[cfg(not(target_os = "linux"))]
pub struct Raiser;

#[cfg(not(target_os = "linux"))]
impl Raiser {
    pub fn new() -> Result<Raiser, X11Error> {
        Err(X11Error::NoRaiser)
    }
    pub fn raise(&self) -> usize {
        0
    }
}

#[cfg(target_os = "linux")]
mod ffi {
    use super::{Monitor, X11Error};
    use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};

    #[repr(C)]
    struct XRRMonitorInfo {
        name: c_ulong,
        primary: c_int,
        automatic: c_int,
        noutput: c_int,
        x: c_int,
        y: c_int,
        width: c_int,
        height: c_int,
        mwidth: c_int,
        mheight: c_int,
        outputs: *mut c_ulong,
    }

    type OpenDisplay = unsafe extern "C" fn(*const c_char) -> *mut c_void;
    type CloseDisplay = unsafe extern "C" fn(*mut c_void) -> c_int;
    type DefaultRoot = unsafe extern "C" fn(*mut c_void) -> c_ulong;
    type GetMonitors =
        unsafe extern "C" fn(*mut c_void, c_ulong, c_int, *mut c_int) -> *mut XRRMonitorInfo;
    type FreeMonitors = unsafe extern "C" fn(*mut XRRMonitorInfo);

    /// A `dlopen`ed library, closed on drop.
    struct Lib(*mut c_void);

    impl Lib {
        fn open(name: &'static CStr) -> Result<Lib, X11Error> {
            // SAFETY: `name` is a valid C string; dlopen has no other
            // precondition. The library's initialisers are those winit runs.
            let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if h.is_null() {
                Err(X11Error::Load(name))
            } else {
                Ok(Lib(h))
            }
        }

        /// # Safety
        /// `T` must be the function pointer type of the symbol `name`.
        unsafe fn sym<T: Copy>(&self, name: &'static CStr) -> Result<T, X11Error> {
            // SAFETY: the handle is open; `name` is a valid C string.
            let p = unsafe { libc::dlsym(self.0, name.as_ptr()) };
            if p.is_null() {
                return Err(X11Error::Symbol(name));
            }
            debug_assert_eq!(size_of::<T>(), size_of::<*mut c_void>());
            // SAFETY: the caller names the symbol's true type; a function
            // pointer has the size of a data pointer on the platforms we
            // build for (checked above in debug builds).
            Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
        }
    }

    impl Drop for Lib {
        fn drop(&mut self) {
            // SAFETY: the handle came from dlopen and nothing of the
            // library is used after this (all calls are inside `monitors`).
            unsafe {
                libc::dlclose(self.0);
            }
        }
    }

    pub(super) fn monitors() -> Result<Vec<Monitor>, X11Error> {
        let x11 = Lib::open(c"libX11.so.6")?;
        let xrandr = Lib::open(c"libXrandr.so.2")?;
        // SAFETY: each type matches the Xlib / Xrandr prototype of its symbol.
        let (open, close, root, get, free) = unsafe {
            (
                x11.sym::<OpenDisplay>(c"XOpenDisplay")?,
                x11.sym::<CloseDisplay>(c"XCloseDisplay")?,
                x11.sym::<DefaultRoot>(c"XDefaultRootWindow")?,
                xrandr.sym::<GetMonitors>(c"XRRGetMonitors")?,
                xrandr.sym::<FreeMonitors>(c"XRRFreeMonitors")?,
            )
        };
        // SAFETY: a null name means $DISPLAY; the display is closed below
        // and every pointer XRRGetMonitors returns is read only while valid
        // (within `n` entries), then freed once.
        unsafe {
            let dpy = open(std::ptr::null());
            if dpy.is_null() {
                return Err(X11Error::NoDisplay);
            }
            let mut n: c_int = 0;
            let info = get(dpy, root(dpy), 1, &mut n);
            let mut out = Vec::new();
            if !info.is_null() {
                let count = usize::try_from(n).unwrap_or(0);
                for m in std::slice::from_raw_parts(info, count) {
                    out.push(Monitor {
                        x: m.x,
                        y: m.y,
                        width: m.width,
                        height: m.height,
                        primary: m.primary != 0,
                    });
                }
                free(info);
            }
            close(dpy);
            if info.is_null() {
                return Err(X11Error::NoRandr);
            }
            Ok(out)
        }
    }

    type InternAtom = unsafe extern "C" fn(*mut c_void, *const c_char, c_int) -> c_ulong;
    #[allow(clippy::type_complexity)]
    type GetWindowProperty = unsafe extern "C" fn(
        *mut c_void,
        c_ulong,
        c_ulong,
        std::ffi::c_long,
        std::ffi::c_long,
        c_int,
        c_ulong,
        *mut c_ulong,
        *mut c_int,
        *mut c_ulong,
        *mut c_ulong,
        *mut *mut u8,
    ) -> c_int;
    type XFree = unsafe extern "C" fn(*mut c_void) -> c_int;
    type RaiseWindow = unsafe extern "C" fn(*mut c_void, c_ulong) -> c_int;
    type Flush = unsafe extern "C" fn(*mut c_void) -> c_int;

    /// An open display and the Xlib functions the raiser needs.
    pub(super) struct Raiser {
        _x11: Lib,
        dpy: *mut c_void,
        close: CloseDisplay,
        root: c_ulong,
        client_list: c_ulong,
        wm_pid: c_ulong,
        get_prop: GetWindowProperty,
        free: XFree,
        raise: RaiseWindow,
        flush: Flush,
        pid: c_ulong,
    }

    const XA_WINDOW: c_ulong = 33;
    const XA_CARDINAL: c_ulong = 6;

    impl Raiser {
        pub(super) fn new() -> Result<Raiser, X11Error> {
            let x11 = Lib::open(c"libX11.so.6")?;
            // SAFETY: each type matches the Xlib prototype of its symbol.
            let (open, close, root, intern, get_prop, free, raise, flush) = unsafe {
                (
                    x11.sym::<OpenDisplay>(c"XOpenDisplay")?,
                    x11.sym::<CloseDisplay>(c"XCloseDisplay")?,
                    x11.sym::<DefaultRoot>(c"XDefaultRootWindow")?,
                    x11.sym::<InternAtom>(c"XInternAtom")?,
                    x11.sym::<GetWindowProperty>(c"XGetWindowProperty")?,
                    x11.sym::<XFree>(c"XFree")?,
                    x11.sym::<RaiseWindow>(c"XRaiseWindow")?,
                    x11.sym::<Flush>(c"XFlush")?,
                )
            };
            // SAFETY: null means $DISPLAY; the display is closed on drop.
            let dpy = unsafe { open(std::ptr::null()) };
            if dpy.is_null() {
                return Err(X11Error::NoDisplay);
            }
            // SAFETY: `dpy` is open; the names are valid C strings.
            let (root, client_list, wm_pid) = unsafe {
                (
                    root(dpy),
                    intern(dpy, c"_NET_CLIENT_LIST".as_ptr(), 0),
                    intern(dpy, c"_NET_WM_PID".as_ptr(), 0),
                )
            };
            Ok(Raiser {
                _x11: x11,
                dpy,
                close,
                root,
                client_list,
                wm_pid,
                get_prop,
                free,
                raise,
                flush,
                pid: c_ulong::from(std::process::id()),
            })
        }

        /// The 32-bit items of a property (Xlib hands them as longs).
        fn longs(&self, w: c_ulong, prop: c_ulong, ty: c_ulong) -> Vec<c_ulong> {
            let (mut actual, mut format, mut n, mut after) = (0, 0, 0, 0);
            let mut data: *mut u8 = std::ptr::null_mut();
            // SAFETY: the display is open; every out-pointer is valid; the
            // returned buffer holds `n` longs when format is 32 (Xlib's
            // rule) and is freed once below.
            unsafe {
                let ok = (self.get_prop)(
                    self.dpy,
                    w,
                    prop,
                    0,
                    4096,
                    0,
                    ty,
                    &mut actual,
                    &mut format,
                    &mut n,
                    &mut after,
                    &mut data,
                );
                if ok != 0 || data.is_null() {
                    return Vec::new();
                }
                let out = if format == 32 && actual == ty {
                    let count = usize::try_from(n).unwrap_or(0);
                    std::slice::from_raw_parts(data.cast::<c_ulong>(), count).to_vec()
                } else {
                    Vec::new()
                };
                (self.free)(data.cast());
                out
            }
        }

        pub(super) fn raise(&self) -> usize {
            let mut raised = 0;
            for w in self.longs(self.root, self.client_list, XA_WINDOW) {
                if self.longs(w, self.wm_pid, XA_CARDINAL).first() == Some(&self.pid) {
                    // SAFETY: the display is open; a window that vanished in
                    // between only makes the server send an error event.
                    unsafe {
                        (self.raise)(self.dpy, w);
                    }
                    raised += 1;
                }
            }
            // SAFETY: the display is open.
            unsafe {
                (self.flush)(self.dpy);
            }
            raised
        }
    }

    impl Drop for Raiser {
        fn drop(&mut self) {
            // SAFETY: opened in `new`, closed once, before the library.
            unsafe {
                (self.close)(self.dpy);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log names the library or symbol that is missing.
    #[test]
    fn a_missing_library_or_symbol_is_named() {
        assert_eq!(
            X11Error::Load(c"libXrandr.so.2").to_string(),
            "cannot load libXrandr.so.2"
        );
        assert_eq!(
            X11Error::Symbol(c"XRRGetMonitors").to_string(),
            "no symbol XRRGetMonitors"
        );
    }
}
