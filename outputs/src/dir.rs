//! Output directories that are complete or absent.
//!
//! A run, a study or a report is written into a temporary directory beside its destination
//! (`.NAME.tmp-PID`) and swapped in whole by [`Staged::commit`]: an earlier output is moved
//! aside first (`.NAME.old-PID`) and deleted only once the new one is in place, so a failure
//! at any point leaves the earlier output or none, never a mixture. A staged directory that is
//! dropped without being committed is removed. A process killed half-way leaves its
//! temporaries behind; the next [`stage`] of the same destination removes those whose process
//! is gone.
//!
//! Only the destination's own temporaries are touched, and a destination is replaced only if
//! it does not exist, is empty, or the caller recognises it as an earlier output of its own
//! (so a mistyped `--out` never deletes an unrelated directory).
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why an output directory could not be staged or committed.
#[derive(Debug, thiserror::Error)]
pub enum OutdirError {
    /// The destination holds something that is not an earlier output.
    #[error("refusing to replace {}: {why}; choose another output directory or remove it yourself", dir.display())]
    Refused {
        /// The destination.
        dir: PathBuf,
        /// Why it is not replaceable.
        why: &'static str,
    },
    /// A file-system operation failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write in", …).
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The complete new output could not be moved into place; it is kept where it is.
    #[error("cannot move the new output into {}: {source}; it is complete in {}", dir.display(), kept.display())]
    Swap {
        /// The destination.
        dir: PathBuf,
        /// Where the complete new output is.
        kept: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl OutdirError {
    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OutdirError + 'a {
        move |source| OutdirError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The directory `dir` lives in (`.` for a bare name).
pub fn parent_of(dir: &Path) -> &Path {
    dir.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into())
}

/// Whether `dir` may be replaced: it does not exist, is an empty directory, or `is_earlier`
/// recognises it as an earlier output.
pub fn check_replaceable(dir: &Path, is_earlier: impl Fn(&Path) -> bool) -> Result<(), OutdirError> {
    let refuse = |why| {
        Err(OutdirError::Refused {
            dir: dir.to_path_buf(),
            why,
        })
    };
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return refuse("it is not a directory");
    }
    let mut entries = fs::read_dir(dir).map_err(OutdirError::io("read", dir))?;
    if entries.next().is_none() || is_earlier(dir) {
        return Ok(());
    }
    refuse("it exists and is not an earlier output")
}

/// A temporary directory that becomes `dir` on [`Staged::commit`], or disappears when dropped.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    tmp: PathBuf,
    done: bool,
}

/// Prepares to write `dir`: checks that it may be replaced ([`check_replaceable`]), removes
/// stale temporaries of `dir` left by processes that are gone, and creates a fresh temporary
/// directory beside it (creating the parent if needed).
pub fn stage(dir: &Path, is_earlier: impl Fn(&Path) -> bool) -> Result<Staged, OutdirError> {
    let parent = parent_of(dir);
    fs::create_dir_all(parent).map_err(OutdirError::io("create", parent))?;
    check_replaceable(dir, is_earlier)?;
    clean_stale(dir);
    let tmp = parent.join(format!(".{}.tmp-{}", name_of(dir), std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(OutdirError::io("remove", &tmp))?;
    }
    fs::create_dir(&tmp).map_err(OutdirError::io("create", &tmp))?;
    Ok(Staged {
        dir: dir.to_path_buf(),
        tmp,
        done: false,
    })
}

impl Staged {
    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The destination.
    pub fn destination(&self) -> &Path {
        &self.dir
    }

    /// Swaps the complete output into place. An earlier output is moved aside first and
    /// deleted once the new one is in place; if the swap fails, the earlier output is put back
    /// and the new one stays in its temporary directory (the error names it).
    pub fn commit(mut self) -> Result<(), OutdirError> {
        self.done = true;
        let old = parent_of(&self.dir).join(format!(".{}.old-{}", name_of(&self.dir), std::process::id()));
        let had_old = self.dir.exists();
        let swap_error = |dir: &Path, kept: &Path, source| OutdirError::Swap {
            dir: dir.to_path_buf(),
            kept: kept.to_path_buf(),
            source,
        };
        if had_old {
            let _ = fs::remove_dir_all(&old);
            fs::rename(&self.dir, &old).map_err(|e| swap_error(&self.dir, &self.tmp, e))?;
        }
        if let Err(e) = fs::rename(&self.tmp, &self.dir) {
            if had_old {
                let _ = fs::rename(&old, &self.dir);
            }
            return Err(swap_error(&self.dir, &self.tmp, e));
        }
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Whether process `pid` is gone, when that can be told (`/proc` on Linux); `false` when not.
fn process_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Removes `.NAME.tmp-PID` and `.NAME.old-PID` beside `dir` whose process is gone. A process
/// killed in the middle of [`Staged::commit`] (after moving the earlier output aside, before
/// moving the new one in) left no `dir`: the new output, complete in its `.tmp-PID` (a commit
/// only starts once it is), is moved into place, or the earlier one back if that is gone.
fn clean_stale(dir: &Path) {
    let parent = parent_of(dir);
    let name = name_of(dir);
    let Ok(entries) = fs::read_dir(parent) else { return };
    let mut stale: Vec<(u32, bool, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        let found = [(".tmp-", false), (".old-", true)].iter().find_map(|(kind, old)| {
            let pid = file
                .strip_prefix('.')?
                .strip_prefix(name.as_str())?
                .strip_prefix(kind)?
                .parse::<u32>()
                .ok()?;
            Some((pid, *old))
        });
        if let Some((pid, old)) = found
            && pid != std::process::id()
            && process_gone(pid)
        {
            stale.push((pid, old, e.path()));
        }
    }
    stale.sort();
    if !dir.exists() {
        // Killed mid-swap: the `.old` of a dead process whose commit had begun.
        if let Some(pid) = stale.iter().find(|(_, old, _)| *old).map(|(pid, _, _)| *pid) {
            let tmp = parent.join(format!(".{name}.tmp-{pid}"));
            let old = parent.join(format!(".{name}.old-{pid}"));
            let _ = fs::rename(&tmp, dir).or_else(|_| fs::rename(&old, dir));
        }
    }
    for (_, _, path) in stale {
        if path.exists() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_output_replaces_an_earlier_one_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let s = stage(&dir, |_| false).unwrap();
        fs::write(s.path().join("a"), "1").unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
        // An earlier output is replaced only when recognised.
        assert!(matches!(stage(&dir, |_| false), Err(OutdirError::Refused { .. })));
        let s = stage(&dir, |d| d.join("a").is_file()).unwrap();
        fs::write(s.path().join("b"), "2").unwrap();
        s.commit().unwrap();
        assert!(!dir.join("a").exists());
        assert_eq!(fs::read_to_string(dir.join("b")).unwrap(), "2");
        let left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["run"]);
    }

    #[test]
    fn a_dropped_stage_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let s = stage(&dir, |_| false).unwrap();
        fs::write(s.path().join("a"), "1").unwrap();
        drop(s);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out");
        // A pid that cannot be running: above the kernel's pid_max limit (2^22).
        let dead = 4_194_305u32;
        // An earlier output is in place; a dead process left temporaries beside it.
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("a"), "earlier").unwrap();
        for stale in [format!(".out.tmp-{dead}"), format!(".out.old-{dead}")] {
            fs::create_dir(root.path().join(stale)).unwrap();
        }
        // Another output's temporary is left alone.
        fs::create_dir(root.path().join(format!(".other.tmp-{dead}"))).unwrap();
        let s = stage(&dir, |d| d.join("a").is_file()).unwrap();
        let mut names: Vec<String> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                format!(".other.tmp-{dead}"),
                format!(".out.tmp-{}", std::process::id()),
                "out".to_string()
            ]
        );
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "earlier");
        drop(s);
    }

    /// A process killed between moving the earlier output aside and moving the new one in left
    /// no output directory: the next stage puts the complete new output in place.
    #[test]
    fn an_interrupted_swap_is_finished_by_the_next_stage() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let dead = 4_194_305u32;
        let old = root.path().join(format!(".run.old-{dead}"));
        let tmp = root.path().join(format!(".run.tmp-{dead}"));
        fs::create_dir(&old).unwrap();
        fs::write(old.join("a"), "earlier").unwrap();
        fs::create_dir(&tmp).unwrap();
        fs::write(tmp.join("a"), "new").unwrap();
        let s = stage(&dir, |d| d.join("a").is_file()).unwrap();
        drop(s);
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "new");
        let left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["run"]);
        // With only the earlier output aside (its new one already gone), that one comes back.
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir(&old).unwrap();
        fs::write(old.join("a"), "earlier").unwrap();
        drop(stage(&dir, |d| d.join("a").is_file()).unwrap());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "earlier");
    }

    #[test]
    fn files_and_foreign_directories_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(matches!(stage(&file, |_| true), Err(OutdirError::Refused { .. })));
        let foreign = root.path().join("photos");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("cat.jpg"), "x").unwrap();
        let e = stage(&foreign, |_| false).unwrap_err();
        assert!(e.to_string().contains("refusing to replace"), "{e}");
        assert!(foreign.join("cat.jpg").exists());
    }
}
