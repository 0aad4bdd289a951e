//! The guest's serial console on the host: every line goes to build.log, and
//! the init steps' lines (their format is `kettle_wire::console`'s) drive a
//! progress display. The console is untrusted output: it only informs the
//! user (escaped, bounded); success is decided by the output disk and
//! verification.
//!
//! Whatever the host prints that the guest, the build or the recipe chose
//! (console lines, error.json, `--local`'s output, artifact names) goes
//! through [`escape`] (or [`escape_lines`], which keeps the line breaks):
//! one function, so an escape sequence can neither drive the terminal (OSC 52
//! clipboard writes, clearing the screen) nor forge a line the host prints.

use std::io::{self, BufRead, Read, Seek, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
/// The one escaping function for text the host did not choose (the verifier's,
/// so a verdict and a build's output are escaped alike).
pub use kettle_verify::render::escape;
use kettle_wire::console::{parse_line, ConsoleEvent};
use kettle_wire::Step;

/// Longest console line kept whole; the guest is untrusted and one endless line must not exhaust memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How often, at most, a hidden display says it is still alive (CI logs: silence looks like a hang).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// Longest excerpt of a console line shown in the bar or a heartbeat.
const EXCERPT_CHARS: usize = 100;

/// Most bytes of build.log read to show its last lines (the guest chose its length).
pub const MAX_TAIL_BYTES: u64 = 64 * 1024;

/// `text` escaped line by line: its line breaks stay, and every other control or
/// formatting character (a `\r` too, which could overwrite a line) is shown as an escape.
pub fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| escape(line.strip_suffix('\r').unwrap_or(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Copies `input` to `out` line by line, each line escaped and at most
/// [`MAX_LINE_BYTES`] long, until EOF: how a child's output that the build chose
/// (`kettle-init --local`) reaches the terminal.
pub fn relay(input: impl io::Read, mut out: impl Write) -> io::Result<()> {
    let mut reader = io::BufReader::new(input);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if read_line_bounded(&mut reader, &mut buf, &mut io::sink())? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&buf);
        writeln!(out, "{}", escape(text.trim_end_matches(['\n', '\r'])))?;
        out.flush()?;
    }
}

/// The last `n` lines of the log at `path` (at most [`MAX_TAIL_BYTES`] of it), escaped.
pub fn log_tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(MAX_TAIL_BYTES);
    f.seek(io::SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    f.take(MAX_TAIL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // begun mid-line
    }
    let from = lines.len().saturating_sub(n);
    Ok(lines[from..].iter().map(|l| escape(l)).collect())
}

/// Shows the guest's progress: one bar over the steps, with the current step's name.
/// Without a terminal the bar is hidden and every step becomes a plain line with its
/// host-measured duration, plus a heartbeat line when nothing was said for a while.
/// Clones share one display (the console thread feeds it, the VM loop ticks it).
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    /// Without a terminal the bar is hidden and step lines go to stderr as plain lines.
    visible: bool,
    state: Arc<Mutex<State>>,
}

struct State {
    failed: Option<(Step, String)>,
    /// The step the guest is in (the one after the last that reported ok).
    current: Step,
    /// When the current step started (host clock).
    step_started: Instant,
    /// When the display started (the VM's start).
    started: Instant,
    /// The last console line (escaped, shortened) for heartbeats.
    last_line: Option<String>,
    /// When a line was last written to stderr.
    last_said: Instant,
    heartbeat: Duration,
}

/// Prints `text` and a newline on stdout; a closed pipe (`| head`) is not an error.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Whether stderr may carry a progress bar and colors: a terminal, and neither
/// `NO_COLOR` (any value, <https://no-color.org>) nor `TERM=dumb`.
pub fn stderr_is_fancy() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// `1h02m03s`, `4m05s`, `6.2s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Progress {
    /// A progress bar over the guest's steps; hidden when `visible` is false (e.g. not a terminal).
    pub fn new(visible: bool) -> Progress {
        Progress::with_heartbeat(visible, DEFAULT_HEARTBEAT)
    }

    /// Like [`Progress::new`], with the hidden display's heartbeat every `heartbeat`.
    pub fn with_heartbeat(visible: bool, heartbeat: Duration) -> Progress {
        let bar = if visible {
            ProgressBar::new(Step::ALL.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] guest step {pos}/{len} {msg}",
            )
            .expect("valid template"),
        );
        if visible {
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        bar.set_message(format!("{}: booting the CVM", Step::Boot));
        let now = Instant::now();
        Progress {
            bar,
            visible,
            state: Arc::new(Mutex::new(State {
                failed: None,
                current: Step::Boot,
                step_started: now,
                started: now,
                last_line: None,
                last_said: now,
                heartbeat,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere leaves the display's data usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds one console line.
    pub fn line(&mut self, line: &str) {
        let event = parse_line(line);
        let mut st = self.state();
        match event {
            ConsoleEvent::StepOk { step, summary } => {
                let done = step.index() + 1;
                let took = human_duration(st.step_started.elapsed());
                self.say(
                    &mut st,
                    format!("  [{step}] ok in {took}: {}", escape(&summary)),
                );
                // The console is the host's to replay or the build's to imitate: a step
                // reported again, or out of order, never moves the counter back.
                if done as u64 > self.bar.position() {
                    self.bar.set_position(done as u64);
                    st.step_started = Instant::now();
                    if let Some(next) = Step::ALL.get(done) {
                        st.current = *next;
                        self.bar.set_message(next.to_string());
                    }
                }
            }
            ConsoleEvent::StepFailed { step, message } => {
                let took = human_duration(st.step_started.elapsed());
                self.say(
                    &mut st,
                    format!("  [{step}] FAILED after {took}: {}", escape(&message)),
                );
                st.failed = Some((step, message));
            }
            ConsoleEvent::BuildOutput(text) => {
                let short: String = escape(text.trim()).chars().take(EXCERPT_CHARS).collect();
                self.bar.set_message(format!(
                    "build: {}",
                    short.chars().take(60).collect::<String>()
                ));
                st.last_line = Some(short);
            }
            ConsoleEvent::Succeeded(_) | ConsoleEvent::Other => {
                let text = line.trim();
                if !text.is_empty() {
                    st.last_line = Some(escape(text).chars().take(EXCERPT_CHARS).collect());
                }
            }
        }
    }

    /// Says the guest is still alive when the display is hidden and nothing was said for a
    /// heartbeat: the step, the time in it and overall, and the last console line. Call it
    /// often; it prints at most once per heartbeat.
    pub fn tick(&self) {
        if self.visible {
            return;
        }
        let mut st = self.state();
        if st.last_said.elapsed() < st.heartbeat {
            return;
        }
        let mut line = format!(
            "  ... still in [{}] after {} ({} in all)",
            st.current,
            human_duration(st.step_started.elapsed()),
            human_duration(st.started.elapsed())
        );
        if let Some(last) = &st.last_line {
            line.push_str(&format!("; last console line: {last}"));
        }
        self.say(&mut st, line);
    }

    fn say(&self, st: &mut State, line: String) {
        st.last_said = Instant::now();
        if self.visible {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// The step the guest reported as failed, if any.
    pub fn failure(&self) -> Option<(Step, String)> {
        self.state().failed.clone()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Copies `console` line by line into `log` (bytes as received) and `progress`, until EOF.
pub fn pump(
    console: impl io::Read,
    mut log: impl Write,
    progress: &mut Progress,
) -> io::Result<()> {
    let mut reader = io::BufReader::new(console);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if read_line_bounded(&mut reader, &mut buf, &mut log)? == 0 {
            break;
        }
        // build.log is written as it goes: `tail -f` and a killed run both see every line.
        log.flush()?;
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        log::debug!("guest: {}", escape(line));
        progress.line(line);
    }
    log.flush()
}

/// Reads one line into `buf` (at most [`MAX_LINE_BYTES`] of it; the rest of an over-long
/// line is written to `log` but not kept), returning the bytes consumed.
fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    log: &mut impl Write,
) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        log.write_all(&chunk[..take])?;
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_keeps_every_byte_and_tracks_failure() {
        let console = b"[    0.1] kernel\r\n[INFO] [boot] ok in 0.01s: up\n[ERROR] [fetch] FAILED after 0.2s: no disk\npartial";
        let mut log = Vec::new();
        let mut p = Progress::new(false);
        pump(&console[..], &mut log, &mut p).unwrap();
        assert_eq!(log, console);
        assert_eq!(p.failure(), Some((Step::Fetch, "no disk".to_string())));
        assert_eq!(p.bar.position(), 1);
    }

    #[test]
    fn the_step_counter_never_goes_backwards() {
        let mut p = Progress::new(false);
        let ok = |step| kettle_wire::console::step_ok(step, 0.1, "done", "");
        p.line(&ok(Step::Boot));
        p.line(&ok(Step::Request));
        p.line(&ok(Step::Fetch));
        assert_eq!(p.bar.position(), 3);
        assert_eq!(p.state().current, Step::ALL[3]);
        // A line that repeats an earlier step (a replay, or the build printing one).
        p.line(&ok(Step::Boot));
        assert_eq!(p.bar.position(), 3);
        assert_eq!(p.state().current, Step::ALL[3]);
    }

    #[test]
    fn escaped_lines_keep_their_breaks_and_nothing_else() {
        let text = "ok\r\n\u{1b}]52;c;ZXZpbA==\u{7}\nline\rover\u{9b}2J";
        assert_eq!(
            escape_lines(text),
            "ok\n\\u{1b}]52;c;ZXZpbA==\\u{7}\nline\\u{d}over\\u{9b}2J"
        );
        let mut out = Vec::new();
        relay(text.as_bytes(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), escape_lines(text) + "\n");
    }

    #[test]
    fn the_log_tail_is_escaped_and_read_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build.log");
        let mut log = vec![b'x'; 10 * usize::try_from(MAX_TAIL_BYTES).unwrap()];
        log.extend_from_slice(b"\nlast \x1b[2J line\n");
        std::fs::write(&path, &log).unwrap();
        // The endless first line starts before the bytes read: it is dropped, not shown cut.
        assert_eq!(log_tail(&path, 20).unwrap(), ["last \\u{1b}[2J line"]);
    }

    #[test]
    fn an_endless_line_is_logged_whole_but_kept_bounded() {
        let mut console = vec![b'x'; 5 * MAX_LINE_BYTES];
        console.extend_from_slice(b"\n[ERROR] [build] FAILED after 1.00s: recipe: boom\n");
        let mut log = Vec::new();
        let mut p = Progress::new(false);
        pump(&console[..], &mut log, &mut p).unwrap();
        assert_eq!(log, console);
        assert_eq!(p.failure().map(|f| f.0), Some(Step::Build));
        let mut buf = Vec::new();
        let mut sink = Vec::new();
        let n = read_line_bounded(&mut &console[..], &mut buf, &mut sink).unwrap();
        assert_eq!(n, 5 * MAX_LINE_BYTES + 1);
        assert_eq!(buf.len(), MAX_LINE_BYTES);
    }
}
