//! The guest console line parser the host's progress display runs.
#![no_main]

use kettle_wire::console::{parse_line, ConsoleEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        match parse_line(line) {
            ConsoleEvent::BuildOutput(s) | ConsoleEvent::Succeeded(s) => {
                assert!(s.len() <= line.len())
            }
            ConsoleEvent::StepOk { summary: s, .. }
            | ConsoleEvent::StepFailed { message: s, .. } => {
                assert!(s.len() <= line.len())
            }
            ConsoleEvent::Other => {}
        }
    }
});
