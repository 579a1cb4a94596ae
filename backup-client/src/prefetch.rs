//! Metadata read-ahead for the encoder's walk: a few threads list the tree's directories
//! and `lstat` every entry, in parallel, so that the kernel has the inodes cached when
//! the (sequential, sorted) walk reaches them. On a cold cache the walk of an unchanged
//! tree is mostly waiting for inode reads, one at a time; several in flight overlap.
//!
//! Only a hint: it reads nothing the encoder relies on, never fails a backup, stays on the
//! root's file system and out of excluded directories, and stops when dropped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::archive::ExcludeMatcher;

/// Threads listing directories at once: enough inode reads in flight to keep a disk busy.
const THREADS: usize = 4;

/// Running read-ahead; stops (between directories) when dropped.
pub struct Prefetch {
    stop: Arc<AtomicBool>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Work {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// Directories waiting to be listed (with their archive paths), and how many are being
/// listed.
struct Queue {
    waiting: Vec<(PathBuf, Vec<u8>)>,
    busy: usize,
}

/// Starts reading ahead below `root`.
pub fn start(root: &Path, excludes: ExcludeMatcher) -> Prefetch {
    let stop = Arc::new(AtomicBool::new(false));
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return Prefetch { stop };
    };
    let work = Arc::new(Work {
        queue: Mutex::new(Queue {
            waiting: vec![(root.to_path_buf(), Vec::new())],
            busy: 0,
        }),
        ready: Condvar::new(),
    });
    let excludes = Arc::new(excludes);
    for _ in 0..THREADS {
        let (work, stop, excludes) = (Arc::clone(&work), Arc::clone(&stop), Arc::clone(&excludes));
        let dev = meta.dev();
        let spawned = std::thread::Builder::new()
            .name("walk-readahead".into())
            .spawn(move || run(&work, &stop, &excludes, dev));
        if spawned.is_err() {
            break;
        }
    }
    Prefetch { stop }
}

fn run(work: &Work, stop: &AtomicBool, excludes: &ExcludeMatcher, dev: u64) {
    loop {
        let (dir, rel) = {
            let mut guard = work.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(next) = guard.waiting.pop() {
                    guard.busy += 1;
                    break next;
                }
                if guard.busy == 0 {
                    work.ready.notify_all();
                    return;
                }
                guard = work.ready.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        };
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() && meta.dev() == dev {
                    let mut child = rel.clone();
                    if !child.is_empty() {
                        child.push(b'/');
                    }
                    child.extend_from_slice(entry.file_name().as_encoded_bytes());
                    if !excludes.is_excluded(&child, true) {
                        found.push((entry.path(), child));
                    }
                }
            }
        }
        let mut guard = work.queue.lock().unwrap_or_else(|e| e.into_inner());
        guard.busy -= 1;
        guard.waiting.extend(found);
        work.ready.notify_all();
    }
}
