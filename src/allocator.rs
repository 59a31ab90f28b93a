//! The allocator of Warren's binaries: mimalloc, asked for plain blocks.
//!
//! The `mimalloc` crate asks for every block with `mi_malloc_aligned`. In
//! mimalloc 3 that takes the fast path only while the size class has a free
//! block at hand in the calling thread's page (and for blocks up to 1 KiB);
//! otherwise, for a size class that is not a power of two (48, 80, 96
//! bytes...; every one above 4 KiB), it over-allocates by the alignment,
//! through a slower path, into the next size class. In a
//! broker that is most allocations: a message is made on one thread and
//! freed on another, so the maker's pages seldom have a free block at hand.
//! Measured with callgrind while draining a paged-out backlog: two of the
//! three allocations of each message read back took that path, a quarter of
//! the page reader's instructions.
//!
//! Every mimalloc block is aligned to 8 bytes at least (size classes are
//! whole words, pages start aligned), so up to that alignment a plain
//! `mi_malloc` is asked; a larger alignment still goes to the aligned call.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The largest alignment every mimalloc block has.
const PLAIN_ALIGN: usize = 8;

/// mimalloc, with plain calls wherever the alignment allows.
pub struct Allocator;

// SAFETY: every call forwards to mimalloc, which returns blocks of at least
// the size asked, or null; of the alignment asked too, since a plain call is
// made only for alignments every mimalloc block has (`PLAIN_ALIGN`).
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match layout.align() <= PLAIN_ALIGN {
            true => mi::mi_malloc(layout.size()) as *mut u8,
            false => mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8,
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match layout.align() <= PLAIN_ALIGN {
            true => mi::mi_zalloc(layout.size()) as *mut u8,
            false => mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8,
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match layout.align() <= PLAIN_ALIGN {
            true => mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8,
            false => mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each small size class, a spread of larger sizes and a huge block,
    /// every alignment up to a page: blocks come back aligned, zeroed when
    /// asked, and keep their bytes when they shrink or grow.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let sizes = (1..=1024).chain((1025..=262_144).step_by(4093)).chain([4 << 20]);
        for size in sizes {
            let pattern: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero layouts; each block is written within its
                // size and freed once, with the layout it has.
                unsafe {
                    let zeroed = Allocator.alloc_zeroed(layout);
                    assert!(!zeroed.is_null());
                    assert_eq!(zeroed as usize % align, 0, "size {size}, align {align}");
                    assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|b| *b == 0));
                    Allocator.dealloc(zeroed, layout);
                    // Blocks side by side in a page, not just the same one again.
                    let held: Vec<*mut u8> = (0..4).map(|_| Allocator.alloc(layout)).collect();
                    for p in &held {
                        assert!(!p.is_null());
                        assert_eq!(*p as usize % align, 0, "size {size}, align {align}");
                    }
                    held.into_iter().for_each(|p| Allocator.dealloc(p, layout));
                    for new_size in [size / 2 + 1, size * 3] {
                        let p = Allocator.alloc(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                        std::ptr::copy_nonoverlapping(pattern.as_ptr(), p, size);
                        let q = Allocator.realloc(p, layout, new_size);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "size {size} to {new_size}, align {align}");
                        let kept = size.min(new_size);
                        assert_eq!(
                            std::slice::from_raw_parts(q, kept),
                            &pattern[..kept],
                            "size {size} to {new_size}"
                        );
                        Allocator.dealloc(q, Layout::from_size_align(new_size, align).unwrap());
                    }
                }
            }
        }
    }
}
