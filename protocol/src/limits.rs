//! Numeric limits and tuning constants shared by both ends.

/// Default TLS port of the server.
pub const DEFAULT_PORT: u16 = 8007;

/// HTTP/2 stream window for bulk transfer inside a session. The h2 default of 64 KiB
/// limits a single stream to one window per round trip, far below a fast link.
pub const H2_STREAM_WINDOW: u32 = 32 * 1024 * 1024;
/// HTTP/2 connection window: room for several streams at full speed.
pub const H2_CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// HTTP/2 maximum frame size (the protocol allows up to 16 MiB - 1).
pub const H2_MAX_FRAME_SIZE: u32 = 1024 * 1024;

/// Largest JSON request body any REST route accepts.
pub const MAX_JSON_BODY: usize = 1024 * 1024;
/// Largest blob (small file such as a log or config) a session may upload.
pub const MAX_BLOB_SIZE: usize = 128 * 1024 * 1024;
/// Largest encoded chunk a reader may be sent (16 MiB maximum chunk plus header).
pub const MAX_ENCODED_CHUNK: usize = 16 * 1024 * 1024 + 64;
