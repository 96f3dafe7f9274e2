//! The input reader: a thread that reads terminal events (keys, mouse, resizes) and sends
//! them to the UI thread, so the UI never blocks on the keyboard.
//!
//! While a shell session has the terminal the reader must not read a single byte (the keys
//! belong to the shell), so the UI parks it first: [`InputReader::park`] returns only once the
//! thread has stopped polling. Polls are short (50 ms) so parking is quick.
//!
//! The terminal can go away under the reader (a tmux server killed, a pod's exec session torn
//! down). crossterm then reads the hung-up terminal forever, each read returning nothing at once,
//! and never returns (its read loop retries on end of file and on errors other than "would
//! block"). So the reader waits on the terminal itself and hands it to crossterm only while it
//! has not hung up; a hangup ends the reader and tells the UI ([`Input::Gone`]), which ends the
//! session as SIGHUP does. [`InputReader::stop`] waits a bounded time for the thread, so a reader
//! stuck in crossterm all the same cannot keep the process alive.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};
use rustix::event::{PollFd, PollFlags, Timespec};

const POLL: Duration = Duration::from_millis(50);

/// How long [`InputReader::stop`] waits for the thread before leaving it behind (it ends with
/// the process).
const STOP_WAIT: Duration = Duration::from_secs(1);

/// What the reader sends the UI.
#[derive(Debug)]
pub enum Input {
    Event(Event),
    /// The terminal hung up: no key can come any more.
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Run,
    /// Asked to park.
    Park,
    /// Parked: not touching the terminal.
    Parked,
    Stop,
    /// The thread has ended.
    Ended,
}

pub struct InputReader {
    shared: Arc<(Mutex<State>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl InputReader {
    /// Starts reading; each event becomes `wrap(event)` on `tx`.
    pub fn spawn<T: Send + 'static>(tx: Sender<T>, wrap: fn(Input) -> T) -> InputReader {
        let shared = Arc::new((Mutex::new(State::Run), Condvar::new()));
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("trowel-tui-input".into())
            .spawn(move || {
                read_loop(&s, &tx, wrap);
                // Whatever ended the loop, nobody waits for a park that can no longer come.
                let (lock, cv) = &*s;
                *lock.lock().unwrap_or_else(|p| p.into_inner()) = State::Ended;
                cv.notify_all();
            })
            .expect("spawn the input thread");
        InputReader { shared, handle: Some(handle) }
    }

    /// Stops reading until [`InputReader::resume`]; returns once the thread is parked.
    pub fn park(&self) {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        if *st == State::Run {
            *st = State::Park;
            cv.notify_all();
        }
        while *st == State::Park {
            let (g, _) = cv.wait_timeout(st, Duration::from_secs(1)).unwrap_or_else(|p| p.into_inner());
            st = g;
        }
    }

    pub fn resume(&self) {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*st, State::Park | State::Parked) {
            *st = State::Run;
            cv.notify_all();
        }
    }

    /// Ends the thread: waits for it at most [`STOP_WAIT`], then leaves it to end with the
    /// process.
    pub fn stop(&mut self) {
        let ended = {
            let (lock, cv) = &*self.shared;
            let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
            if *st != State::Ended {
                *st = State::Stop;
                cv.notify_all();
            }
            let until = Instant::now() + STOP_WAIT;
            while *st != State::Ended {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st = cv.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            *st == State::Ended
        };
        if let Some(h) = self.handle.take()
            && ended
        {
            let _ = h.join();
        }
    }
}

impl Drop for InputReader {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_loop<T>(shared: &(Mutex<State>, Condvar), tx: &Sender<T>, wrap: fn(Input) -> T) {
    let (lock, cv) = shared;
    let Ok(tty) = Tty::open() else {
        // No terminal to read: crossterm could not read one either.
        let _ = tx.send(wrap(Input::Gone));
        return;
    };
    loop {
        {
            let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match *st {
                    State::Run => break,
                    State::Stop | State::Ended => return,
                    State::Park => {
                        *st = State::Parked;
                        cv.notify_all();
                    }
                    State::Parked => {}
                }
                st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        // Wait here, not in crossterm, so a hangup is seen before crossterm reads. Whether bytes
        // came or not, crossterm is then asked without waiting: it may hold events from an
        // earlier read, and it turns SIGWINCH into resizes.
        if tty.hung_up(POLL) {
            let _ = tx.send(wrap(Input::Gone));
            return;
        }
        loop {
            match event::poll(Duration::ZERO) {
                Ok(true) => match event::read() {
                    Ok(e) => {
                        if tx.send(wrap(Input::Event(e))).is_err() {
                            return;
                        }
                    }
                    // The UI is told, as of a hangup: it may hold other senders (a signal
                    // watcher's) and would wait for ever on a reader that ended in silence.
                    Err(_) => {
                        let _ = tx.send(wrap(Input::Gone));
                        return;
                    }
                },
                Ok(false) => break,
                Err(_) => {
                    let _ = tx.send(wrap(Input::Gone));
                    return;
                }
            }
        }
    }
}

/// The terminal crossterm reads: standard input when it is one, else `/dev/tty` (as crossterm
/// chooses), opened here only to be polled.
enum Tty {
    Stdin(std::io::Stdin),
    DevTty(OwnedFd),
}

impl Tty {
    fn open() -> std::io::Result<Tty> {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Ok(Tty::Stdin(stdin));
        }
        let f = std::fs::File::options().read(true).write(true).open("/dev/tty")?;
        Ok(Tty::DevTty(f.into()))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Tty::Stdin(s) => s.as_fd(),
            Tty::DevTty(fd) => fd.as_fd(),
        }
    }

    /// Waits up to `timeout` for input; whether the terminal has hung up (or cannot be polled).
    fn hung_up(&self, timeout: Duration) -> bool {
        let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: timeout.subsec_nanos() as i64 };
        let mut fds = [PollFd::from_borrowed_fd(self.fd(), PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(_) => fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
            Err(rustix::io::Errno::INTR) => false,
            Err(_) => true,
        }
    }
}
