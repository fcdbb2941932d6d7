//! Keeps a banner where the clinician can see it (O7).
//!
//! A window manager, another program or the technician (who holds the
//! pointer and keyboard in control mode) can move the banner off screen or
//! cover it. Each banner is re-asserted on top at least every
//! [`REASSERT`] and on every configure event (the window moved or
//! resized), and put back on the top edge of its monitor. The clinician may
//! drag it sideways along that edge: x is kept (clamped to the monitor), y is
//! always the monitor's top.
//!
//! Pure: positions and egui time in, commands out.

/// Longest time between two re-assertions (the promise is "back within
/// 1 s"; half of it leaves room for a slow frame).
pub const REASSERT: f64 = 0.5;

/// Where a banner lives: a monitor, in egui points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Home {
    pub monitor: egui::Rect,
}

/// What to tell the window manager this frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Assert {
    /// Move the window's outer top-left corner here.
    pub move_to: Option<egui::Pos2>,
    /// Send "always on top" again and raise.
    pub raise: bool,
}

/// The state of one banner window.
#[derive(Clone, Debug)]
pub struct Keeper {
    pub home: Home,
    last_outer: Option<egui::Rect>,
    last_raise: Option<f64>,
}

impl Keeper {
    pub fn new(home: Home) -> Keeper {
        Keeper {
            home,
            last_outer: None,
            last_raise: None,
        }
    }

    /// The top-left corner a window of `size` should have when it is at
    /// `outer_min`: on the monitor's top edge, its x clamped to the monitor.
    pub fn place(&self, outer_min: egui::Pos2, size: egui::Vec2) -> egui::Pos2 {
        let m = self.home.monitor;
        let max_x = (m.max.x - size.x).max(m.min.x);
        egui::pos2(outer_min.x.clamp(m.min.x, max_x), m.min.y)
    }

    /// One frame at egui time `now`, with the window's outer rectangle as the
    /// window system last reported it (`None`: not known yet).
    pub fn tick(&mut self, now: f64, outer: Option<egui::Rect>) -> Assert {
        let configured = outer != self.last_outer;
        self.last_outer = outer;
        let due = self.last_raise.is_none_or(|t| now - t >= REASSERT);
        let mut a = Assert::default();
        if let Some(r) = outer {
            let want = self.place(r.min, r.size());
            // Half a point of slack: window managers round.
            if (want - r.min).length() > 0.5 {
                a.move_to = Some(want);
            }
        }
        if due || configured || a.move_to.is_some() {
            a.raise = true;
            self.last_raise = Some(now);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::{Rect, pos2, vec2};

    fn keeper() -> Keeper {
        Keeper::new(Home {
            monitor: Rect::from_min_size(pos2(1280.0, 0.0), vec2(1024.0, 768.0)),
        })
    }

    #[test]
    fn off_screen_goes_back_to_the_top_edge_of_its_monitor() {
        let mut k = keeper();
        let at = |x: f32, y: f32| Some(Rect::from_min_size(pos2(x, y), vec2(900.0, 56.0)));
        // Where it opened: nothing to move, but raised once.
        let a = k.tick(0.0, at(1342.0, 0.0));
        assert_eq!(a.move_to, None);
        assert!(a.raise);
        // `xdotool windowmove 3000 3000`.
        let a = k.tick(0.1, at(3000.0, 3000.0));
        assert_eq!(a.move_to, Some(pos2(1280.0 + 1024.0 - 900.0, 0.0)));
        assert!(a.raise);
        // Dragged sideways along the top edge: stays where she put it.
        let a = k.tick(0.2, at(1300.0, 0.0));
        assert_eq!(a.move_to, None);
        // Dragged down: back up, x kept.
        let a = k.tick(0.3, at(1300.0, 400.0));
        assert_eq!(a.move_to, Some(pos2(1300.0, 0.0)));
        // Onto the other monitor: back onto its own.
        let a = k.tick(0.4, at(10.0, 0.0));
        assert_eq!(a.move_to, Some(pos2(1280.0, 0.0)));
    }

    #[test]
    fn raised_at_least_every_half_second_and_on_every_configure() {
        let mut k = keeper();
        let r = Some(Rect::from_min_size(pos2(1300.0, 0.0), vec2(900.0, 56.0)));
        assert!(k.tick(0.0, r).raise);
        assert!(!k.tick(0.2, r).raise);
        assert!(k.tick(0.5, r).raise);
        assert!(!k.tick(0.6, r).raise);
        // Resized by someone: a configure event.
        let r2 = Some(Rect::from_min_size(pos2(1300.0, 0.0), vec2(600.0, 56.0)));
        assert!(k.tick(0.7, r2).raise);
        // A banner wider than its monitor sits at its left edge.
        assert_eq!(
            k.place(pos2(1500.0, 9.0), vec2(2000.0, 56.0)),
            pos2(1280.0, 0.0)
        );
    }
}
