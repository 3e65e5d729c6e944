//! `review-sync completions SHELL`: the shell completion script, generated
//! from the clap definitions (clap_complete). The committed copies in
//! `docs/completions/`, which the Debian package installs, are compared
//! with it by a test in `man.rs` and rewritten with the man pages.

use clap::{CommandFactory, ValueEnum};
use std::process::ExitCode;

/// The shells there is a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    /// bash (bash-completion).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

impl Shell {
    /// Every shell, for the committed scripts.
    #[cfg(test)]
    pub(crate) const ALL: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    /// The file name the script is installed under (what each shell's
    /// completion directory expects).
    #[cfg(test)]
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Shell::Bash => "review-sync.bash",
            Shell::Zsh => "_review-sync",
            Shell::Fish => "review-sync.fish",
        }
    }
}

/// The completion script for `shell`.
pub(super) fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = super::Args::command();
    let mut out = Vec::new();
    let name = "review-sync";
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, &mut out)
        }
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, name, &mut out),
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, name, &mut out)
        }
    }
    out
}

/// Prints the script for `shell` on stdout.
pub(super) fn completions(shell: Shell) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    std::io::stdout().write_all(&script(shell))?;
    Ok(ExitCode::SUCCESS)
}
