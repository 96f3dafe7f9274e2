//! The terminal: raw mode, the alternate screen and mouse capture on entry; all undone on
//! exit, when a shell session needs the terminal, and by a panic hook, so that no path out
//! of the debugger (a quit, `ctrl-c`, an error, a panic on any thread) leaves the user's
//! terminal unusable.

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode, is_raw_mode_enabled,
};

/// Whether the debugger currently owns the terminal (the panic hook restores it only then).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// The name of the thread that runs the build under the debugger.
pub const ENGINE_THREAD: &str = "trowel-build";

/// Where the build thread's last panic happened (its message reaches the UI through
/// `catch_unwind`; the hook only adds the location).
static ENGINE_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Takes what the panic hook recorded about the build thread's panic.
pub fn take_engine_panic() -> Option<String> {
    ENGINE_PANIC.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Puts the terminal back the way a shell expects it. Safe to call more than once.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, Show);
        let _ = disable_raw_mode();
        let _ = out.flush();
    }
}

/// Restores the terminal before the default panic message is printed (the panic is then
/// readable, and the shell usable). A panic of the build thread while the debugger draws is
/// the exception: the debugger catches it and shows it as the build's failure, so the hook
/// only notes where it happened instead of printing over the screen.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) && std::thread::current().name() == Some(ENGINE_THREAD) {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                *ENGINE_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
                return;
            }
            restore();
            previous(info);
        }));
    });
}

pub struct Term {
    /// Always `Some` until dropped (see the `Drop` impl).
    terminal: Option<Terminal<CrosstermBackend<Stdout>>>,
    mouse: bool,
    suspended: bool,
}

impl Term {
    /// Takes over the terminal.
    pub fn enter(mouse: bool) -> io::Result<Term> {
        install_panic_hook();
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        let mut t = Term { terminal: Some(terminal), mouse, suspended: true };
        t.resume()?;
        Ok(t)
    }

    /// Gives the terminal back (for a shell session): normal screen, cooked mode, cursor.
    pub fn suspend(&mut self) {
        if !self.suspended {
            restore();
            self.suspended = true;
        }
    }

    /// Takes the terminal again after [`Term::suspend`], redrawing everything.
    pub fn resume(&mut self) -> io::Result<()> {
        if !self.suspended {
            return Ok(());
        }
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut out = io::stdout();
        execute!(out, EnterAlternateScreen, Hide)?;
        if self.mouse {
            execute!(out, EnableMouseCapture)?;
        }
        self.terminal_mut().clear()?;
        self.suspended = false;
        Ok(())
    }

    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Draws one frame.
    pub fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        self.terminal_mut().draw(render).map(|_| ())
    }

    fn terminal_mut(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        self.terminal.as_mut().expect("the terminal is only taken on drop")
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // ratatui's own drop shows a hidden cursor and, when that fails, reports it with
        // `eprintln!`, which panics when standard error is the same hung-up terminal: the
        // debugger then died before its build's roots were removed. The cursor is shown here;
        // a terminal that cannot take it is gone, and its `Terminal` is forgotten, not dropped.
        if let Some(mut t) = self.terminal.take()
            && t.show_cursor().is_err()
        {
            std::mem::forget(t);
        }
        restore();
        // A raw mode left by anything else (a crashed shell relay) is undone too.
        if is_raw_mode_enabled().unwrap_or(false) {
            let _ = disable_raw_mode();
        }
    }
}
