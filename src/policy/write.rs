//! The effective policy written back as TOML: what `accord policy check`
//! prints, and a file that parses to the same [`Policy`].

use super::{AllowEntry, Policy};
use std::path::PathBuf;

impl Policy {
    /// The effective policy as TOML (every key, defaults filled in).
    pub fn to_toml(&self) -> String {
        let allow: Vec<String> = self
            .technicians
            .allow
            .iter()
            .map(|a| match a {
                AllowEntry::Fingerprint(f) => format!("{f:?}"),
                AllowEntry::Subject(s) => format!("{s:?}"),
            })
            .collect();
        // An unset path is written `""`, which the parser reads as unset.
        let opt = |p: &Option<PathBuf>| {
            format!(
                "{:?}",
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        };
        format!(
            "[listen]\naddress = \"{}\"\ncert = {:?}\nkey = {:?}\n\n\
             [technicians]\nca = {:?}\nallow = [{}]\ncrl = {}\n\n\
             [upstream]\nlaunch = \"{}\"\nvnc = \"{}\"\npassword_file = {}\n\n\
             [consent]\ntimeout_s = {}\narm_delay_ms = {}\nallow_control = {}\nmax_prompts_per_technician_per_hour = {}\n\n\
             [session]\nidle_timeout_s = {}\nmax_duration_s = {}\nend_on_screen_lock = {}\nclipboard = \"{}\"\nconfirm_every_s = {}\nconfirm_grace_s = {}\n\n\
             [audit]\npath = {}\nforward = {:?}\nforward_ca = {}\nforward_cert = {}\nforward_key = {}\nsd_id = {:?}\n\n\
             [ui]\nlanguage = \"{}\"\nkill_shortcut = {:?}\n\n\
             [service]\nseat = \"{}\"\n{}",
            self.listen.address,
            self.listen.cert.display().to_string(),
            self.listen.key.display().to_string(),
            self.technicians.ca.display().to_string(),
            allow.join(", "),
            opt(&self.technicians.crl),
            self.upstream.launch.as_str(),
            self.upstream.vnc,
            opt(&self.upstream.password_file),
            self.consent.timeout.as_secs(),
            self.consent.arm_delay.as_millis(),
            self.consent.allow_control,
            self.consent.max_prompts_per_technician_per_hour,
            self.session.idle_timeout.as_secs(),
            self.session.max_duration.as_secs(),
            self.session.end_on_screen_lock,
            self.session.clipboard.as_str(),
            self.session.confirm_every.map_or(0, |d| d.as_secs()),
            self.session.confirm_grace.as_secs(),
            opt(&self.audit.path),
            self.audit
                .forward
                .as_ref()
                .map(|f| format!("tls://{}:{}", f.host, f.port))
                .unwrap_or_default(),
            opt(&self.audit.forward_ca),
            opt(&self.audit.forward_cert),
            opt(&self.audit.forward_key),
            self.audit.sd_id,
            self.ui.language.as_str(),
            self.ui.kill_shortcut,
            self.service.seat.as_str(),
            if self.service.users.is_empty() {
                String::new()
            } else {
                let users: Vec<String> = self
                    .service
                    .users
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect();
                format!("users = [{}]\n", users.join(", "))
            },
        )
    }
}
