//! Wire frames: `[version = 1][u32 big-endian payload length][bincode 2 payload]`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The only frame version this code speaks.
pub const FRAME_VERSION: u8 = 1;
/// Version byte plus the length.
pub const FRAME_HEADER_LEN: usize = 5;
/// Default limit on a frame's payload.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported frame version {found} (this node speaks {FRAME_VERSION})")]
    BadVersion { found: u8 },
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("i/o error on a frame: {0}")]
    Io(std::io::Error),
    #[error("payload could not be encoded: {0}")]
    Encode(String),
    #[error("payload could not be decoded: {0}")]
    Decode(String),
    #[error("{extra} bytes left over after the payload")]
    TrailingBytes { extra: usize },
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` as one complete frame (header included).
pub fn encode_frame<T: Serialize + ?Sized>(value: &T, max: u32) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&[FRAME_VERSION, 0, 0, 0, 0]);
    bincode::serde::encode_into_std_write(value, &mut buf, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = buf.len() - FRAME_HEADER_LEN;
    let len32 = u32::try_from(len)
        .ok()
        .filter(|l| *l <= max)
        .ok_or(FrameError::TooLarge {
            len: len as u64,
            max,
        })?;
    buf[1..FRAME_HEADER_LEN].copy_from_slice(&len32.to_be_bytes());
    Ok(buf)
}

/// Checks a header and returns the payload length it announces.
fn check_header(header: [u8; FRAME_HEADER_LEN], max: u32) -> Result<usize, FrameError> {
    if header[0] != FRAME_VERSION {
        return Err(FrameError::BadVersion { found: header[0] });
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len > max {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(len as usize)
}

/// Decodes one complete frame held in memory (exactly one: trailing bytes are an error).
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8], max: u32) -> Result<T, FrameError> {
    let header: [u8; FRAME_HEADER_LEN] = frame
        .get(..FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let len = check_header(header, max)?;
    let rest = &frame[FRAME_HEADER_LEN..];
    if rest.len() < len {
        return Err(FrameError::Truncated);
    }
    if rest.len() > len {
        return Err(FrameError::TrailingBytes {
            extra: rest.len() - len,
        });
    }
    decode_payload(rest)
}

/// Reads one frame from `reader`: the header first, then (only if the header is valid and
/// within `max`) a buffer of exactly the announced length.
pub async fn read_frame<R, T>(reader: &mut R, max: u32) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
    T: DeserializeOwned,
{
    let mut header = [0u8; FRAME_HEADER_LEN];
    reader.read_exact(&mut header).await.map_err(io_error)?;
    let len = check_header(header, max)?;
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await.map_err(io_error)?;
    decode_payload(&payload)
}

fn io_error(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}

/// Decodes a payload that must be consumed exactly.
///
/// bincode allocates a string's or byte buffer's announced length before reading it and
/// only checks that length against a configured limit, which is a type parameter. An
/// honest payload never announces more bytes than it holds, so the limit is the smallest
/// of a few sizes that covers the payload: a hostile length costs at most 16x the frame.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    const MIB: usize = 1 << 20;
    let decoded = match payload.len() {
        n if n <= MIB => {
            bincode::serde::decode_from_slice(payload, config().with_limit::<{ MIB }>())
        }
        n if n <= 16 * MIB => {
            bincode::serde::decode_from_slice(payload, config().with_limit::<{ 16 * MIB }>())
        }
        n if n <= 256 * MIB => {
            bincode::serde::decode_from_slice(payload, config().with_limit::<{ 256 * MIB }>())
        }
        _ => bincode::serde::decode_from_slice(
            payload,
            config().with_limit::<{ u32::MAX as usize }>(),
        ),
    };
    let (value, used) = decoded.map_err(|e| FrameError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(FrameError::TrailingBytes {
            extra: payload.len() - used,
        });
    }
    Ok(value)
}
