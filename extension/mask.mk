# Column masks: the hash method computes HMAC-SHA256 with OpenSSL's digest
# contexts, prepared once per key (mask_methods.c).  The shared libcrypto
# is the one the server itself is linked with.
SHLIB_LINK += -lcrypto
