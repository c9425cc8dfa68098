//! Process (in progress).

/// The first line of a program's `main` (in progress).
pub fn init() {}
