//! Which kind of session the login screen opens by default (GDM, SDDM), for
//! `accord policy check`: Accord shares X11 sessions, and a clinician who
//! logs in to a Wayland session cannot be helped (requests are refused
//! `unsupported_session`). IT should learn that from the check, not from a
//! technician on the phone.
//!
//! The parsers take the files' text (no I/O); [`findings`] reads the
//! standard places.

use std::path::{Path, PathBuf};

/// What a display manager's configuration says of its default session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDefault {
    /// `GDM` or `SDDM`.
    pub manager: &'static str,
    /// The file that decided (the last one read that set the key), or the
    /// first file found when none set it.
    pub file: PathBuf,
    /// Whether users land in a Wayland session unless they pick another.
    pub wayland: bool,
    /// The key and value behind it, for the report (`WaylandEnable=false`;
    /// "(not set)" when the manager's built-in default applies).
    pub setting: String,
}

/// The value of `key` in `[section]` of an INI-style file: the last one
/// wins, as in GLib's key files and SDDM's. Comments (`#`, `;`) and blank
/// lines are skipped; keys compare exactly, sections too.
pub fn ini_value<'a>(text: &'a str, section: &str, key: &str) -> Option<&'a str> {
    let mut current = "";
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim();
            continue;
        }
        if current != section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            found = Some(v.trim());
        }
    }
    found
}

/// GDM: `[daemon] WaylandEnable`, true unless set to a false value (GLib
/// reads `false`, and also `0`, `no`… in GDM's own parser: any of them).
pub fn gdm_wayland(text: &str) -> Option<bool> {
    ini_value(text, "daemon", "WaylandEnable").map(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        )
    })
}

/// SDDM: `[General] DisplayServer` (`x11` by default, `x11-user`,
/// `wayland`).
pub fn sddm_wayland(text: &str) -> Option<bool> {
    ini_value(text, "General", "DisplayServer").map(|v| v.eq_ignore_ascii_case("wayland"))
}

/// GDM's files in the order it reads them (Debian: gdm3; others: gdm).
const GDM_FILES: &[&str] = &[
    "/etc/gdm3/custom.conf",
    "/etc/gdm3/daemon.conf",
    "/etc/gdm/custom.conf",
];
/// SDDM's main file, then its drop-in directories (later files win).
const SDDM_FILE: &str = "/etc/sddm.conf";
const SDDM_DIRS: &[&str] = &["/usr/lib/sddm/sddm.conf.d", "/etc/sddm.conf.d"];

/// The default of every display manager installed here (by its config
/// files, or its binary for a manager configured nowhere), under `root`
/// (`/` on a real machine).
pub fn defaults(root: &Path) -> Vec<SessionDefault> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let mut out = Vec::new();

    let gdm_files: Vec<PathBuf> = GDM_FILES
        .iter()
        .map(|p| at(p))
        .filter(|p| p.is_file())
        .collect();
    let gdm_installed = ["/usr/sbin/gdm3", "/usr/sbin/gdm"]
        .iter()
        .any(|b| at(b).exists());
    if !gdm_files.is_empty() || gdm_installed {
        let mut d = SessionDefault {
            manager: "GDM",
            file: gdm_files
                .first()
                .cloned()
                .unwrap_or_else(|| at(GDM_FILES[0])),
            wayland: true,
            setting: "WaylandEnable (not set)".into(),
        };
        for f in &gdm_files {
            if let Ok(text) = std::fs::read_to_string(f)
                && let Some(w) = gdm_wayland(&text)
            {
                d.wayland = w;
                d.file = f.clone();
                d.setting = format!(
                    "WaylandEnable={}",
                    ini_value(&text, "daemon", "WaylandEnable").unwrap_or_default()
                );
            }
        }
        out.push(d);
    }

    let mut sddm_files: Vec<PathBuf> = Vec::new();
    if at(SDDM_FILE).is_file() {
        sddm_files.push(at(SDDM_FILE));
    }
    for dir in SDDM_DIRS {
        if let Ok(entries) = std::fs::read_dir(at(dir)) {
            let mut confs: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            confs.sort();
            sddm_files.extend(confs);
        }
    }
    if !sddm_files.is_empty() || at("/usr/bin/sddm").exists() {
        let mut d = SessionDefault {
            manager: "SDDM",
            file: sddm_files.first().cloned().unwrap_or_else(|| at(SDDM_FILE)),
            wayland: false,
            setting: "DisplayServer (not set)".into(),
        };
        for f in &sddm_files {
            if let Ok(text) = std::fs::read_to_string(f)
                && let Some(w) = sddm_wayland(&text)
            {
                d.wayland = w;
                d.file = f.clone();
                d.setting = format!(
                    "DisplayServer={}",
                    ini_value(&text, "General", "DisplayServer").unwrap_or_default()
                );
            }
        }
        out.push(d);
    }
    out
}

/// One sentence for the report.
pub fn describe(d: &SessionDefault) -> String {
    if d.wayland {
        format!(
            "{} opens Wayland sessions by default ({} in {}): Accord refuses to share them (unsupported_session). {}",
            d.manager,
            d.setting,
            d.file.display(),
            match d.manager {
                "GDM" =>
                    "Set WaylandEnable=false under [daemon] so that clinicians log in to X11 (\"GNOME on Xorg\").",
                _ => "Set DisplayServer=x11 under [General] so that clinicians log in to X11.",
            }
        )
    } else {
        format!(
            "{} opens X11 sessions by default ({} in {}): shared by Accord",
            d.manager,
            d.setting,
            d.file.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdm_wayland_is_on_unless_disabled_in_daemon() {
        assert_eq!(gdm_wayland(""), None);
        assert_eq!(gdm_wayland("[daemon]\n#WaylandEnable=false\n"), None);
        assert_eq!(gdm_wayland("[daemon]\nWaylandEnable=false\n"), Some(false));
        assert_eq!(
            gdm_wayland("[daemon]\nWaylandEnable = False\n"),
            Some(false)
        );
        assert_eq!(gdm_wayland("[daemon]\nWaylandEnable=true\n"), Some(true));
        // Another section's key does not count; the last value wins.
        assert_eq!(gdm_wayland("[security]\nWaylandEnable=false\n"), None);
        assert_eq!(
            gdm_wayland("[daemon]\nWaylandEnable=false\n[x]\n[daemon]\nWaylandEnable=true\n"),
            Some(true)
        );
    }

    #[test]
    fn sddm_is_x11_unless_display_server_is_wayland() {
        assert_eq!(
            sddm_wayland("[General]\nDisplayServer=wayland\n"),
            Some(true)
        );
        assert_eq!(
            sddm_wayland("[General]\nDisplayServer=x11-user\n"),
            Some(false)
        );
        assert_eq!(sddm_wayland("[Theme]\nDisplayServer=wayland\n"), None);
    }

    #[test]
    fn defaults_read_from_a_root() {
        let dir = tempfile::tempdir().unwrap();
        assert!(defaults(dir.path()).is_empty(), "no display manager here");
        std::fs::create_dir_all(dir.path().join("etc/gdm3")).unwrap();
        std::fs::write(dir.path().join("etc/gdm3/custom.conf"), "[daemon]\n").unwrap();
        let d = defaults(dir.path());
        assert_eq!(d.len(), 1);
        assert!(d[0].wayland, "GDM's built-in default is Wayland");
        assert!(describe(&d[0]).contains("WaylandEnable=false"));
        std::fs::write(
            dir.path().join("etc/gdm3/custom.conf"),
            "[daemon]\nWaylandEnable=false\n",
        )
        .unwrap();
        assert!(!defaults(dir.path())[0].wayland);
        std::fs::create_dir_all(dir.path().join("etc/sddm.conf.d")).unwrap();
        std::fs::write(
            dir.path().join("etc/sddm.conf.d/10-wayland.conf"),
            "[General]\nDisplayServer=wayland\n",
        )
        .unwrap();
        let d = defaults(dir.path());
        assert_eq!(d.len(), 2);
        assert!(d[1].wayland && d[1].file.ends_with("10-wayland.conf"));
    }
}
