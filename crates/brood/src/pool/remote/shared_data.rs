//! Shared data a chunk names, received from another machine.

use crate::pool::shared::Sharing;

/// Shared data received from another machine, to run the chunks that name
/// it: its bytes in shared memory (a sealed `memfd`), which the pool's
/// workers map as they would a local [`SharedSlice`](crate::SharedSlice).
/// Keep it (by id) for later chunks: each worker gets it once.
///
/// ```
/// let data = brood::remote::SharedData::new(7, b"abc")?;
/// assert_eq!((data.id(), data.len()), (7, 3));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedData(pub(super) Sharing);

impl std::fmt::Debug for SharedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedData")
            .field("id", &self.0.id)
            .field("len", &self.len())
            .finish()
    }
}

impl SharedData {
    /// The shared data of id `id` (as [`ChunkEncoder::shared`] gave it),
    /// holding `bytes`.
    pub fn new(id: u64, bytes: &[u8]) -> std::io::Result<SharedData> {
        let mut w = crate::sys::shm::RegionWriter::new(bytes.len())?;
        w.bytes_mut().copy_from_slice(bytes);
        let region = w.seal()?;
        Ok(SharedData(Sharing {
            id,
            region: std::sync::Arc::new(region),
        }))
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.region.bytes().len()
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
