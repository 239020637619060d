//! `opsh top`: the whole stack on one screen, refreshed every top.refresh, acting on it with
//! keys; `--once` prints one frame as text for scripts and tests.
//!
//! The readings run on threads of their own (src/top/data.rs), so the loop here only draws and
//! reads keys: a key is handled within the 50 ms poll even while a backend times out.

mod actions;
mod app;
mod data;
mod input;
mod render;

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::runtime::Handle;

use crate::config::{Settings, key};
use crate::error::{Error, code};

/// What `opsh top` was asked for.
pub struct Options {
    pub once: bool,
    /// Passed on to the procedures the keys run.
    pub config: Option<std::path::PathBuf>,
}

pub fn run(settings: &Settings, handle: &Handle, options: &Options) -> Result<u8, Error> {
    let refresh = settings.duration(key::TOP_REFRESH);
    let stuck_after = crate::duration::format(settings.duration(key::JOBS_STUCK_AFTER_CHECK_JOBS));
    let target = settings.target_name().map(str::to_string);
    let (tx, rx) = mpsc::channel();
    data::spawn(settings, handle, &tx, options.once);
    drop(tx);
    if options.once {
        let mut app = app::App::new(false, refresh, target, stuck_after);
        let limit = settings.duration(key::TOP_TIMEOUT) + Duration::from_secs(5);
        for update in data::first_of_each(&rx, limit) {
            app.apply(update);
        }
        crate::output::out(&once(&app));
        return Ok(code::OK);
    }
    if !std::io::stdout().is_terminal() {
        return Err(Error::Usage {
            message: "opsh top needs a terminal; `opsh top --once` prints one frame as text".into(),
        });
    }
    let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = app::App::new(colour, refresh, target, stuck_after);
    let runner = actions::Runner::new(settings, handle, options.config.clone());
    interactive(&mut app, &rx, &runner)
}

/// One frame as text, the terminal's size (or COLUMNS×LINES, else 120×40).
fn once(app: &app::App) -> String {
    let (width, height) = size();
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => return format!("opsh top: {e}\n"),
    };
    if let Err(e) = terminal.draw(|f| render::draw(f, app)) {
        return format!("opsh top: {e}\n");
    }
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn size() -> (u16, u16) {
    if let Some((w, h)) = terminal_size::terminal_size() {
        return (w.0, h.0);
    }
    let env = |name: &str, default: u16| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|v| *v > 10)
            .unwrap_or(default)
    };
    (env("COLUMNS", 120), env("LINES", 40))
}

/// Restores the terminal when the view ends, however it ends (an error, a panic unwinding).
/// While the view is up, stderr (warnings, logs) goes to an unnamed temp file, which would
/// otherwise be written over the screen; its lines are printed, once each, after it.
struct Restore {
    saved_stderr: Option<(i32, std::fs::File)>,
}

impl Restore {
    fn new() -> Restore {
        use std::os::fd::AsRawFd;
        let saved_stderr = tempfile::tempfile().ok().and_then(|file| {
            // SAFETY: dup/dup2 on the process's own stderr and a file it owns; checked results.
            let saved = unsafe { libc::dup(2) };
            if saved < 0 {
                return None;
            }
            if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
                unsafe { libc::close(saved) };
                return None;
            }
            Some((saved, file))
        });
        Restore { saved_stderr }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
        let Some((saved, mut file)) = self.saved_stderr.take() else {
            return;
        };
        // SAFETY: puts back the stderr saved in new() and closes the copy.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
        use std::io::{Read, Seek};
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let mut seen = std::collections::HashSet::new();
            let lines: String = text
                .lines()
                .filter(|l| seen.insert(*l))
                .map(|l| format!("{l}\n"))
                .collect();
            crate::output::err(&lines);
        }
    }
}

fn interactive(
    app: &mut app::App,
    updates: &mpsc::Receiver<data::Update>,
    runner: &actions::Runner,
) -> Result<u8, Error> {
    // ratatui::init also installs a panic hook that restores the terminal before the message.
    let _restore = Restore::new();
    let mut terminal =
        ratatui::try_init().map_err(|e| Error::Io(format!("cannot set up the terminal: {e}")))?;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut dirty = true;
    while !app.quit {
        while let Ok(update) = updates.try_recv() {
            app.apply(update);
            dirty = true;
        }
        if runner.poll(app) {
            dirty = true;
        }
        // The clock in the title moves once a second.
        if dirty || last_draw.elapsed() >= Duration::from_secs(1) {
            terminal
                .draw(|f| render::draw(f, app))
                .map_err(|e| Error::Io(format!("cannot draw: {e}")))?;
            last_draw = Instant::now();
            dirty = false;
        }
        if crossterm::event::poll(Duration::from_millis(50))
            .map_err(|e| Error::Io(e.to_string()))?
        {
            match crossterm::event::read().map_err(|e| Error::Io(e.to_string()))? {
                crossterm::event::Event::Key(k) => {
                    match input::key(app, k) {
                        input::Effect::None => {}
                        input::Effect::Run(action) => runner.run(action),
                        input::Effect::Logs(service) => runner.follow(service),
                    }
                    dirty = true;
                }
                crossterm::event::Event::Resize(..) => {
                    terminal
                        .autoresize()
                        .map_err(|e| Error::Io(e.to_string()))?;
                    dirty = true;
                }
                _ => {}
            }
        }
    }
    Ok(code::OK)
}
