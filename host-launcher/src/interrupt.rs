//! SIGINT, SIGTERM and SIGHUP as one "interrupted" state that the build
//! checks between steps and while QEMU or kettle-init runs: a CI runner's
//! SIGTERM and a closed terminal's SIGHUP stop a build exactly like Ctrl-C
//! (children killed and reaped, work dirs, disks and sockets removed,
//! nothing written to --out), and the exit code says which signal it was
//! (128 + its number, as shells report it).
//!
//! The handlers only set atomics (signal-hook's async-signal-safe flags);
//! every reaction happens in ordinary code that polls them.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signals that interrupt a build.
pub const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Whether (and by which signal) the process was asked to stop.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// A state no signal sets (tests, library callers that stop on their own).
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Registers handlers for [`SIGNALS`] that set this state (the first signal's number is kept).
    pub fn install() -> io::Result<Interrupt> {
        let i = Interrupt::new();
        for sig in SIGNALS {
            // The number first, so a poller that sees the flag also sees which signal set it.
            signal_hook::flag::register_usize(sig, i.signal.clone(), sig as usize)?;
            signal_hook::flag::register(sig, i.flag.clone())?;
        }
        Ok(i)
    }

    /// The flag the VM loop polls.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// True once a signal arrived (or [`Interrupt::raise`] was called).
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sets the state as if `signal` had arrived.
    pub fn raise(&self, signal: i32) {
        self.signal.store(signal as usize, Ordering::SeqCst);
        self.flag.store(true, Ordering::SeqCst);
    }

    /// The signal that arrived (SIGINT if the flag was set without one).
    pub fn signal(&self) -> i32 {
        match self.signal.load(Ordering::SeqCst) {
            0 => SIGINT,
            // Only raise() stores here, and it stores an i32.
            n => i32::try_from(n).unwrap_or(SIGINT),
        }
    }

    /// The exit code for an interrupted run: 128 + the signal's number (130, 143, 129).
    pub fn exit_code(&self) -> u8 {
        exit_code(self.signal())
    }

    /// The signal's name, e.g. `SIGTERM`.
    pub fn signal_name(&self) -> &'static str {
        signal_name(self.signal())
    }
}

/// 128 + `signal`, the shell's convention for "ended by this signal".
pub fn exit_code(signal: i32) -> u8 {
    128 + u8::try_from(signal.clamp(0, 127)).expect("clamped to 0..=127")
}

/// The name of one of [`SIGNALS`].
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_exit_code_per_signal() {
        assert_eq!(exit_code(SIGINT), 130);
        assert_eq!(exit_code(SIGTERM), 143);
        assert_eq!(exit_code(SIGHUP), 129);
        let i = Interrupt::new();
        assert!(!i.is_set());
        assert_eq!(i.exit_code(), 130, "a bare flag reads as Ctrl-C");
        i.raise(SIGTERM);
        assert!(i.is_set());
        assert_eq!((i.exit_code(), i.signal_name()), (143, "SIGTERM"));
    }

    #[test]
    fn a_real_signal_sets_the_state() {
        let i = Interrupt::install().unwrap();
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP)
            .unwrap();
        for _ in 0..100 {
            if i.is_set() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(i.is_set());
        assert_eq!(i.exit_code(), 129);
    }
}
