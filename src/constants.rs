//! Every limit of the system in one place. Units last in names.

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;

/// Number of partitions of the hash space (design.md: 256).
pub const PARTITION_COUNT: u32 = 256;

/// Default block size: objects are cut into blocks of this many bytes.
pub const BLOCK_BYTES_DEFAULT: u64 = MIB;
/// Largest block size accepted by `--block-size`.
pub const BLOCK_BYTES_MAX: u64 = 64 * MIB;
/// Objects smaller than this are stored inline in their metadata row.
pub const INLINE_THRESHOLD_BYTES_DEFAULT: u64 = 3 * KIB;

/// HTTP request head limits.
pub const HTTP_HEAD_BYTES_MAX: usize = 16 * 1024;
pub const HTTP_HEADER_COUNT_MAX: usize = 100;

pub const OBJECT_KEY_BYTES_MAX: usize = 1024;
pub const MULTIPART_PART_COUNT_MAX: u32 = 10_000;
/// How long a completed multipart upload is remembered, so that a retried Complete gets
/// the first one's answer (`CompletedUpload`).
pub const COMPLETED_UPLOAD_KEEP_MS: u64 = 24 * 3600 * 1000;
/// Blocks of one upload held in memory at most: the one being filled and those being
/// written (`objects::BLOCK_WRITES_IN_FLIGHT_MAX`).
pub const UPLOAD_BLOCKS_BUFFERED: u64 = 5;
/// Name of the admin API's token file in the data directory (`--admin-token-file`).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// S3's limit on a single PUT.
pub const OBJECT_BYTES_MAX_SINGLE_PUT: u64 = 5 * 1024 * MIB;

const _: () = assert!(BLOCK_BYTES_DEFAULT.is_multiple_of(4096));
const _: () = assert!(BLOCK_BYTES_MAX.is_multiple_of(4096));
