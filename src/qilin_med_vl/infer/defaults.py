"""Default limits and settings for inference, in one place and importable without torch or servers
(the CLI's `--help` shows them)."""

DEFAULT_MAX_NEW_TOKENS = 256  # answer length when a caller does not say
DEFAULT_IMAGE_CACHE_SIZE = 64  # images whose features the Engine keeps

DEFAULT_MAX_IMAGE_PIXELS = 25_000_000  # per image, after decoding (5000 x 5000)
DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024  # per image, encoded

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # whole HTTP request body
DEFAULT_MAX_IMAGES = 4  # images per request
DEFAULT_MAX_TOKENS_LIMIT = 1024  # the largest max_tokens a client may ask for

DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_WAIT_S = 0.01  # how long the first queued request waits for company
