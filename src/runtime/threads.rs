//! How the hotline's threads share the machine: each thread's CPU time and
//! its time waiting for a CPU (runnable, not running), summed by thread
//! name, from the kernel's scheduler statistics (`/proc/self/task/*/
//! schedstat`). A thread that waits about as long as it runs is on a
//! machine out of cores: the measure of "where the machine runs out" that
//! the CPU percentage alone does not give (a busy machine at 100 % may
//! still serve every thread at once).

use std::collections::BTreeMap;
use std::time::Duration;

/// One name's threads: their CPU time and their time waiting to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    pub running: Duration,
    pub waiting: Duration,
}

/// A schedstat line: nanoseconds on a CPU, nanoseconds runnable but
/// waiting, time slices. None when it is not that.
pub fn parse_schedstat(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    let running = fields.next()?.parse().ok()?;
    let waiting = fields.next()?.parse().ok()?;
    fields.next()?.parse::<u64>().ok()?;
    Some((running, waiting))
}

/// The threads of this process alive now, by name, each name's totals
/// since its threads started. Empty where the kernel keeps no such
/// statistics (not Linux, or schedstats off).
pub fn shares() -> BTreeMap<String, Share> {
    let mut by_name: BTreeMap<String, Share> = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        // A thread that ended between the listing and the read is skipped.
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue;
        };
        let Some((running, waiting)) = parse_schedstat(&stat) else {
            continue;
        };
        let share = by_name.entry(name.trim().to_string()).or_default();
        share.running += Duration::from_nanos(running);
        share.waiting += Duration::from_nanos(waiting);
    }
    by_name
}

/// Puts the calling thread under SCHED_BATCH (Linux): an ordinary thread
/// that, woken while the core is busy, waits for the running thread to
/// sleep or for the scheduler's tick instead of taking the core at once.
/// Nothing else changes: it still gets its fair share, at once on an
/// idle core.
///
/// For the switch's thread. Woken by a datagram on a busy core, it took
/// the core at once. Batched, it waits for the running thread and then
/// reads what came meanwhile: fewer, fuller turns (at 2,000 short calls
/// a second it sleeps 516 times a second, not 560;
/// `benches/cpu_per_call.sh`, three interleaved runs: the hotline's CPU
/// per call 0-18 % lower, 8 % on average; at 1,500 calls a second no
/// more refused, at 3,200 no 503 later). Threads that wake and take the
/// core from it still do (SIPp, on the bench's machine: about one
/// context switch a call): less work per turn is the cure for that, not
/// a policy. What it waits for is a few milliseconds at most, on a full
/// machine only, and signalling's timers count in hundreds of them; the
/// door (real-time) answers new calls refused on such a machine, and the
/// media workers (real-time) are not held up at all.
#[cfg(target_os = "linux")]
pub fn set_batch() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` and changes only the
    // calling thread's policy (pid 0); no memory is handed over.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_batch() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedstat_line_gives_running_and_waiting_nanoseconds() {
        assert_eq!(
            parse_schedstat("123456789 98765 42\n"),
            Some((123_456_789, 98_765))
        );
        assert_eq!(parse_schedstat("1 2"), None);
        assert_eq!(parse_schedstat("x 2 3"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_batched_thread_is_under_sched_batch_and_the_others_are_not() {
        // SAFETY: sched_getscheduler reads the calling thread's policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let batched =
            std::thread::spawn(move || (set_batch().map_err(|e| e.to_string()), policy()))
                .join()
                .expect("joined");
        assert_eq!(batched, (Ok(()), libc::SCHED_BATCH));
        assert_eq!(policy(), libc::SCHED_OTHER, "only the thread that asked");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_named_thread_that_works_shows_its_cpu_time() {
        let worker = std::thread::Builder::new()
            .name("shares-test".into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(30) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                shares()
            })
            .expect("spawned");
        let seen = worker.join().expect("joined");
        let mine = seen.get("shares-test").expect("the thread is listed");
        assert!(
            mine.running >= Duration::from_millis(10),
            "30 ms of work shows: {mine:?}"
        );
    }
}
