//! A heap of its own for a Lua VM's small objects, away from the process's `malloc` heap.
//!
//! A workflow VM holds every cached run's Lua state: thousands of small, long-lived objects
//! (strings, tables, closures, call frames). In the process's heap they sit between Core's short
//! lived buffers, so Core's `malloc` and `free` find fragmented bins and touch more memory than
//! they would alone. Here every block of up to [`SMALL`] bytes comes from one reserved address
//! range instead: carved off its end, and reused through a free list per 16-byte size class.
//! Lua's allocation function passes the old size of every block it frees or resizes, so blocks
//! need no header. Larger blocks (stacks, big table parts) and blocks allocated before the heap
//! was installed go to the VM's previous allocation function.
//!
//! The heap also keeps the VM's byte count and enforces its memory limit (an allocation past the
//! limit fails, and Lua raises a memory error), which mlua does only for its own allocation
//! function. It lives until the VM closes: Lua frees the VM's main block last, and the heap
//! releases its range and itself right after. Until then freed blocks wait in their class's list
//! for the next allocation of their size; the range's pages are not given back to the system.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use mlua::ffi;

/// Largest block served from the heap's range.
const SMALL: usize = 512;
const GRAIN: usize = 16;
const CLASSES: usize = SMALL / GRAIN;
/// Address space reserved per VM; pages are backed only once used.
const RESERVED: usize = 16 << 30;

#[cfg(test)]
thread_local! {
    /// Heaps installed on this thread and not yet released.
    static LIVE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A handle to a VM's heap, valid while the VM it was installed in is open.
#[derive(Debug)]
pub(crate) struct Heap(NonNull<State>);

struct State {
    used: usize,
    /// Zero: no limit.
    limit: usize,
    base: *mut u8,
    end: *mut u8,
    /// Where the next fresh block is carved off.
    top: *mut u8,
    /// Head of each size class's free list; a free block holds the next one's address.
    free: [*mut u8; CLASSES],
    /// The VM's main block, which Lua frees last when it closes.
    main_block: *mut c_void,
    fallback: ffi::lua_Alloc,
    fallback_ud: *mut c_void,
}

impl Heap {
    /// Makes `lua` allocate through a new heap. `None` (and `lua` unchanged) if the address range
    /// cannot be reserved.
    pub(crate) fn install(lua: &mlua::Lua) -> Option<Heap> {
        let state = lua.current_thread().state();
        // SAFETY: an anonymous private mapping with no address hint; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                RESERVED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base.cast::<u8>();
        let mut fallback_ud = ptr::null_mut();
        // SAFETY: `state` is a live thread of `lua`; the allocation function and main block are
        // the VM's (global) ones, whichever thread is asked. Nothing is allocated between reading
        // the old function and installing the new one, so every block the old one handed out is
        // below the range and goes back to it.
        unsafe {
            let fallback = ffi::lua_getallocf(state, &mut fallback_ud);
            ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_MAINTHREAD);
            let main_thread = ffi::lua_tothread(state, -1);
            ffi::lua_pop(state, 1);
            let heap = Box::new(State {
                used: lua.used_memory(),
                limit: 0,
                base,
                end: base.add(RESERVED),
                top: base,
                free: [ptr::null_mut(); CLASSES],
                main_block: ffi::lua_getextraspace(main_thread),
                fallback,
                fallback_ud,
            });
            let heap = NonNull::from(Box::leak(heap));
            ffi::lua_setallocf(state, allocate, heap.as_ptr().cast());
            #[cfg(test)]
            LIVE.with(|live| live.set(live.get() + 1));
            Some(Heap(heap))
        }
    }

    /// Bytes the VM holds.
    pub(crate) fn used(&self) -> usize {
        // SAFETY: the VM is open (see the type), and only its thread touches the state.
        unsafe { self.0.as_ref().used }
    }

    /// Makes allocations past `limit` bytes in all fail; zero lifts the limit.
    pub(crate) fn set_limit(&self, limit: usize) {
        // SAFETY: as in `used`; no allocation is running while the VM's owner calls this.
        unsafe { (*self.0.as_ptr()).limit = limit }
    }
}

fn class(size: usize) -> usize {
    (size - 1) / GRAIN
}

impl State {
    fn owns(&self, block: *mut c_void) -> bool {
        let block = block.cast::<u8>();
        block >= self.base && block < self.end
    }

    /// A block of `size` (1..=SMALL) bytes, or null if the range is used up.
    unsafe fn take(&mut self, size: usize) -> *mut u8 {
        let class = class(size);
        let head = self.free[class];
        if !head.is_null() {
            // SAFETY: a free block of this class holds the next one's address.
            self.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let span = (class + 1) * GRAIN;
        if (self.end as usize) - (self.top as usize) < span {
            return ptr::null_mut();
        }
        let block = self.top;
        // SAFETY: `span` bytes are left in the range (checked above).
        self.top = unsafe { self.top.add(span) };
        block
    }

    unsafe fn give_back(&mut self, block: *mut u8, size: usize) {
        let class = class(size);
        // SAFETY: the block is at least GRAIN bytes, 16-aligned, and no longer in use.
        unsafe { block.cast::<*mut u8>().write(self.free[class]) };
        self.free[class] = block;
    }

    unsafe fn fallback(&self, block: *mut c_void, old: usize, new: usize) -> *mut c_void {
        // SAFETY: the previous allocation function with its own data, for a block it handed out
        // (or none).
        unsafe { (self.fallback)(self.fallback_ud, block, old, new) }
    }
}

/// Lua's allocation function (`lua_Alloc`): frees `block` when `new` is 0, else allocates or
/// resizes it; `old` is the block's size when `block` is not null.
unsafe extern "C" fn allocate(ud: *mut c_void, block: *mut c_void, old: usize, new: usize) -> *mut c_void {
    // SAFETY: `ud` is the heap installed with this function; the VM calls it from one thread.
    let heap = unsafe { &mut *ud.cast::<State>() };
    let old = if block.is_null() { 0 } else { old };
    if new == 0 {
        if !block.is_null() {
            heap.used -= old;
            if heap.owns(block) {
                // SAFETY: a block of this heap of `old` bytes, no longer used.
                unsafe { heap.give_back(block.cast(), old) };
            } else if block == heap.main_block {
                // The VM is closing: this is its last block, then the heap goes too.
                // SAFETY: the main block came from the previous function; nothing refers to the
                // range or the heap once the VM is gone.
                unsafe {
                    heap.fallback(block, old, 0);
                    libc::munmap(heap.base.cast(), RESERVED);
                    drop(Box::from_raw(heap as *mut State));
                }
                #[cfg(test)]
                LIVE.with(|live| live.set(live.get() - 1));
            } else {
                // SAFETY: allocated by the previous function.
                unsafe { heap.fallback(block, old, 0) };
            }
        }
        return ptr::null_mut();
    }
    if heap.limit > 0 && new > old && heap.used + (new - old) > heap.limit {
        return ptr::null_mut();
    }
    let owned = !block.is_null() && heap.owns(block);
    if owned && new <= SMALL && class(old) == class(new) {
        heap.used = heap.used + new - old;
        return block;
    }
    if !block.is_null() && !owned && new > SMALL {
        // SAFETY: resized by the function that allocated it.
        let moved = unsafe { heap.fallback(block, old, new) };
        if !moved.is_null() {
            heap.used = heap.used + new - old;
        }
        return moved;
    }
    // A new block, from the range when small enough (and not used up), else from the fallback.
    // SAFETY: `new` is 1..=SMALL for `take`.
    let mut fresh = if new <= SMALL { unsafe { heap.take(new) }.cast::<c_void>() } else { ptr::null_mut() };
    if fresh.is_null() {
        // SAFETY: a fresh allocation from the previous function.
        fresh = unsafe { heap.fallback(ptr::null_mut(), 0, new) };
        if fresh.is_null() {
            return fresh;
        }
    }
    if !block.is_null() {
        // SAFETY: both blocks are live and distinct; the copy fits either.
        unsafe {
            ptr::copy_nonoverlapping(block.cast::<u8>(), fresh.cast::<u8>(), old.min(new));
            if owned {
                heap.give_back(block.cast(), old);
            } else {
                heap.fallback(block, old, 0);
            }
        }
    }
    heap.used = heap.used + new - old;
    fresh
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use mlua::{Lua, Table};

    use super::*;

    fn lua_count(lua: &Lua) -> usize {
        lua.gc_collect().expect("collect");
        lua.used_memory()
    }

    #[test]
    fn objects_of_every_size_keep_their_contents_and_the_count_matches_luas() {
        let lua = Lua::new();
        let heap = Heap::install(&lua).expect("heap");
        // Strings of 1 to 2000 bytes (both sides of SMALL), tables grown past SMALL through
        // resizes, then half of it dropped and the rest checked after the collector reused blocks.
        lua.load(
            r#"
            keep = {}
            for i = 1, 2000 do
                local t = {}
                for j = 1, i % 70 do t[j] = string.rep("x", j) end
                keep[i] = { s = string.rep(string.char(65 + i % 26), i), t = t }
            end
            for i = 1, 2000, 2 do keep[i] = nil end
            collectgarbage()
            for i = 1, 3000 do keep[-i] = string.rep("y", i % 600) end
            "#,
        )
        .exec()
        .expect("allocates");
        let keep: Table = lua.globals().get("keep").expect("keep");
        for i in (2..=2000).step_by(2) {
            let entry: Table = keep.get(i).expect("entry");
            let s: String = entry.get("s").expect("s");
            assert_eq!(s, String::from(char::from(65 + (i % 26) as u8)).repeat(i as usize));
            let t: Table = entry.get("t").expect("t");
            assert_eq!(t.raw_len(), (i % 70) as usize);
        }
        let counted = lua_count(&lua);
        assert_eq!(heap.used(), counted, "the heap counts what Lua counts");
    }

    #[test]
    fn the_heap_is_released_when_the_vm_closes() {
        let lua = Lua::new();
        Heap::install(&lua).expect("heap");
        lua.load("t = {} for i = 1, 1000 do t[i] = { i } end").exec().expect("allocates");
        assert_eq!(LIVE.with(Cell::get), 1);
        drop(lua);
        assert_eq!(LIVE.with(Cell::get), 0, "closing the VM released its heap");
    }

    #[test]
    fn an_allocation_past_the_limit_raises_a_memory_error_and_lifting_it_recovers() {
        let lua = Lua::new();
        let heap = Heap::install(&lua).expect("heap");
        heap.set_limit(heap.used() + 64 * 1024);
        let error = lua.load("local t = {} for i = 1, 1e6 do t[i] = {} end").exec().expect_err("limit");
        assert!(matches!(error, mlua::Error::MemoryError(_)), "{error}");
        heap.set_limit(0);
        lua.load("local t = {} for i = 1, 1e5 do t[i] = {} end").exec().expect("no limit");
    }
}
