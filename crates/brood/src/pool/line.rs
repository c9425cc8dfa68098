//! [`Line`]: a queue of item indices kept as runs of consecutive indices.
//!
//! The items waiting to be handed out, and those a worker holds, are almost
//! always consecutive (a map hands out its input in order; only the items
//! of a dead worker go back to the front). Kept as runs, ten thousand
//! waiting items are one entry rather than 80 KB, and a chunk leaves the
//! line as one range — so that its encoded items leave the arena in one
//! copy (see `Run::dispatch`).

use std::collections::VecDeque;
use std::ops::Range;

/// Item indices in order, as runs of consecutive ones.
#[derive(Debug, Default)]
pub(super) struct Line {
    runs: VecDeque<Range<usize>>,
    len: usize,
}

impl Line {
    pub(super) fn new() -> Line {
        Line::default()
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(super) fn front(&self) -> Option<usize> {
        self.runs.front().map(|r| r.start)
    }

    /// Adds `idx` at the back (joining the last run when it follows it).
    #[inline]
    pub(super) fn push_back(&mut self, idx: usize) {
        self.push_back_run(idx..idx + 1);
    }

    /// Adds the run `run` at the back.
    #[inline]
    pub(super) fn push_back_run(&mut self, run: Range<usize>) {
        if run.is_empty() {
            return;
        }
        self.len += run.len();
        match self.runs.back_mut() {
            Some(last) if last.end == run.start => last.end = run.end,
            _ => self.runs.push_back(run),
        }
    }

    /// Puts `idx` at the front (joining the first run when it precedes it).
    pub(super) fn push_front(&mut self, idx: usize) {
        self.len += 1;
        match self.runs.front_mut() {
            Some(first) if first.start == idx + 1 => first.start = idx,
            _ => self.runs.push_front(idx..idx + 1),
        }
    }

    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<usize> {
        self.take_run(1).map(|r| r.start)
    }

    /// Takes up to `max` indices off the front, as long as they are
    /// consecutive: the front run, or its first `max`.
    #[inline]
    pub(super) fn take_run(&mut self, max: usize) -> Option<Range<usize>> {
        let first = self.runs.front_mut()?;
        if max == 0 {
            return None;
        }
        let n = first.len().min(max);
        let run = first.start..first.start + n;
        first.start += n;
        if first.start == first.end {
            self.runs.pop_front();
        }
        self.len -= n;
        Some(run)
    }

    /// Takes the first `n` indices (or all, if fewer), in order.
    pub(super) fn split_front(&mut self, n: usize) -> Line {
        let mut front = Line::new();
        while front.len() < n {
            match self.take_run(n - front.len()) {
                Some(run) => front.push_back_run(run),
                None => break,
            }
        }
        front
    }

    /// Puts every index of `other` in front of this line's, in their order.
    pub(super) fn prepend(&mut self, other: Line) {
        for run in other.runs.into_iter().rev() {
            for idx in run.rev() {
                self.push_front(idx);
            }
        }
    }

    /// Moves every index of `other` to the back of this line.
    pub(super) fn append(&mut self, other: Line) {
        for run in other.runs {
            self.push_back_run(run);
        }
    }

    pub(super) fn clear(&mut self) {
        self.runs.clear();
        self.len = 0;
    }

    /// The indices, front first.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.runs.iter().flat_map(Range::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(usize),
        PushFront(usize),
        PopFront,
        TakeRun(usize),
        SplitFront(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..40).prop_map(Op::PushBack),
            (0usize..40).prop_map(Op::PushFront),
            Just(Op::PopFront),
            (0usize..8).prop_map(Op::TakeRun),
            (0usize..8).prop_map(Op::SplitFront),
        ]
    }

    proptest! {
        /// The line behaves as a plain queue of indices would, whatever the
        /// order of its operations.
        #[test]
        fn a_line_is_a_queue_of_indices(ops in proptest::collection::vec(op(), 0..60)) {
            let mut line = Line::new();
            let mut plain: VecDeque<usize> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(i) => { line.push_back(i); plain.push_back(i); }
                    Op::PushFront(i) => { line.push_front(i); plain.push_front(i); }
                    Op::PopFront => prop_assert_eq!(line.pop_front(), plain.pop_front()),
                    Op::TakeRun(max) => {
                        let run = line.take_run(max);
                        let mut want = Vec::new();
                        while want.len() < max
                            && let Some(&i) = plain.front()
                            && want.last().is_none_or(|&l: &usize| l + 1 == i)
                        {
                            want.push(i);
                            plain.pop_front();
                        }
                        let got: Vec<usize> = run.into_iter().flatten().collect();
                        // A run may stop early where two runs of the line meet.
                        prop_assert!(want.starts_with(&got));
                        for &i in want[got.len()..].iter().rev() {
                            plain.push_front(i);
                        }
                    }
                    Op::SplitFront(n) => {
                        let front: Vec<usize> = line.split_front(n).iter().collect();
                        let want: Vec<usize> = (0..n.min(plain.len())).filter_map(|_| plain.pop_front()).collect();
                        prop_assert_eq!(front, want);
                    }
                }
                prop_assert_eq!(line.len(), plain.len());
                prop_assert_eq!(line.iter().collect::<Vec<_>>(), plain.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(line.front(), plain.front().copied());
            }
        }
    }

    #[test]
    fn consecutive_items_make_one_run() {
        let mut line = Line::new();
        for i in 0..10_000 {
            line.push_back(i);
        }
        assert_eq!(line.runs.len(), 1);
        assert_eq!(line.take_run(1250), Some(0..1250));
        let mut back = line.split_front(3);
        back.append(Line::new());
        line.prepend(back);
        assert_eq!(line.front(), Some(1250));
        assert_eq!(line.runs.len(), 1);
        assert_eq!(line.len(), 8750);
    }
}
