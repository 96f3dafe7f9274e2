//! `tar://PATH` and `tar://stdin`: an archive unpacked into the context directory by the layer
//! unpacker (`fs/unpack.rs`), the security boundary for hostile tars: absolute paths, `..`,
//! links that climb out, device nodes and entries past `--max-file-size` or
//! `--max-layer-size` are refused, naming the entry. Compression is read from the first bytes:
//! gzip (what kaniko requires on stdin), zstd, or none.
//!
//! The archive is read once, as a stream (stdin cannot be read twice, a download is unpacked as
//! it arrives), hashed on the way: the digest reported is that of the bytes given, to the last
//! one (trailing padding included). [`unpack_archive`] is that step for every kind of context
//! that is an archive.
//!
//! A stop ([`FetchOptions::stop`]) is looked at by the unpacker between entries and chunks, by
//! the reading of what follows the archive's end, and by the count of what was unpacked: a big
//! context ends within a chunk of the signal.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{ContextError, ContextKind, ContextOrigin, FetchOptions, TarInput};
use crate::digest::HashingReader;
use crate::fs::cancel::Checked;
use crate::fs::{Cancel, FsError, IgnoreList, Root, UnpackOptions, unpack_layer};

pub(super) fn fetch(
    input: &TarInput,
    dir: &Path,
    shown: &str,
    opts: &FetchOptions<'_>,
) -> Result<ContextOrigin, ContextError> {
    let io = |what: String| {
        let s = shown.to_string();
        move |source: std::io::Error| ContextError::Io { source_: s, what, source }
    };
    let raw: Box<dyn Read> = match input {
        TarInput::File(p) => Box::new(std::fs::File::open(p).map_err(io(format!("open {}", p.display())))?),
        TarInput::Stdin => {
            use std::io::IsTerminal;
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(ContextError::Invalid {
                    source_: shown.to_string(),
                    reason: "standard input is a terminal, not an archive: pipe the context in (`tar -cz . | \
                             trowel …`, or `kubectl run … -i` / `--stdin`)"
                        .into(),
                });
            }
            Box::new(stdin.lock())
        }
    };
    unpack_archive(raw, ContextKind::Tar, dir, shown, opts)
}

/// Unpacks the archive `raw` gives (plain, gzip or zstd, read from its first bytes) into `dir`,
/// reading it once, as a stream, to its last byte: what every archive-shaped context does
/// (`tar://`, and the downloaded kinds as they arrive).
pub(super) fn unpack_archive(
    raw: Box<dyn Read + '_>,
    kind: ContextKind,
    dir: &Path,
    shown: &str,
    opts: &FetchOptions<'_>,
) -> Result<ContextOrigin, ContextError> {
    let io = |what: String| {
        let s = shown.to_string();
        move |source: std::io::Error| ContextError::Io { source_: s, what, source }
    };
    let cancel = opts.cancel();
    let mut hashing = HashingReader::new(raw);
    let root = Root::open(dir).map_err(|source| ContextError::Tar { source_: shown.to_string(), source })?;
    let unpack = UnpackOptions {
        ignore: IgnoreList::default(),
        allow_devices: false,
        // The context's files are read, never installed: whoever owned them elsewhere does not
        // matter here (COPY gives them 0:0 or --chown's owner).
        preserve_owner: false,
        max_entry_size: opts.limits.max_file_size,
        max_total_size: opts.limits.max_total_size,
        max_entries: opts.limits.max_entries,
        select: None,
        overlay_lower: false,
        skip_devices: false,
        owners_to_root: false,
        archive_names: false,
        cancel: cancel.clone(),
        written: None,
    };
    {
        let mut buffered = BufReader::with_capacity(256 * 1024, &mut hashing);
        let head = buffered.fill_buf().map_err(io("read the archive".into()))?.to_vec();
        let tar: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(buffered))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(io("start a zstd decoder".into()))?)
        } else if head.is_empty() {
            return Err(ContextError::Invalid { source_: shown.to_string(), reason: "the archive is empty".into() });
        } else {
            Box::new(buffered)
        };
        unpack_layer(&root, tar, &unpack).map_err(|source| match source {
            // A system call on the context's directory failed (a full disk): not a refusal.
            FsError::Io { op, path, root, source } => {
                ContextError::Io { source_: shown.to_string(), what: format!("{op} {path} (in {root})"), source }
            }
            source => ContextError::Tar { source_: shown.to_string(), source },
        })?;
    }
    // What follows the archive's end (its zero blocks, a compressor's padding) is part of what
    // was given, and of its digest; it is bounded like the archive.
    let limit = opts.limits.max_total_size.unwrap_or(u64::MAX);
    let mut rest = Checked::new((&mut hashing).take(limit), cancel.as_ref());
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(io("read the archive".into()))?;
    let (_, digest, bytes) = hashing.finish();
    let (mut files, mut newest) = (0u64, None::<i64>);
    for e in walkdir::WalkDir::new(dir).follow_links(false).into_iter().filter_map(Result::ok) {
        Cancel::check(cancel.as_ref()).map_err(|source| ContextError::Tar { source_: shown.to_string(), source })?;
        if e.file_type().is_file() {
            use std::os::unix::fs::MetadataExt;
            files += 1;
            // As unpacked: the archive's times, kept by the unpacker.
            let mtime = e.metadata().map_err(|e| io("read the unpacked context".into())(e.into()))?.mtime();
            newest = newest.max(Some(mtime));
        }
    }
    Ok(ContextOrigin {
        kind,
        source: shown.to_string(),
        reference: None,
        commit: None,
        digest,
        bytes,
        files,
        sub_path: None,
        // A local archive dates nothing, as a local directory does not.
        time: if kind == ContextKind::Tar { None } else { newest },
    })
}
