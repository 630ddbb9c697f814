/*-------------------------------------------------------------------------
 *
 * jwt_int.h
 *	  Private declarations shared by b64url.c, jwks.c, jwt.c and keysource.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_JWT_INT_H
#define AG_JWT_INT_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <openssl/evp.h>

#include "ag_jwt.h"

/* b64url.c: strict RFC 7515 base64url, no padding. */
#define AG_B64URL_DECODED_MAX(n)	(((n) / 4) * 3 + 2)
#define AG_B64URL_ENCODED_LEN(n)	(((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
extern bool ag_b64url_decode(const char *in, size_t inlen,
							 unsigned char *out, size_t outcap, size_t *outlen);
extern size_t ag_b64url_encode(const unsigned char *in, size_t inlen, char *out);

typedef enum ag_kty
{
	AG_KTY_RSA,
	AG_KTY_EC,
	AG_KTY_OKP,
	AG_KTY_OCT
} ag_kty;

typedef enum ag_crv
{
	AG_CRV_NONE,
	AG_CRV_P256,
	AG_CRV_P384,
	AG_CRV_P521,
	AG_CRV_ED25519
} ag_crv;

/* The JWS algorithms we accept; anything else (notably "none") is refused. */
typedef enum ag_alg_family
{
	AG_FAM_RS,					/* RSASSA-PKCS1-v1_5 */
	AG_FAM_PS,					/* RSASSA-PSS, salt = digest length */
	AG_FAM_ES,					/* ECDSA, raw R||S */
	AG_FAM_ED,					/* EdDSA (Ed25519) */
	AG_FAM_HS					/* HMAC */
} ag_alg_family;

typedef struct ag_alg
{
	const char *name;
	ag_alg_family fam;
	int			mdidx;			/* 0 SHA-256, 1 SHA-384, 2 SHA-512, -1 none */
	int			mdlen;			/* digest bytes; 0 for EdDSA */
	ag_crv		crv;			/* ES and EdDSA: the curve it requires */
} ag_alg;

typedef struct ag_jwk
{
	char	   *kid;			/* NULL when the JWK has none */
	ag_kty		kty;
	ag_crv		crv;
	const ag_alg *alg;			/* the JWK's "alg"; NULL = any that fits */
	EVP_PKEY   *pkey;			/* RSA, EC, OKP */
	unsigned char *secret;		/* oct */
	size_t		secretlen;
	size_t		sigsize;		/* exact signature length (not for oct) */
} ag_jwk;

struct ag_keyset
{
	atomic_int	refcount;
	int			nkeys;
	int			nskipped;		/* JWKs ignored: unknown kty/crv, use!=sig */
	ag_jwk		keys[];
};

/* jwks.c */
extern const ag_alg *ag_alg_lookup(const char *name);
extern bool ag_jwk_allows(const ag_jwk *k, const ag_alg *a);
extern ag_keyset *ag_keyset_merge(const ag_keyset *a, const ag_keyset *b);

/* jwt.c */
extern const EVP_MD *ag_jwt_md(int mdidx);
extern void ag_jwt_seterr(char *err, size_t errlen, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));
extern const char *ag_jwt_printable(char *dst, size_t dstlen,
									const char *s, size_t len);

#endif							/* AG_JWT_INT_H */
