//! The guest's serial console on the host: every line goes to build.log, and
//! the init steps' lines (their format is `kettle_wire::console`'s) drive a
//! progress display. The console is untrusted output: it only informs the
//! user (escaped, bounded); success is decided by the output disk and
//! verification.

use std::io::{self, BufRead, Write};

use indicatif::{ProgressBar, ProgressStyle};
use kettle_verify::render::escape;
use kettle_wire::console::{parse_line, ConsoleEvent};
use kettle_wire::Step;

/// Longest console line kept whole; the guest is untrusted and one endless line must not exhaust memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Shows the guest's progress: one bar over the steps, with the current step's name.
pub struct Progress {
    bar: ProgressBar,
    /// Without a terminal the bar is hidden and step lines go to stderr as plain lines.
    visible: bool,
    failed: Option<(Step, String)>,
}

impl Progress {
    /// A progress bar over the guest's steps; hidden when `visible` is false (e.g. not a terminal).
    pub fn new(visible: bool) -> Progress {
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
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar.set_message(format!("{}: booting the CVM", Step::Boot));
        Progress {
            bar,
            visible,
            failed: None,
        }
    }

    /// Feeds one console line.
    pub fn line(&mut self, line: &str) {
        match parse_line(line) {
            ConsoleEvent::StepOk { step, summary } => {
                let done = step.index() + 1;
                self.bar.set_position(done as u64);
                self.say(format!("  [{step}] ok: {}", escape(&summary)));
                if let Some(next) = Step::ALL.get(done) {
                    self.bar.set_message(next.to_string());
                }
            }
            ConsoleEvent::StepFailed { step, message } => {
                self.say(format!("  [{step}] FAILED: {}", escape(&message)));
                self.failed = Some((step, message));
            }
            ConsoleEvent::BuildOutput(text) => {
                let short: String = escape(&text).chars().take(60).collect();
                self.bar.set_message(format!("build: {short}"));
            }
            ConsoleEvent::Succeeded(_) | ConsoleEvent::Other => {}
        }
    }

    fn say(&self, line: String) {
        if self.visible {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// The step the guest reported as failed, if any.
    pub fn failure(&self) -> Option<&(Step, String)> {
        self.failed.as_ref()
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
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        log::debug!("guest: {line}");
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
        assert_eq!(p.failure(), Some(&(Step::Fetch, "no disk".to_string())));
        assert_eq!(p.bar.position(), 1);
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
