//! A mutex whose holder runs at the priority of the most urgent thread
//! waiting for it: priority inheritance (Linux's PI futexes, through the
//! C library's `PTHREAD_PRIO_INHERIT`).
//!
//! Why: the SIP door (a real-time thread) and the switch (an ordinary one)
//! share one lock around reading the SIP socket. On a full machine the
//! real-time media workers take both cores; a switch preempted while it
//! holds a plain mutex keeps the door waiting until a core is free for it
//! again (12 ms measured in `benches/overload.sh`, and the refusals the
//! door should have sent at once waited as long). With inheritance the
//! kernel lifts the switch to the door's priority until it lets go, so the
//! door waits only for what the switch does under the lock.
//!
//! Elsewhere (no PI futexes) it is std's mutex; there is no door there.

#[cfg(target_os = "linux")]
pub use linux::{PiGuard, PiMutex};
#[cfg(not(target_os = "linux"))]
pub use other::{PiGuard, PiMutex};

#[cfg(target_os = "linux")]
mod linux {
    use std::cell::UnsafeCell;
    use std::marker::PhantomData;
    use std::mem::MaybeUninit;
    use std::ops::{Deref, DerefMut};

    pub struct PiMutex<T> {
        /// Boxed: a pthread mutex must not move once initialised.
        raw: Box<UnsafeCell<libc::pthread_mutex_t>>,
        value: UnsafeCell<T>,
    }

    // SAFETY: the value is reached only through a guard, and a guard exists
    // only while the pthread mutex is held: one thread at a time.
    unsafe impl<T: Send> Send for PiMutex<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send> Sync for PiMutex<T> {}

    impl<T> PiMutex<T> {
        pub fn new(value: T) -> Self {
            let raw = Box::new(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
            // SAFETY: `attr` is initialised before use and destroyed after;
            // `raw` is a valid, not yet used mutex at a fixed address.
            unsafe {
                let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
                if libc::pthread_mutexattr_init(attr.as_mut_ptr()) == 0 {
                    let inherit = libc::pthread_mutexattr_setprotocol(
                        attr.as_mut_ptr(),
                        libc::PTHREAD_PRIO_INHERIT,
                    ) == 0;
                    // Without inheritance (a kernel without PI futexes: the
                    // C library refuses it) it is the ordinary mutex it was
                    // made as.
                    if inherit && libc::pthread_mutex_init(raw.get(), attr.as_ptr()) != 0 {
                        *raw.get() = libc::PTHREAD_MUTEX_INITIALIZER;
                    }
                    libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
                }
            }
            Self {
                raw,
                value: UnsafeCell::new(value),
            }
        }

        pub fn lock(&self) -> PiGuard<'_, T> {
            // SAFETY: an initialised mutex at a fixed address.
            let rc = unsafe { libc::pthread_mutex_lock(self.raw.get()) };
            // Fails only when this thread holds it already (a deadlock the
            // PI futex detects): a bug here, not something a peer can do.
            assert_eq!(rc, 0, "pthread_mutex_lock failed: {rc}");
            PiGuard {
                mutex: self,
                _not_send: PhantomData,
            }
        }
    }

    impl<T: Default> Default for PiMutex<T> {
        fn default() -> Self {
            Self::new(T::default())
        }
    }

    impl<T> Drop for PiMutex<T> {
        fn drop(&mut self) {
            // SAFETY: nobody holds it (no guard outlives the mutex).
            unsafe { libc::pthread_mutex_destroy(self.raw.get()) };
        }
    }

    /// The mutex held; let go when dropped, on the thread that took it
    /// (it cannot be sent to another).
    pub struct PiGuard<'a, T> {
        mutex: &'a PiMutex<T>,
        _not_send: PhantomData<*const ()>,
    }

    impl<T> Deref for PiGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: the mutex is held for as long as the guard lives.
            unsafe { &*self.mutex.value.get() }
        }
    }

    impl<T> DerefMut for PiGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as above, and the guard is borrowed mutably.
            unsafe { &mut *self.mutex.value.get() }
        }
    }

    impl<T> Drop for PiGuard<'_, T> {
        fn drop(&mut self) {
            // SAFETY: held by this thread (the guard is not Send).
            unsafe { libc::pthread_mutex_unlock(self.mutex.raw.get()) };
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use std::sync::{Mutex, MutexGuard};

    #[derive(Default)]
    pub struct PiMutex<T>(Mutex<T>);

    pub type PiGuard<'a, T> = MutexGuard<'a, T>;

    impl<T> PiMutex<T> {
        pub fn new(value: T) -> Self {
            Self(Mutex::new(value))
        }

        pub fn lock(&self) -> PiGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// The cores this process may run on.
    fn allowed_cpus() -> Vec<usize> {
        // SAFETY: a zeroed cpu_set_t is a valid set to fill and read.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }

    /// Pins the calling thread to `cpu` (one it may run on).
    fn pin(cpu: usize) {
        // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays within it.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        assert_eq!(rc, 0, "pinned to core {cpu}");
    }

    /// The calling thread's CPU time.
    fn thread_cpu() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to write.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }

    /// Makes the calling thread real-time, as the media workers and the
    /// door are made.
    fn realtime(priority: u8) -> bool {
        crate::runtime::workers::set_realtime(priority).is_ok()
    }

    #[test]
    fn a_real_time_waiter_lifts_an_ordinary_holder_above_a_busy_real_time_thread() {
        // All three on one core: an ordinary thread holds the lock, a
        // real-time one (the media workers) keeps the core busy, a more
        // urgent one (the door) wants the lock.
        let allowed = allowed_cpus();
        let [.., _, cpu] = allowed[..] else {
            eprintln!("one core: the test needs a second for itself; not run");
            return;
        };
        // Asked on a thread of its own: this one stays as it is.
        if !std::thread::spawn(|| realtime(1)).join().unwrap() {
            eprintln!("no permission for real-time threads here; not run");
            return;
        }
        let lock = Arc::new(PiMutex::new(0u32));
        let (held_tx, held_rx) = mpsc::channel();
        let holder = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                pin(cpu);
                let mut guard = lock.lock();
                held_tx.send(()).unwrap();
                // 100 ms of work (its own CPU time) under the lock: more
                // than the share of the core the kernel leaves ordinary
                // threads beside a busy real-time one (Linux's fair server:
                // 50 ms a second).
                let start = thread_cpu();
                while thread_cpu() - start < Duration::from_millis(100) {
                    std::hint::spin_loop();
                }
                *guard += 1;
            })
        };
        held_rx.recv().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let busy = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin(cpu);
                assert!(realtime(10));
                let until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                // Real-time first: pinned while still ordinary, it would
                // wait behind the busy thread to run at all.
                assert!(realtime(11));
                pin(cpu);
                let asked = Instant::now();
                let guard = lock.lock();
                (asked.elapsed(), *guard)
            })
        };
        let (waited, seen) = waiter.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        busy.join().unwrap();
        holder.join().unwrap();
        assert_eq!(seen, 1, "the holder finished its work first");
        // A plain mutex: the holder runs again only when the busy thread is
        // done (1.5 s; measured so), or for what the fair server lends it,
        // less than its work. Inherited: it runs at once, and what is left
        // of its work takes at most 100 ms.
        assert!(
            waited < Duration::from_millis(400),
            "the waiter waited {waited:?} behind the busy thread"
        );
    }

    #[test]
    fn it_excludes_and_hands_the_value_on() {
        let lock = Arc::new(PiMutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let mut g = lock.lock();
                        let v = *g;
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }
}
