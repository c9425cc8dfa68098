//! `madvise(2)`: memory about to be written, faulted in with one call.

use std::mem::MaybeUninit;

/// Faults in the whole pages of `buf` for writing (`MADV_POPULATE_WRITE`,
/// Linux 5.14), so that a copy into fresh memory does not trap once per
/// page: for a 200 MiB result the traps cost more than the copy. Best
/// effort: on an older kernel the pages fault in as they are written.
pub fn populate_for_write(buf: &mut [MaybeUninit<u8>]) {
    let page = rustix::param::page_size();
    let start = buf.as_mut_ptr() as usize;
    let first = start.next_multiple_of(page);
    let end = (start + buf.len()) / page * page;
    if end <= first {
        return;
    }
    // SAFETY: an advice on whole pages inside `buf`, which we borrow
    // mutably; populating writes nothing the program can see (the pages
    // are fresh, or keep their contents).
    unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            end - first,
            libc::MADV_POPULATE_WRITE,
        )
    };
}
