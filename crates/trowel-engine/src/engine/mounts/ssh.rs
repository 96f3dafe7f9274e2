//! ssh agent forwarding (`RUN --mount=type=ssh`, `--ssh ID=…`).
//!
//! The command never sees the user's agent socket itself: each ssh mount gets a socket of its
//! own ([`Proxy`]), owned by the mount's uid/gid with its mode (BuildKit: 0:0, 0600), whose
//! connections trowel relays to the agent. That is what lets a non-root `USER` use it, and what
//! container isolation can put at the target without a bind mount. The relay passes bytes, so
//! keys never leave the agent.
//!
//! `--ssh ID=KEYFILE` (buildx's syntax) needs an agent holding those keys: trowel starts
//! `ssh-agent` for the build ([`KeyAgent`]), loads them with `ssh-add`, and stops it at the end.
//! Those are OpenSSH's own tools, so every key type and format OpenSSH reads works;
//! passphrase-protected keys cannot be loaded without a terminal and are refused with the
//! reason.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A socket for one ssh mount, relaying to an agent while it lives.
pub(crate) struct Proxy {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `path` (owned `uid:gid`, mode `mode`) and relays every connection to the
    /// agent at `upstream`.
    pub fn start(upstream: &Path, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<Proxy> {
        let listener = UnixListener::bind(path)?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<UnixStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (s, o, up) = (stop.clone(), open.clone(), upstream.to_path_buf());
        let acceptor =
            std::thread::Builder::new().name("ssh-proxy".into()).spawn(move || accept_loop(&listener, &up, &s, &o))?;
        Ok(Proxy { path: path.to_path_buf(), stop, open, acceptor: Some(acceptor) })
    }
}

fn accept_loop(listener: &UnixListener, upstream: &Path, stop: &AtomicBool, open: &Mutex<Vec<UnixStream>>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let Ok(agent) = UnixStream::connect(upstream) else {
                    // The agent went away: the client sees its connection close.
                    continue;
                };
                if let (Ok(c2), Ok(a2)) = (client.try_clone(), agent.try_clone()) {
                    let mut list = open.lock().unwrap_or_else(|p| p.into_inner());
                    list.push(c2);
                    list.push(a2);
                }
                relay(client, agent);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies bytes both ways until either side closes.
fn relay(client: UnixStream, agent: UnixStream) {
    let pump = |mut from: UnixStream, mut to: UnixStream| {
        move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        }
    };
    let (Ok(c2), Ok(a2)) = (client.try_clone(), agent.try_clone()) else { return };
    let _ = std::thread::Builder::new().name("ssh-relay".into()).spawn(pump(client, agent));
    let _ = std::thread::Builder::new().name("ssh-relay".into()).spawn(pump(a2, c2));
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for s in self.open.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An `ssh-agent` trowel started to serve key files for the build.
pub(crate) struct KeyAgent {
    pub socket: PathBuf,
    child: Child,
    dir: PathBuf,
}

impl KeyAgent {
    /// Starts `ssh-agent` with its socket in `dir` (made here, mode 0700) and loads `keys`.
    pub fn start(dir: &Path, keys: &[PathBuf]) -> Result<KeyAgent, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
        let socket = dir.join("agent.sock");
        let child = crate::sandbox::userns::command("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("start ssh-agent to serve the key files (OpenSSH's ssh-agent must be installed): {e}")
            })?;
        let mut agent = KeyAgent { socket, child, dir: dir.to_path_buf() };
        let t0 = Instant::now();
        while UnixStream::connect(&agent.socket).is_err() {
            if t0.elapsed() > Duration::from_secs(10) || agent.child.try_wait().ok().flatten().is_some() {
                return Err("ssh-agent did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in keys {
            let out = crate::sandbox::userns::command("ssh-add")
                .arg("-q")
                .arg(key)
                .env_clear()
                .env("SSH_AUTH_SOCK", &agent.socket)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("run ssh-add (OpenSSH's ssh-add must be installed): {e}"))?;
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
                let why = if why.is_empty() {
                    "a passphrase-protected key cannot be loaded without a terminal".into()
                } else {
                    why
                };
                agent.stop();
                return Err(format!("load ssh key {}: {why}", key.display()));
            }
        }
        Ok(agent)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_relays_both_ways_with_its_own_owner_and_mode() {
        let t = tempfile::tempdir().unwrap();
        let upstream = t.path().join("agent.sock");
        let agent = UnixListener::bind(&upstream).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut c, _) = agent.accept().unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            c.write_all(&buf.iter().rev().copied().collect::<Vec<u8>>()).unwrap();
        });
        let path = t.path().join("proxy.sock");
        let proxy = Proxy::start(&upstream, &path, 1000, 1000, 0o600).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (1000, 1000, 0o600));
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"olleh");
        echo.join().unwrap();
        drop(proxy);
        assert!(!path.exists(), "the socket goes with the proxy");
    }
}
