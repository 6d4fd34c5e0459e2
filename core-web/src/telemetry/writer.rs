//! The log's writer: lines are appended to a buffer that a thread of its own writes out in
//! batches, so a request pays for a copy into memory instead of a `write(2)` of its own.
//!
//! - Order is kept: the buffer is written out whole, under one lock on the destination, by
//!   whoever writes it.
//! - Nothing waits long: the thread is woken by the first line after it went idle, writes what
//!   is there, then lets lines gather for [`BATCH_WINDOW`] before writing again.
//! - Warnings and errors are written before the call that logs them returns (with every line
//!   before them), so the lines that explain a crash are not left in memory.
//! - Nothing is dropped: when the destination is slower than the lines come and
//!   [`MAX_PENDING`] bytes are waiting, the thread logging writes them out itself, as an
//!   unbuffered writer would.
//! - [`super::flush`] writes out what is waiting; a process calls it before it exits.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long lines gather after a batch was written, under a steady flow of lines.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Bytes waiting beyond which the logging thread writes them out itself.
pub(crate) const MAX_PENDING: usize = 4 << 20;

/// A handle to the buffer and its thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct LogWriter {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// The destination, with the spare buffer the pending one is swapped with. Held for the
    /// whole of a write so batches leave in the order they were taken.
    out: Mutex<Out>,
}

struct Pending {
    lines: Vec<u8>,
    /// The thread waits for lines: the next line wakes it.
    idle: bool,
}

struct Out {
    sink: Box<dyn Write + Send>,
    spare: Vec<u8>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves a buffer of bytes, still fine to use.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogWriter {
    /// A writer to `sink`, with its thread started.
    pub(crate) fn spawn(sink: impl Write + Send + 'static) -> io::Result<Self> {
        let writer = Self {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending {
                    lines: Vec::with_capacity(64 << 10),
                    idle: false,
                }),
                wake: Condvar::new(),
                out: Mutex::new(Out {
                    sink: Box::new(sink),
                    spare: Vec::with_capacity(64 << 10),
                }),
            }),
        };
        let background = writer.clone();
        std::thread::Builder::new()
            .name("rustforge-log-writer".to_owned())
            .spawn(move || background.run())?;
        Ok(writer)
    }

    /// Queues `line` (whole lines, newline included); `urgent` writes it out before returning.
    pub(crate) fn write_line(&self, line: &[u8], urgent: bool) {
        let mut pending = lock(&self.shared.pending);
        pending.lines.extend_from_slice(line);
        let full = pending.lines.len() >= MAX_PENDING;
        let wake = std::mem::take(&mut pending.idle);
        drop(pending);
        if urgent || full {
            self.flush();
        } else if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Writes out every line queued so far.
    pub(crate) fn flush(&self) {
        let mut out = lock(&self.shared.out);
        let out = &mut *out;
        std::mem::swap(&mut lock(&self.shared.pending).lines, &mut out.spare);
        if !out.spare.is_empty() {
            // A log that cannot be written has nowhere to report it.
            let _ = out.sink.write_all(&out.spare);
            let _ = out.sink.flush();
            out.spare.clear();
        }
    }

    /// The thread: waits for lines, writes them out, lets the next ones gather.
    fn run(self) {
        loop {
            {
                let mut pending = lock(&self.shared.pending);
                while pending.lines.is_empty() {
                    pending.idle = true;
                    pending = self
                        .shared
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                pending.idle = false;
            }
            self.flush();
            std::thread::sleep(BATCH_WINDOW);
        }
    }
}

/// One event's writer: what it is given is queued, and written out when it is dropped if the
/// event is a warning or an error.
pub(crate) struct EventWriter<'a> {
    writer: &'a LogWriter,
    urgent: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write_line(buf, false);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush();
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.writer.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            writer: self,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            writer: self,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A sink recording what reaches it, and how many writes did.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut inner = lock(&self.0);
            inner.0.extend_from_slice(buf);
            inner.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).0.clone()).unwrap()
        }
        fn writes(&self) -> usize {
            lock(&self.0).1
        }
    }

    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within 5 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn queued_lines_reach_the_sink_in_order_without_a_flush() {
        let sink = Sink::default();
        let writer = LogWriter::spawn(sink.clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        for line in expected.lines() {
            writer.write_line(format!("{line}\n").as_bytes(), false);
        }
        eventually("all lines written", || sink.text().len() == expected.len());
        assert_eq!(sink.text(), expected);
        assert!(
            sink.writes() < 1000,
            "lines are batched: {} writes",
            sink.writes()
        );
        // Idle, then woken again by one line.
        std::thread::sleep(Duration::from_millis(20));
        writer.write_line(b"after a pause\n", false);
        eventually("a line after a pause", || {
            sink.text().ends_with("after a pause\n")
        });
    }

    #[test]
    fn urgent_lines_are_written_before_the_call_returns_with_those_before_them() {
        let sink = Sink::default();
        let writer = LogWriter::spawn(sink.clone()).unwrap();
        writer.write_line(b"info\n", false);
        let mut event = EventWriter {
            writer: &writer,
            urgent: true,
        };
        event.write_all(b"error\n").unwrap();
        drop(event);
        assert_eq!(sink.text(), "info\nerror\n");
    }

    #[test]
    fn flush_writes_out_what_is_waiting() {
        let sink = Sink::default();
        let writer = LogWriter::spawn(sink.clone()).unwrap();
        for _ in 0..100 {
            writer.write_line(b"x\n", false);
        }
        writer.flush();
        assert_eq!(sink.text(), "x\n".repeat(100));
    }

    #[test]
    fn a_stuck_sink_holds_loggers_back_instead_of_growing_or_dropping() {
        /// A sink that blocks while the gate is closed.
        #[derive(Clone)]
        struct Gate(Arc<Mutex<()>>, Sink);
        impl Write for Gate {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let _open = lock(&self.0);
                self.1.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let sink = Sink::default();
        let writer = LogWriter::spawn(Gate(gate.clone(), sink.clone())).unwrap();
        let closed = lock(&gate);
        let line = vec![b'y'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<_>>();
        let logger = {
            let writer = writer.clone();
            let line = line.clone();
            std::thread::spawn(move || {
                for _ in 0..(2 * MAX_PENDING / line.len()) {
                    writer.write_line(&line, false);
                }
            })
        };
        // Twice the buffer cannot all be taken while the sink is stuck: one batch waits in the
        // sink's write, at most the buffer's worth waits in memory, and the logger waits.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!logger.is_finished(), "the logger waits for the sink");
        assert!(lock(&writer.shared.pending).lines.len() < MAX_PENDING + line.len());
        drop(closed);
        logger.join().unwrap();
        writer.flush();
        assert_eq!(sink.text().len(), 2 * MAX_PENDING / line.len() * line.len());
    }
}
