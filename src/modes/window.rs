//! `accord ui-window`: the window process of `accord agent` and `accord
//! ui` ([`crate::ui::window::host`]): windows crash or hang there, not in the
//! process that holds the session.

use super::StartError;

/// `lang`: `fr` or `en`.
#[cfg(feature = "ui")]
pub fn run(lang: &str, shortcut: String) -> Result<(), StartError> {
    let lang = match lang {
        "fr" => crate::ui::Lang::Fr,
        "en" => crate::ui::Lang::En,
        other => return Err(StartError::Other(format!("unknown language {other:?}"))),
    };
    crate::ui::window::child::run(lang, shortcut).map_err(|e| StartError::Other(e.to_string()))
}

#[cfg(not(feature = "ui"))]
pub fn run(_lang: &str, _shortcut: String) -> Result<(), StartError> {
    Err(StartError::Other("built without the `ui` feature".into()))
}
