//! Generates the man pages and shell completions from the clap definition
//! (`accord::cli::command()`), for the Debian package and anyone else.
//!
//! ```text
//! cargo run --release --example gen_docs -- OUT_DIR
//! ```
//!
//! Writes `OUT_DIR/man/accord.1` (plus one `accord-<subcommand>.1` page per
//! subcommand), `OUT_DIR/completions/accord` (bash) and
//! `OUT_DIR/completions/_accord` (zsh).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap_complete::{Shell, generate};

fn main() -> io::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen_docs OUT_DIR");
        std::process::exit(2);
    };
    let cmd = accord::cli::command();

    let man_dir = out.join("man");
    fs::create_dir_all(&man_dir)?;
    // accord.1 and accord-<sub>.1 for every (nested) subcommand.
    clap_mangen::generate_to(cmd.clone(), &man_dir)?;

    let comp_dir = out.join("completions");
    fs::create_dir_all(&comp_dir)?;
    // Debian's file names: bash-completion looks up completions/<command>,
    // zsh's vendor-completions wants _<command>.
    write_completion(Shell::Bash, &cmd, &comp_dir.join("accord"))?;
    write_completion(Shell::Zsh, &cmd, &comp_dir.join("_accord"))?;

    eprintln!("gen_docs: wrote {}", out.display());
    Ok(())
}

fn write_completion(shell: Shell, cmd: &clap::Command, path: &Path) -> io::Result<()> {
    let mut cmd = cmd.clone();
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    generate(shell, &mut cmd, name, &mut buf);
    fs::write(path, buf)
}
