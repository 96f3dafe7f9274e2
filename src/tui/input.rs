//! The input reader: a thread that reads terminal events (keys, mouse, resizes) and sends
//! them to the UI thread, so the UI never blocks on the keyboard.
//!
//! While a shell session has the terminal the reader must not read a single byte (the keys
//! belong to the shell), so the UI parks it first: [`InputReader::park`] returns only once the
//! thread has stopped polling. Polls are short (50 ms) so parking is quick.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event};

const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Run,
    /// Asked to park.
    Park,
    /// Parked: not touching the terminal.
    Parked,
    Stop,
}

pub struct InputReader {
    shared: Arc<(Mutex<State>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl InputReader {
    /// Starts reading; each event becomes `wrap(event)` on `tx`.
    pub fn spawn<T: Send + 'static>(tx: Sender<T>, wrap: fn(Event) -> T) -> InputReader {
        let shared = Arc::new((Mutex::new(State::Run), Condvar::new()));
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("trowel-tui-input".into())
            .spawn(move || {
                read_loop(&s, &tx, wrap);
                // Whatever ended the loop, nobody waits for a park that can no longer come.
                let (lock, cv) = &*s;
                *lock.lock().unwrap_or_else(|p| p.into_inner()) = State::Stop;
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

    pub fn stop(&mut self) {
        {
            let (lock, cv) = &*self.shared;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = State::Stop;
            cv.notify_all();
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for InputReader {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_loop<T>(shared: &(Mutex<State>, Condvar), tx: &Sender<T>, wrap: fn(Event) -> T) {
    let (lock, cv) = shared;
    loop {
        {
            let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match *st {
                    State::Run => break,
                    State::Stop => return,
                    State::Park => {
                        *st = State::Parked;
                        cv.notify_all();
                    }
                    State::Parked => {}
                }
                st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        match event::poll(POLL) {
            Ok(true) => match event::read() {
                Ok(e) => {
                    if tx.send(wrap(e)).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            // The terminal is gone (the pod's exec session ended): nothing more to read.
            Err(_) => return,
        }
    }
}
