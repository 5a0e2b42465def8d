//! The one progress-bar helper: a bar on a terminal, nothing otherwise (or with `--quiet`).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps drawn with `template` (indicatif's syntax), or a hidden one when
/// `quiet` or when the stream it draws on (stderr) is not a terminal.
pub fn bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    b
}
