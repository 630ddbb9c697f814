/*-------------------------------------------------------------------------
 *
 * b64url.c
 *	  Strict base64url (RFC 4648 section 5) without padding, as JWS uses it.
 *
 * The decoder accepts exactly one encoding of each byte string: no '=',
 * no whitespace, no '+' or '/', no length of the form 4n+1, and the unused
 * low bits of the last character must be zero.  Lenient decoders make
 * tokens malleable (several strings verify as the same token), so every
 * deviation is an error here.
 *
 *-------------------------------------------------------------------------
 */
#include "jwt_int.h"

static const char b64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of a character of the alphabet, or -1. */
static inline int
b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decode inlen characters into out (outcap bytes).  Returns false on any
 * non-canonical input or when out is too small.
 */
bool
ag_b64url_decode(const char *in, size_t inlen,
				 unsigned char *out, size_t outcap, size_t *outlen)
{
	size_t		full = inlen / 4;
	size_t		rem = inlen % 4;
	size_t		need = full * 3 + (rem ? rem - 1 : 0);
	const unsigned char *p = (const unsigned char *) in;
	size_t		o = 0;

	if (rem == 1 || need > outcap)
		return false;

	for (size_t i = 0; i < full; i++, p += 4)
	{
		int			a = b64url_val(p[0]),
					b = b64url_val(p[1]),
					c = b64url_val(p[2]),
					d = b64url_val(p[3]);

		if ((a | b | c | d) < 0)
			return false;
		out[o++] = (unsigned char) (a << 2 | b >> 4);
		out[o++] = (unsigned char) (b << 4 | c >> 2);
		out[o++] = (unsigned char) (c << 6 | d);
	}

	if (rem == 2)
	{
		int			a = b64url_val(p[0]),
					b = b64url_val(p[1]);

		/* 12 bits carry 8: the low 4 bits must be zero */
		if ((a | b) < 0 || (b & 0x0f) != 0)
			return false;
		out[o++] = (unsigned char) (a << 2 | b >> 4);
	}
	else if (rem == 3)
	{
		int			a = b64url_val(p[0]),
					b = b64url_val(p[1]),
					c = b64url_val(p[2]);

		/* 18 bits carry 16: the low 2 bits must be zero */
		if ((a | b | c) < 0 || (c & 0x03) != 0)
			return false;
		out[o++] = (unsigned char) (a << 2 | b >> 4);
		out[o++] = (unsigned char) (b << 4 | c >> 2);
	}

	*outlen = o;
	return true;
}

/*
 * Encode inlen bytes; out must hold AG_B64URL_ENCODED_LEN(inlen) + 1.
 * Returns the length written, not counting the terminating NUL.
 */
size_t
ag_b64url_encode(const unsigned char *in, size_t inlen, char *out)
{
	size_t		o = 0;
	size_t		i = 0;

	for (; i + 3 <= inlen; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (inlen - i == 1)
	{
		out[o++] = b64url_alphabet[in[i] >> 2];
		out[o++] = b64url_alphabet[(in[i] & 3) << 4];
	}
	else if (inlen - i == 2)
	{
		uint32_t	v = (uint32_t) in[i] << 8 | in[i + 1];

		out[o++] = b64url_alphabet[v >> 10];
		out[o++] = b64url_alphabet[(v >> 4) & 63];
		out[o++] = b64url_alphabet[(v & 15) << 2];
	}
	out[o] = '\0';
	return o;
}
