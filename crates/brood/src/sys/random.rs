//! Unguessable numbers from the kernel: `getrandom(2)`.
//!
//! # References
//! getrandom(2).

/// 64 random bits. `getrandom` cannot fail for 8 bytes once the kernel's pool is
/// seeded (and blocks until then); if it did, std's per-process random hash
/// keys still give an unpredictable value.
pub fn u64() -> u64 {
    let mut bytes = [0u8; 8];
    if let Ok(8) = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()) {
        return u64::from_le_bytes(bytes);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        assert_ne!(super::u64(), super::u64());
    }
}
