//! Small text files' contents for the File pane's diff, read from the build root in a live
//! session.
//!
//! After every step the engine is stopped at a checkpoint with the build root on disk; the
//! probe reads the step's changed regular files that are small text (at most
//! [`MAX_FILE`] bytes, valid UTF-8, no NUL) through [`Root`] (so a hostile symlink cannot
//! lead outside the root), and pairs each with the content it saw for that path at an earlier
//! step: that is the "before" side. A file the probe never saw before (it came with the base
//! image, or was too large) has no "before" side. Memory is bounded: at most [`MAX_FILES`]
//! files a step and [`MAX_KEPT`] bytes remembered in all.

use std::collections::HashMap;
use std::io::Read;

use super::model::FileContent;
use crate::build::controller::{Checkpoint, When};
use crate::fs::{FileType, Root};

/// Largest file read.
pub const MAX_FILE: u64 = 64 * 1024;
/// Files read per step.
pub const MAX_FILES: usize = 200;
/// Bytes of earlier contents kept for "before" sides.
pub const MAX_KEPT: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct ContentProbe {
    seen: HashMap<String, String>,
    kept: usize,
}

impl ContentProbe {
    /// The contents of what the step at this checkpoint changed (after a step with a root).
    pub fn probe(&mut self, at: &Checkpoint) -> Vec<FileContent> {
        let (Some(dir), Some(report), When::AfterStep) = (&at.root_dir, &at.report, at.when) else {
            return Vec::new();
        };
        let Ok(root) = Root::open(dir) else { return Vec::new() };
        let mut out = Vec::new();
        for path in report.changed_paths.iter().take(MAX_FILES) {
            let after = read_text(&root, path);
            let before = match &after {
                Some(text) => self.remember(path, text.clone()),
                None => self.forget(path),
            };
            if before.is_some() || after.is_some() {
                out.push(FileContent { path: path.clone(), before, after });
            }
        }
        out
    }

    /// Records the current content; returns the previous one.
    fn remember(&mut self, path: &str, text: String) -> Option<String> {
        let prev = self.forget(path);
        if self.kept + text.len() <= MAX_KEPT {
            self.kept += text.len();
            self.seen.insert(path.to_string(), text);
        }
        prev
    }

    fn forget(&mut self, path: &str) -> Option<String> {
        let prev = self.seen.remove(path);
        if let Some(p) = &prev {
            self.kept -= p.len();
        }
        prev
    }
}

/// A small regular file's text, if it is text.
fn read_text(root: &Root, path: &str) -> Option<String> {
    let (file, stat) = root.open_file_nofollow(path).ok()?;
    if stat.file_type != FileType::File || stat.size > MAX_FILE {
        return None;
    }
    let mut buf = Vec::with_capacity(stat.size as usize);
    file.take(MAX_FILE + 1).read_to_end(&mut buf).ok()?;
    if buf.len() as u64 > MAX_FILE || buf.contains(&0) {
        return None;
    }
    String::from_utf8(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::controller::StepReport;
    use crate::build::event::{StepId, StepStatus};

    fn after(dir: &std::path::Path, paths: &[&str]) -> Checkpoint {
        Checkpoint {
            when: When::AfterStep,
            id: StepId { stage: 0, step: 1 },
            line: 2,
            stage_name: None,
            keyword: "RUN".into(),
            expanded: "RUN x".into(),
            report: Some(StepReport {
                status: StepStatus::Built,
                error: None,
                exit_code: None,
                layer_size: None,
                changed_paths: paths.iter().map(|p| p.to_string()).collect(),
                cache_miss: false,
            }),
            root_dir: Some(dir.to_path_buf()),
        }
    }

    #[test]
    fn pairs_contents_across_steps_and_reads_only_small_text_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret\n").unwrap();
        let p = |n: &str| root.path().join(n);
        std::fs::create_dir(p("etc")).unwrap();
        std::fs::write(p("etc/app.conf"), "debug = true\n").unwrap();
        std::fs::write(p("blob"), b"\x7fELF\0\0").unwrap();
        std::fs::write(p("big"), "x".repeat(MAX_FILE as usize + 1)).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), p("link")).unwrap();
        let mut probe = ContentProbe::default();
        let got = probe.probe(&after(root.path(), &["/etc/app.conf", "/blob", "/big", "/link", "/missing"]));
        assert_eq!(
            got,
            vec![FileContent { path: "/etc/app.conf".into(), before: None, after: Some("debug = true\n".into()) }],
            "binary, large, symlinked and missing files are skipped"
        );
        // A later step rewrites the file, then another deletes it.
        std::fs::write(p("etc/app.conf"), "debug = false\n").unwrap();
        let got = probe.probe(&after(root.path(), &["/etc/app.conf"]));
        assert_eq!(got[0].before.as_deref(), Some("debug = true\n"));
        assert_eq!(got[0].after.as_deref(), Some("debug = false\n"));
        std::fs::remove_file(p("etc/app.conf")).unwrap();
        let got = probe.probe(&after(root.path(), &["/etc/app.conf"]));
        assert_eq!((got[0].before.as_deref(), got[0].after.as_deref()), (Some("debug = false\n"), None));
        assert_eq!(probe.kept, 0, "forgotten once deleted");
        // Before a step, or without a root, there is nothing to read.
        let mut before = after(root.path(), &["/etc/app.conf"]);
        before.when = When::BeforeStep;
        assert!(probe.probe(&before).is_empty());
    }
}
