//! Command/Popen (in progress).
