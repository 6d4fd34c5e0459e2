//! The log's writer: each thread appends its lines to a buffer of its own, and a thread of the
//! writer's own gathers them and writes them out in batches, so a request pays for a copy into
//! memory instead of a `write(2)` of its own, and logging threads do not contend for one lock.
//!
//! - Order is kept: each line is stamped with the monotonic clock when it is queued, and a
//!   batch is the lines of every thread stamped before the moment it was gathered, merged by
//!   their stamps. A line logged after another (in the same thread, or in one the first line's
//!   thread handed work to) is written after it; lines stamped after the batch was gathered
//!   wait for the next one, so none stamped earlier can come after them.
//! - Nothing waits long: the thread is woken by the first line after it went idle, writes what
//!   is there, then lets lines gather for [`BATCH_WINDOW`] before writing again.
//! - Warnings and errors are written before the call that logs them returns (with every line
//!   before them), so the lines that explain a crash are not left in memory.
//! - Nothing is dropped: when the destination is slower than the lines come and a thread has
//!   [`MAX_PENDING`] bytes waiting, it writes out what is waiting itself, as an unbuffered
//!   writer would. A thread that ends leaves its lines to the next batch.
//! - [`super::flush`] writes out what is waiting; a process calls it before it exits.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long lines gather after a batch was written, under a steady flow of lines. Each batch
/// wakes the writer's thread, which takes a core from the threads serving requests for a
/// moment: at 10 ms that happens 100 times a second (at 1 ms it doubled the context switches
/// of a server under load), and a line still reaches the destination within 10 ms.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Bytes waiting in one thread's buffer beyond which that thread writes them out itself.
pub(crate) const MAX_PENDING: usize = 4 << 20;

/// The bytes a buffer keeps room for once written out, enough for a steady flow's batch.
const KEPT_CAPACITY: usize = 256 << 10;

/// A handle to the buffers and their thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct LogWriter {
    shared: Arc<Shared>,
}

struct Shared {
    /// Tells this writer's buffers from another's in a thread's list.
    id: usize,
    /// The buffer of every thread that logged through this writer and may have lines in it.
    buffers: Mutex<Vec<Arc<Buffer>>>,
    /// The thread waits for lines: the next line wakes it.
    idle: AtomicBool,
    sleep: Mutex<()>,
    wake: Condvar,
    /// The destination and the gathering's buffers. Held for the whole of a write so batches
    /// leave in the order they were gathered.
    out: Mutex<Out>,
}

/// One thread's queued lines.
type Buffer = Mutex<Lines>;

/// Lines as bytes, with when each was queued and where it ends.
#[derive(Default)]
struct Lines {
    bytes: Vec<u8>,
    ends: Vec<(Instant, usize)>,
}

impl Lines {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

struct Out {
    sink: Box<dyn Write + Send>,
    /// The buffers taken from the threads, each swapped for an empty one.
    taken: Vec<Lines>,
    /// Lines gathered but stamped after their batch's moment: the next batch's.
    later: Lines,
    /// The batch being written.
    batch: Vec<u8>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves a buffer of bytes, still fine to use.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Numbers the writers, for [`Shared::id`].
static WRITERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's buffer in each writer it logged through, by the writer's id.
    static BUFFERS: RefCell<Vec<(usize, Arc<Buffer>)>> = const { RefCell::new(Vec::new()) };
}

impl LogWriter {
    /// A writer to `sink`, with its thread started.
    pub(crate) fn spawn(sink: impl Write + Send + 'static) -> io::Result<Self> {
        let writer = Self {
            shared: Arc::new(Shared {
                id: WRITERS.fetch_add(1, Ordering::Relaxed),
                buffers: Mutex::new(Vec::new()),
                idle: AtomicBool::new(false),
                sleep: Mutex::new(()),
                wake: Condvar::new(),
                out: Mutex::new(Out {
                    sink: Box::new(sink),
                    taken: Vec::new(),
                    later: Lines::default(),
                    batch: Vec::with_capacity(64 << 10),
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
        let queued = BUFFERS.try_with(|buffers| {
            let mut buffers = buffers.borrow_mut();
            let buffer = match buffers.iter().find(|(id, _)| *id == self.shared.id) {
                Some((_, buffer)) => buffer,
                None => {
                    let buffer = Arc::new(Buffer::default());
                    lock(&self.shared.buffers).push(buffer.clone());
                    buffers.push((self.shared.id, buffer));
                    &buffers[buffers.len() - 1].1
                }
            };
            let mut lines = lock(buffer);
            lines.bytes.extend_from_slice(line);
            // Stamped while the buffer is held: a batch gathered after this moment finds it.
            let end = lines.bytes.len();
            lines.ends.push((Instant::now(), end));
            end >= MAX_PENDING
        });
        match queued {
            Ok(full) if !urgent && !full => {
                // No fence needed: the writer marks itself idle and then looks at every buffer
                // under its lock, so either it finds this line or the unlock it waited for
                // makes its mark visible here.
                if self.shared.idle.load(Ordering::Relaxed)
                    && self.shared.idle.swap(false, Ordering::SeqCst)
                {
                    let _sleep = lock(&self.shared.sleep);
                    self.shared.wake.notify_one();
                }
            }
            Ok(_) => {
                self.flush();
            }
            // A thread whose locals are being destroyed writes its line itself, after what
            // is waiting.
            Err(_) => {
                let mut out = lock(&self.shared.out);
                self.write_batch(&mut out);
                let _ = out.sink.write_all(line);
                let _ = out.sink.flush();
            }
        }
    }

    /// Writes out every line queued so far.
    pub(crate) fn flush(&self) {
        self.write_batch(&mut lock(&self.shared.out));
    }

    /// Gathers the lines queued before now from every thread and writes them out in the order
    /// they were queued; answers whether any lines were gathered (written, or kept for the
    /// next batch).
    fn write_batch(&self, out: &mut Out) -> bool {
        let now = Instant::now();
        {
            let mut buffers = lock(&self.shared.buffers);
            if out.taken.len() < buffers.len() {
                out.taken.resize_with(buffers.len(), Lines::default);
            }
            for (buffer, taken) in buffers.iter().zip(&mut out.taken) {
                std::mem::swap(&mut *lock(buffer), taken);
            }
            // A buffer only this list holds is an ended thread's, and now empty.
            buffers.retain(|buffer| Arc::strong_count(buffer) > 1);
        }
        let Out {
            sink,
            taken,
            later,
            batch,
        } = out;
        let mut sources: Vec<(&Lines, usize)> = std::iter::once(&*later)
            .chain(taken.iter())
            .filter(|lines| !lines.ends.is_empty())
            .map(|lines| (lines, 0))
            .collect();
        let mut next = Lines::default();
        // Merge by stamp: each source is in order already.
        loop {
            let mut first: Option<(usize, Instant)> = None;
            for (i, (lines, at)) in sources.iter().enumerate() {
                if let Some(&(stamp, _)) = lines.ends.get(*at)
                    && first.is_none_or(|(_, earliest)| stamp < earliest)
                {
                    first = Some((i, stamp));
                }
            }
            let Some((i, stamp)) = first else { break };
            let (lines, at) = &mut sources[i];
            let start = if *at == 0 { 0 } else { lines.ends[*at - 1].1 };
            let end = lines.ends[*at].1;
            *at += 1;
            let line = &lines.bytes[start..end];
            if stamp <= now {
                batch.extend_from_slice(line);
            } else {
                next.bytes.extend_from_slice(line);
                next.ends.push((stamp, next.bytes.len()));
            }
        }
        drop(sources);
        *later = next;
        for lines in taken.iter_mut() {
            lines.clear();
            // A burst's buffer (up to MAX_PENDING) is not kept for ever by each thread.
            if lines.bytes.capacity() > KEPT_CAPACITY {
                lines.bytes.shrink_to(KEPT_CAPACITY);
                lines.ends.shrink_to(KEPT_CAPACITY / 64);
            }
        }
        if batch.is_empty() {
            return !later.ends.is_empty();
        }
        // A log that cannot be written has nowhere to report it.
        let _ = sink.write_all(batch);
        let _ = sink.flush();
        batch.clear();
        true
    }

    /// Whether any thread has lines queued.
    fn any_queued(&self) -> bool {
        lock(&self.shared.buffers)
            .iter()
            .any(|buffer| !lock(buffer).ends.is_empty())
    }

    /// The thread: waits for lines, writes them out, lets the next ones gather.
    fn run(self) {
        loop {
            let gathered = self.write_batch(&mut lock(&self.shared.out));
            if gathered {
                std::thread::sleep(BATCH_WINDOW);
                continue;
            }
            let mut sleep = lock(&self.shared.sleep);
            self.shared.idle.store(true, Ordering::SeqCst);
            if self.any_queued() {
                // A line queued while the batch was written.
                self.shared.idle.store(false, Ordering::SeqCst);
                continue;
            }
            while self.shared.idle.load(Ordering::SeqCst) {
                sleep = self
                    .shared
                    .wake
                    .wait(sleep)
                    .unwrap_or_else(PoisonError::into_inner);
            }
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
    fn lines_handed_from_thread_to_thread_come_out_in_the_order_they_were_logged() {
        // Four threads log in turn, each handing the next number to the next thread once it
        // has logged its own: the log must count up, however the batches fall between threads.
        let sink = Sink::default();
        let writer = LogWriter::spawn(sink.clone()).unwrap();
        const THREADS: usize = 4;
        const LINES: usize = 4000;
        let channels: Vec<_> = (0..THREADS).map(|_| std::sync::mpsc::channel()).collect();
        let senders: Vec<_> = channels.iter().map(|(tx, _)| tx.clone()).collect();
        let threads: Vec<_> = channels
            .into_iter()
            .enumerate()
            .map(|(t, (_, rx))| {
                let writer = writer.clone();
                let next = senders[(t + 1) % THREADS].clone();
                std::thread::spawn(move || {
                    while let Ok(n) = rx.recv() {
                        let n: usize = n;
                        if n == LINES {
                            let _ = next.send(n);
                            return;
                        }
                        writer.write_line(format!("{n}\n").as_bytes(), false);
                        let _ = next.send(n + 1);
                    }
                })
            })
            .collect();
        senders[0].send(0).unwrap();
        for thread in threads {
            thread.join().unwrap();
        }
        let expected: String = (0..LINES).map(|n| format!("{n}\n")).collect();
        eventually("every line written", || sink.text().len() == expected.len());
        assert_eq!(sink.text(), expected);
        assert!(sink.writes() < LINES, "lines are batched");
    }

    #[test]
    fn lines_of_an_ended_thread_are_written() {
        let sink = Sink::default();
        let writer = LogWriter::spawn(sink.clone()).unwrap();
        let logger = writer.clone();
        std::thread::spawn(move || logger.write_line(b"last words\n", false))
            .join()
            .unwrap();
        eventually("the ended thread's line", || sink.text() == "last words\n");
        eventually("its buffer let go", || {
            lock(&writer.shared.buffers).is_empty()
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
        let waiting: usize = lock(&writer.shared.buffers)
            .iter()
            .map(|buffer| lock(buffer).bytes.len())
            .sum();
        assert!(waiting < MAX_PENDING + line.len());
        drop(closed);
        logger.join().unwrap();
        writer.flush();
        assert_eq!(sink.text().len(), 2 * MAX_PENDING / line.len() * line.len());
    }
}
