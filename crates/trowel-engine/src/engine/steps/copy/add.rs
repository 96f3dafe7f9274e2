//! What ADD does beyond COPY: remote URLs and local archive extraction (tar, plain or gzip,
//! bzip2, xz, zstd compressed, with Docker's rules for directories that exist); plus heredoc
//! files, which both share.

use std::io::{Read, Write};

use futures_util::StreamExt;

use crate::chmod::Chmod;
use crate::digest::{Digest, Hasher};
use crate::engine::context::BuildContext;
use crate::engine::error::StepError;
use crate::engine::remote_context::percent_decoded;
use crate::engine::steps::join_clean;
use crate::fs::FsError;
use crate::fs::copy::{CopyOptions, Filter, copy_tree};
use crate::fs::root::Root;
use crate::fs::unpack::{UnpackOptions, unpack_layer};

/// Writes a heredoc source as a file.
pub fn write_inline(
    dst: &Root,
    target: &str,
    content: &[u8],
    chmod: Option<&Chmod>,
    owner: Option<(u32, u32)>,
) -> Result<(), StepError> {
    let owner = owner.unwrap_or((0, 0));
    if let Some((parent, _)) = target.rsplit_once('/')
        && !parent.is_empty()
    {
        dst.mkdir_all(parent, parent_mode(chmod), Some(owner)).map_err(StepError::fs(format!("create {parent}")))?;
    }
    // BuildKit writes a heredoc 0644, then copies it with --chmod as any file.
    let mode = chmod.map_or(0o644, |c| c.apply(0o644, false));
    let mut f = dst.create_file(target, mode).map_err(StepError::fs(format!("create {target}")))?;
    f.write_all(content).map_err(StepError::io(format!("write {target}")))?;
    drop(f);
    // The owner first: a chown clears setuid and setgid.
    dst.set_owner(target, owner.0, owner.1).map_err(StepError::fs(format!("chown {target}")))?;
    dst.set_mode(target, mode).map_err(StepError::fs(format!("chmod {target}")))?;
    Ok(())
}

/// The mode of the parents a copied file's destination needs: an octal --chmod's permission
/// bits, as BuildKit makes them (fsutil's `MkdirAll(ensureDstPath, *ci.Mode)`, since
/// fsutil#228), else 0755 (a symbolic one has no mode of its own to give).
fn parent_mode(chmod: Option<&Chmod>) -> u32 {
    chmod.and_then(Chmod::made_dir_mode).unwrap_or(0o755)
}

/// A file ADD downloaded, kept in the work dir for the rest of the build (the cache key
/// planner and the step itself use the same download).
#[derive(Debug, Clone)]
pub(crate) struct Download {
    pub path: std::path::PathBuf,
    pub digest: Digest,
    /// From `Last-Modified`.
    pub mtime: Option<i64>,
    /// The file name a destination directory gets (last URL path segment).
    pub name: String,
}

/// Downloads `url` once per build, verifying `--checksum` when given.
pub(crate) fn fetch_url(ctx: &BuildContext<'_>, url: &str, checksum: Option<&str>) -> Result<Download, StepError> {
    let want = match checksum {
        Some(c) => Some(c.parse::<Digest>().map_err(|e| StepError::Invalid(format!("--checksum: {e}")))?),
        None => None,
    };
    let dl = match ctx.download(url) {
        Some(d) => d,
        None => {
            let d = download(ctx, url)?;
            ctx.remember_download(url, d.clone());
            d
        }
    };
    if let Some(want) = want
        && want != dl.digest
    {
        return Err(StepError::Invalid(format!("ADD {url}: checksum mismatch: expected {want}, got {}", dl.digest)));
    }
    Ok(dl)
}

/// The name a downloaded file gets in a destination directory, as BuildKit's `dispatchCopy`
/// names it (`path.Base` of the URL's decoded path): `…/my%20file.txt` → `my file.txt`,
/// `…/dir/` → `dir`, and `__unnamed__` when the path names nothing (`http://host/`). A `..`
/// is not taken as a name either.
fn url_file_name(url: &str) -> String {
    let path = reqwest::Url::parse(url).map(|u| percent_decoded(u.path())).unwrap_or_default();
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

fn download(ctx: &BuildContext<'_>, url: &str) -> Result<Download, StepError> {
    let name = url_file_name(url);
    let tmp_dir = ctx.scratch_dir("add-url")?;
    let path = tmp_dir.join("download");
    let (digest, mtime) = ctx.rt.block_on(async {
        let client = reqwest::Client::builder()
            .user_agent(format!("trowel/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(http(url))?;
        let resp = client.get(url).send().await.map_err(http(url))?;
        if !resp.status().is_success() {
            return Err(StepError::Invalid(format!("ADD {url}: HTTP {}", resp.status())));
        }
        let mtime = crate::engine::remote_context::last_modified(resp.headers());
        let mut file = std::fs::File::create(&path).map_err(StepError::io(format!("ADD {url}: save")))?;
        let mut hasher = Hasher::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(http(url))?;
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(StepError::io(format!("ADD {url}: save")))?;
        }
        Ok::<_, StepError>((hasher.finish(), mtime))
    })?;
    Ok(Download { path, digest, mtime, name })
}

/// Writes a downloaded file into the root (mode 0600 unless `--chmod`, as Docker). Returns the
/// path a snapshot must cover.
pub fn install_download(
    dst: &Root,
    dl: &Download,
    dest: &str,
    dest_is_dir: bool,
    chmod: Option<&Chmod>,
    owner: Option<(u32, u32)>,
) -> Result<String, StepError> {
    let target = if dest_is_dir {
        format!("{}/{}", dest.trim_end_matches('/'), dl.name)
    } else {
        super::through_symlink(dst, dest).map_err(StepError::fs(dest.to_string()))?
    };
    let scope = super::scope_path(dst, &target).map_err(StepError::Invalid)?;
    let owner = owner.unwrap_or((0, 0));
    if let Some((parent, _)) = target.rsplit_once('/')
        && !parent.is_empty()
    {
        dst.mkdir_all(parent, parent_mode(chmod), Some(owner)).map_err(StepError::fs(format!("create {parent}")))?;
    }
    let mode = chmod.map_or(0o600, |c| c.apply(0o600, false));
    let mut out = dst.create_file(&target, mode).map_err(StepError::fs(format!("create {target}")))?;
    let mut src = std::fs::File::open(&dl.path).map_err(StepError::io(format!("ADD: read download of {}", dl.name)))?;
    std::io::copy(&mut src, &mut out).map_err(StepError::io(format!("write {target}")))?;
    drop(out);
    // The owner first: a chown clears setuid and setgid.
    dst.set_owner(&target, owner.0, owner.1).map_err(StepError::fs(format!("chown {target}")))?;
    dst.set_mode(&target, mode).map_err(StepError::fs(format!("chmod {target}")))?;
    if let Some(t) = dl.mtime {
        let ts = crate::fs::Timespec::new(t, 0);
        dst.set_times(&target, ts, ts).map_err(StepError::fs(format!("set times on {target}")))?;
    }
    Ok(scope)
}

/// Compression formats ADD recognises by their magic bytes.
fn decompressor<'a>(magic: &[u8], r: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>, StepError> {
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if magic.starts_with(b"BZh") {
        // Multi-stream: `pbzip2` and `lbzip2` write concatenated streams.
        Box::new(bzip2::read::MultiBzDecoder::new(r))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new(r))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(r).map_err(StepError::io("start a zstd decoder"))?)
    } else {
        r
    })
}

/// The root a download's file is in, and its name there.
fn download_root(dl: &Download) -> Result<(Root, &str), StepError> {
    let dir = dl.path.parent().ok_or_else(|| StepError::Invalid("a download has no directory".into()))?;
    let root = Root::open(dir).map_err(StepError::fs("open the download's directory"))?;
    let name = dl.path.file_name().and_then(|n| n.to_str()).unwrap_or("download");
    Ok((root, name))
}

/// Whether a downloaded file is a tar archive (`ADD --unpack=true`), by content.
pub(crate) fn download_is_archive(dl: &Download) -> Result<bool, StepError> {
    let (root, name) = download_root(dl)?;
    is_archive(&root, name)
}

/// Extracts a downloaded archive into `dest`, as [`extract`] does a local one.
pub(crate) fn extract_download(
    ctx: &BuildContext<'_>,
    dl: &Download,
    url: &str,
    dst: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), StepError> {
    let (root, name) = download_root(dl)?;
    extract_as(ctx, &root, name, url, dst, dest, owner)
}

/// Is this file a tar archive (possibly compressed)? Decides by content, as Docker does.
pub fn is_archive(src: &Root, rel: &str) -> Result<bool, StepError> {
    let mut f = src.open_file(rel).map_err(StepError::fs(rel))?;
    let mut magic = [0u8; 6];
    let n = read_full(&mut f, &mut magic).map_err(StepError::io(rel))?;
    let f = src.open_file(rel).map_err(StepError::fs(rel))?;
    let mut r = match decompressor(&magic[..n], Box::new(f)) {
        Ok(r) => r,
        Err(_) => return Ok(false),
    };
    let mut block = [0u8; 512];
    let n = read_full(&mut r, &mut block).unwrap_or(0);
    if n < 512 {
        return Ok(false);
    }
    // POSIX ustar / GNU magic, or a valid v7 header checksum.
    if &block[257..262] == b"ustar" {
        return Ok(true);
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok());
    let sum: u32 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 }).sum();
    Ok(stored == Some(sum) && block[0] != 0)
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Extracts a local archive into `dest` (a directory). The archive is hostile input: it is
/// unpacked with the same safe unpacker as layers into a scratch root, then copied over.
pub(crate) fn extract(
    ctx: &BuildContext<'_>,
    src: &Root,
    rel: &str,
    dst: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), StepError> {
    extract_as(ctx, src, rel, rel, dst, dest, owner)
}

/// [`extract`], its errors naming the archive `label` (a download's URL, say).
fn extract_as(
    ctx: &BuildContext<'_>,
    src: &Root,
    rel: &str,
    label: &str,
    dst: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), StepError> {
    let mut f = src.open_file(rel).map_err(StepError::fs(label))?;
    let mut magic = [0u8; 6];
    let n = read_full(&mut f, &mut magic).map_err(StepError::io(label))?;
    let f = src.open_file(rel).map_err(StepError::fs(label))?;
    let reader = decompressor(&magic[..n], Box::new(f))?;
    let scratch = ctx.scratch_dir("add-extract")?;
    let tmp_root = Root::open(&scratch).map_err(StepError::fs("open the extraction directory"))?;
    let opts = UnpackOptions { archive_names: true, ..ctx.unpack_options() };
    let stats = unpack_layer(&tmp_root, reader, &opts).map_err(ctx.step_fs_failed(format!("extract {label}")))?;
    dst.mkdir_all(dest, 0o755, Some(owner.unwrap_or((0, 0)))).map_err(StepError::fs(format!("create {dest}")))?;
    let dirs =
        archive_dirs(&tmp_root, dst, dest, &stats.implied_dirs).map_err(StepError::fs(format!("extract {label}")))?;
    // In container isolation `/` holds what the container owns (its mounts, /proc…): the archive
    // never changes those directories.
    let kept = |p: &str| ctx.slash_keep.as_ref().is_some_and(|k| k.is_ignored(p));
    for link in replace_linked_dirs(dst, &dirs, &kept).map_err(StepError::fs(format!("extract {label}")))? {
        ctx.emitter.warn(format!(
            "ADD {label}: {link}; the archive's directory entry replaces it with a directory, as BuildKit's \
             untar does (what the link led to is no longer reached through it)"
        ));
    }
    let all = |_: &str| Filter::Copy;
    // An archive of many files takes as long to copy over as to unpack: a stop gives either up
    // (the scratch root goes with the build's work dir) and is the build's abort.
    let cancel = ctx.fs_cancel();
    let opts = CopyOptions {
        owner,
        chmod: None,
        preserve_times: true,
        filter: &all,
        overwrite_dirs: false,
        watch: None,
        cancel: cancel.as_ref(),
    };
    copy_tree(&tmp_root, "/", dst, dest, &opts).map_err(ctx.step_fs_failed(format!("extract {label} into {dest}")))?;
    settle_dirs(&tmp_root, dst, &dirs, owner, &kept).map_err(StepError::fs(format!("extract {label} into {dest}")))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// A directory of an extracted archive: where it is in the scratch root and in the destination,
/// whether the archive declared it, and whether the destination had it before.
struct ArchiveDir {
    scratch: String,
    target: String,
    implied: bool,
    existed: bool,
}

/// Every directory of the unpacked archive below its root (parents first), noting which ones the
/// destination already has. Called before the copy.
fn archive_dirs(tmp: &Root, dst: &Root, dest: &str, implied: &[String]) -> Result<Vec<ArchiveDir>, FsError> {
    let mut out = Vec::new();
    let mut stack = vec!["/".to_string()];
    while let Some(dir) = stack.pop() {
        for name in tmp.read_dir(&dir)? {
            let p = if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") };
            if !tmp.lstat(&p)?.is_some_and(|s| s.is_dir()) {
                continue;
            }
            let target = join_clean(dest, p.trim_start_matches('/'));
            let existed = dst.lstat(&target)?.is_some_and(|s| s.is_dir());
            out.push(ArchiveDir { implied: implied.binary_search(&p).is_ok(), scratch: p.clone(), target, existed });
            stack.push(p);
        }
    }
    Ok(out)
}

/// A directory entry of the archive where the destination has a symlink (a merged-`/usr` image's
/// `/bin`, say): BuildKit's untar (go-archive's `createTarFile`) removes whatever is not a
/// directory before it makes one, a symlink to a directory included, so the entry's directory
/// replaces the link, as plain `tar -x` does. A directory the archive only implies is reached
/// through the link instead (its files land where the link points), as in BuildKit, which
/// untars in a chroot of the destination. Removes those links; says what each was.
fn replace_linked_dirs(dst: &Root, dirs: &[ArchiveDir], kept: &dyn Fn(&str) -> bool) -> Result<Vec<String>, FsError> {
    let mut replaced = Vec::new();
    for d in dirs.iter().filter(|d| !d.implied && !kept(&d.target)) {
        if dst.lstat(&d.target)?.is_some_and(|s| s.file_type == crate::fs::FileType::Symlink) {
            let to = dst.read_link(&d.target)?;
            dst.remove_all(&d.target)?;
            replaced.push(format!("{} was a symlink to {to} in the image", d.target));
        }
    }
    Ok(replaced)
}

/// What Docker's (and BuildKit's) untar does to directories that the copy leaves alone: a
/// directory entry of the archive gives an existing directory its owner (or `--chown`'s), mode
/// and times; a directory the archive only implies is created 0755 and owned by 0:0 even with
/// `--chown`, and an existing one is left as it was. The archive's own root entry (`./`) never
/// changes the destination directory.
fn settle_dirs(
    tmp: &Root,
    dst: &Root,
    dirs: &[ArchiveDir],
    owner: Option<(u32, u32)>,
    kept: &dyn Fn(&str) -> bool,
) -> Result<(), FsError> {
    let mut times = Vec::new();
    for d in dirs.iter().filter(|d| !kept(&d.target)) {
        match (d.implied, d.existed) {
            (false, true) => {
                let Some(st) = tmp.lstat(&d.scratch)? else { continue };
                let (uid, gid) = owner.unwrap_or((st.uid, st.gid));
                dst.set_owner(&d.target, uid, gid)?;
                dst.set_mode(&d.target, st.mode)?;
                times.push((d.target.as_str(), st.atime, st.mtime));
            }
            (true, false) if owner.is_some() => dst.set_owner(&d.target, 0, 0)?,
            _ => {}
        }
    }
    // Deepest first, so no later change inside a directory moves its mtime again.
    for (p, atime, mtime) in times.into_iter().rev() {
        dst.set_times(p, atime, mtime)?;
    }
    Ok(())
}

/// A failed download of `url`.
fn http(url: &str) -> impl Fn(reqwest::Error) -> StepError + '_ {
    move |source| StepError::Download { url: url.to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::url_file_name;

    #[test]
    fn a_download_is_named_as_buildkit_names_it() {
        assert_eq!(url_file_name("http://h/dir/app.tar.gz?x=1#f"), "app.tar.gz");
        assert_eq!(url_file_name("http://h/dir/my%20file.txt"), "my file.txt");
        assert_eq!(url_file_name("http://h/dir/"), "dir");
        assert_eq!(url_file_name("http://h/"), "__unnamed__");
        assert_eq!(url_file_name("http://example.com"), "__unnamed__");
        assert_eq!(url_file_name("http://h/a/.."), "__unnamed__");
    }
}
