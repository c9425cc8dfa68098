//! An initializer as bytes: what a driver sends so that every worker of
//! every agent makes the same state before running `map_with` tasks.

use super::{BuildId, RemoteError, receive_func};
use crate::pool::{PoolBuilder, state};
use crate::sys::image::PortableRef;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

const INIT_MAGIC: [u8; 4] = *b"bdI1";

#[derive(Serialize, Deserialize)]
struct InitEnvelope {
    build: BuildId,
    func: PortableRef,
    arg: Vec<u8>,
}

/// The bytes of an initializer: `f(arg)` makes each worker's state (see
/// [`PoolBuilder::initializer`]), for [`PoolBuilder::initializer_encoded`]
/// in any process of the same build.
///
/// ```
/// # brood::init();
/// use brood::remote::{ChunkEncoder, decode_results, encode_initializer};
/// fn offset(n: u64) -> u64 { n }
/// fn add(base: &u64, x: u64) -> u64 { base + x }
///
/// let init = encode_initializer(offset, &1000)?;
/// let mut chunk = ChunkEncoder::new_with(add)?;
/// chunk.push(&7)?;
///
/// // Elsewhere, the same build:
/// let pool = brood::Pool::builder(1).initializer_encoded(&init)?.build()?;
/// let out = pool.with(brood::CallOptions::new()).map_encoded(&chunk.finish(), None)?;
/// assert_eq!(decode_results::<u64>(&out, 1)?, [Ok(1007)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_initializer<I, S>(f: fn(I) -> S, arg: &I) -> Result<Vec<u8>, RemoteError>
where
    I: Serialize + DeserializeOwned + 'static,
    S: 'static,
{
    let func = state::init_ref(f).map_err(|e| RemoteError::Crossing(e.to_string()))?;
    let arg = postcard::to_allocvec(arg)
        .map_err(|e| RemoteError::Encode(crate::wire::frame::encode_error(&e)))?;
    let env = InitEnvelope {
        build: BuildId::current()?,
        func: func.portable(),
        arg,
    };
    let mut out = INIT_MAGIC.to_vec();
    postcard::to_io(&env, &mut out).map_err(|e| RemoteError::Encode(e.to_string()))?;
    Ok(out)
}

impl PoolBuilder {
    /// The initializer from [`encode_initializer`]'s bytes (made by this or
    /// another process of the same build), as
    /// [`PoolBuilder::initializer`] would set it. Bytes of another build, or
    /// no initializer at all, are refused.
    pub fn initializer_encoded(&mut self, init: &[u8]) -> Result<&mut Self, RemoteError> {
        let malformed = |cause: String| RemoteError::Malformed {
            what: "initializer",
            cause,
        };
        let body = init
            .strip_prefix(&INIT_MAGIC)
            .ok_or_else(|| malformed("it does not start with the initializer magic".into()))?;
        let env: InitEnvelope = postcard::from_bytes(body).map_err(|e| malformed(e.to_string()))?;
        let func = receive_func(env.build, &env.func)?;
        self.cfg.init = Some((func, env.arg));
        self.cfg.init_error = None;
        Ok(self)
    }
}
