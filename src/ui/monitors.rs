//! The monitors of the X screen (RandR 1.5 `XRRGetMonitors`), so that the
//! banner shows on every one of them (O7: whichever screen the clinician
//! looks at says that someone is connected).
//!
//! egui only tells a window the size of the monitor it is on, and winit's
//! monitor list is not reachable through eframe, so the list is read from
//! libXrandr directly. The libraries are opened at run time (`dlopen`), as
//! winit does: they are already in the package's runtime dependencies and a
//! missing one only means "one banner" (the caller falls back to the monitor
//! egui reports).

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
pub fn list() -> Result<Vec<Monitor>, String> {
    let mut v = ffi::monitors()?;
    v.retain(|m| m.width > 0 && m.height > 0);
    if v.is_empty() {
        return Err("RandR lists no monitor".into());
    }
    // Primary first, then left to right, top to bottom.
    v.sort_by_key(|m| (!m.primary, m.x, m.y));
    Ok(v)
}

#[cfg(not(target_os = "linux"))]
pub fn list() -> Result<Vec<Monitor>, String> {
    Err("monitor list not implemented on this platform".into())
}

#[cfg(target_os = "linux")]
mod ffi {
    use super::Monitor;
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
        fn open(name: &CStr) -> Result<Lib, String> {
            // SAFETY: `name` is a valid C string; dlopen has no other
            // precondition. The library's initialisers are those winit runs.
            let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if h.is_null() {
                Err(format!("cannot load {}", name.to_string_lossy()))
            } else {
                Ok(Lib(h))
            }
        }

        /// # Safety
        /// `T` must be the function pointer type of the symbol `name`.
        unsafe fn sym<T: Copy>(&self, name: &CStr) -> Result<T, String> {
            // SAFETY: the handle is open; `name` is a valid C string.
            let p = unsafe { libc::dlsym(self.0, name.as_ptr()) };
            if p.is_null() {
                return Err(format!("no symbol {}", name.to_string_lossy()));
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

    pub(super) fn monitors() -> Result<Vec<Monitor>, String> {
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
                return Err("cannot open the X display".into());
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
                return Err("XRRGetMonitors failed (RandR < 1.5?)".into());
            }
            Ok(out)
        }
    }
}
