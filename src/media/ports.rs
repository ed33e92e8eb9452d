//! RTP port pool: even ports from a range, handed out least recently used
//! first so a port just freed is not reused while stray packets still arrive.

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
    in_use: HashSet<u16>,
}

impl PortPool {
    /// Even ports in `first..=last` (RTCP would take the odd one above).
    pub fn new(first: u16, last: u16) -> Self {
        let start = first + first % 2;
        Self {
            free: (start..=last).step_by(2).collect(),
            in_use: HashSet::new(),
        }
    }

    pub fn allocate(&mut self) -> Option<u16> {
        let port = self.free.pop_front()?;
        self.in_use.insert(port);
        Some(port)
    }

    /// Returns a port; freeing one that is not in use does nothing.
    pub fn release(&mut self, port: u16) {
        if self.in_use.remove(&port) {
            self.free.push_back(port);
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    pub fn capacity(&self) -> usize {
        self.in_use.len() + self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_even_ports_and_takes_them_back() {
        let mut pool = PortPool::new(20001, 20006);
        assert_eq!(pool.capacity(), 3);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let c = pool.allocate().unwrap();
        assert_eq!((a, b, c), (20002, 20004, 20006));
        assert_eq!(pool.allocate(), None);
        pool.release(b);
        pool.release(b);
        assert_eq!(pool.in_use(), 2);
        assert_eq!(pool.allocate(), Some(b));
    }
}
