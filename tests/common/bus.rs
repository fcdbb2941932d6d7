//! A private dbus-daemon for the tests of the D-Bus clients (the fake
//! logind of tests/common/logind.rs, the fake Mutter of
//! tests/common/mutter.rs).
#![cfg(any(feature = "logind", feature = "mutter"))]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub fn find_dbus_daemon() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("dbus-daemon"))
        .find(|p| p.is_file())
}

/// A private dbus-daemon listening on a unix socket in a temporary
/// directory; killed on drop.
pub struct Bus {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    /// `None`: no dbus-daemon here, the test is skipped.
    pub fn start() -> Option<Bus> {
        let Some(bin) = find_dbus_daemon() else {
            if std::env::var("ACCORD_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("dbus-daemon not installed and ACCORD_REQUIRE_PEERS=1");
            }
            eprintln!(
                "\n!!!!!!!! SKIPPED: dbus-daemon not installed (apt-get install dbus) !!!!!!!!\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display()
            ),
        )
        .expect("bus config written");
        let mut child = Command::new(bin)
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address", "--nofork"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("dbus-daemon prints its address");
        let address = line.trim().to_owned();
        assert!(address.starts_with("unix:"), "bus address {address:?}");
        Some(Bus {
            child,
            address,
            _dir: dir,
        })
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
