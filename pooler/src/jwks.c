/*-------------------------------------------------------------------------
 *
 * jwks.c
 *	  JWK Set parsing into immutable, reference-counted keysets.
 *
 * Every key is checked once, at load, so that verification only has to
 * look keys up.  A bad key refuses the whole document: a key set that is
 * half loaded would fail in confusing ways later, and the key source keeps
 * the previous set when a new one is refused.  JWKs that are merely not
 * for us (an unknown kty or curve, "use" other than "sig", an algorithm
 * that is not a JWS signature algorithm we support) are skipped and
 * counted, so that an identity provider adding such keys does not lock
 * everybody out.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "jwt_int.h"

#define KID_MAX			127		/* ag_jwt_result.kid holds 127 + NUL */
#define RSA_MIN_BITS	2048
#define RSA_MAX_BITS	16384
#define RSA_MAX_E_BITS	256
#define OCT_MIN_BYTES	32		/* RFC 7518 3.2: at least the hash size */
#define OCT_MAX_BYTES	1024

static const ag_alg ag_algs[] = {
	{"RS256", AG_FAM_RS, 0, 32, AG_CRV_NONE},
	{"RS384", AG_FAM_RS, 1, 48, AG_CRV_NONE},
	{"RS512", AG_FAM_RS, 2, 64, AG_CRV_NONE},
	{"PS256", AG_FAM_PS, 0, 32, AG_CRV_NONE},
	{"PS384", AG_FAM_PS, 1, 48, AG_CRV_NONE},
	{"PS512", AG_FAM_PS, 2, 64, AG_CRV_NONE},
	{"ES256", AG_FAM_ES, 0, 32, AG_CRV_P256},
	{"ES384", AG_FAM_ES, 1, 48, AG_CRV_P384},
	{"ES512", AG_FAM_ES, 2, 64, AG_CRV_P521},
	{"EdDSA", AG_FAM_ED, -1, 0, AG_CRV_ED25519},
	{"HS256", AG_FAM_HS, 0, 32, AG_CRV_NONE},
	{"HS384", AG_FAM_HS, 1, 48, AG_CRV_NONE},
	{"HS512", AG_FAM_HS, 2, 64, AG_CRV_NONE},
};

static const struct
{
	const char *name;			/* JWK "crv" */
	const char *group;			/* OpenSSL group name */
	ag_crv		crv;
	size_t		coord;			/* bytes per coordinate */
}			ag_curves[] = {
	{"P-256", "P-256", AG_CRV_P256, 32},
	{"P-384", "P-384", AG_CRV_P384, 48},
	{"P-521", "P-521", AG_CRV_P521, 66},
};

/* Case-sensitive, exact: "rs256" or "none" find nothing. */
const ag_alg *
ag_alg_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(ag_algs) / sizeof(ag_algs[0]); i++)
		if (strcmp(ag_algs[i].name, name) == 0)
			return &ag_algs[i];
	return NULL;
}

/*
 * May key k verify a signature of algorithm a?  This is the only place
 * that ties algorithms to keys: an RSA, EC or OKP key is never an HMAC
 * secret, whatever the token says.
 */
bool
ag_jwk_allows(const ag_jwk *k, const ag_alg *a)
{
	if (k->alg != NULL && k->alg != a)
		return false;
	switch (k->kty)
	{
		case AG_KTY_RSA:
			return a->fam == AG_FAM_RS || a->fam == AG_FAM_PS;
		case AG_KTY_EC:
			return a->fam == AG_FAM_ES && a->crv == k->crv;
		case AG_KTY_OKP:
			return a->fam == AG_FAM_ED && k->crv == AG_CRV_ED25519;
		case AG_KTY_OCT:
			return a->fam == AG_FAM_HS && k->secretlen >= (size_t) a->mdlen;
	}
	return false;
}

/* Outcome of parsing one JWK. */
typedef enum
{
	JWK_OK,
	JWK_SKIP,
	JWK_BAD
} jwk_verdict;

/* A member that must be a string if present; NULL if absent. */
static bool
get_string(json_t *obj, const char *name, const char **out, size_t *outlen)
{
	json_t	   *v = json_object_get(obj, name);

	*out = NULL;
	if (v == NULL)
		return true;
	if (!json_is_string(v))
		return false;
	*out = json_string_value(v);
	if (outlen)
		*outlen = json_string_length(v);
	return true;
}

/* Decode a required base64url member into buf; false with err set. */
static bool
get_b64(json_t *jwk, const char *name, unsigned char *buf, size_t cap,
		size_t *outlen, char *err, size_t errlen)
{
	const char *s;
	size_t		slen;

	if (!get_string(jwk, name, &s, &slen) || s == NULL)
	{
		ag_jwt_seterr(err, errlen, "member \"%s\" missing or not a string", name);
		return false;
	}
	if (!ag_b64url_decode(s, slen, buf, cap, outlen) || *outlen == 0)
	{
		ag_jwt_seterr(err, errlen, "member \"%s\" is not canonical base64url or has a bad length", name);
		return false;
	}
	return true;
}

static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM *params)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY   *pkey = NULL;

	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/*
 * RSA: EVP_PKEY_fromdata takes any n and e, and the full public check
 * costs milliseconds per key, so the checks that matter are done here:
 * size bounds, odd n and e, 1 < e <= 2^256 (with e = 1 every message is
 * its own signature).
 */
static jwk_verdict
parse_rsa(json_t *jwk, ag_jwk *k, char *err, size_t errlen)
{
	unsigned char nbuf[RSA_MAX_BITS / 8 + 1];
	unsigned char ebuf[RSA_MAX_E_BITS / 8 + 1];
	size_t		nlen,
				elen;
	BIGNUM	   *n = NULL,
			   *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	jwk_verdict v = JWK_BAD;
	int			bits;

	if (!get_b64(jwk, "n", nbuf, sizeof(nbuf), &nlen, err, errlen) ||
		!get_b64(jwk, "e", ebuf, sizeof(ebuf), &elen, err, errlen))
		return JWK_BAD;
	n = BN_bin2bn(nbuf, (int) nlen, NULL);
	e = BN_bin2bn(ebuf, (int) elen, NULL);
	if (n == NULL || e == NULL)
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		goto out;
	}
	bits = BN_num_bits(n);
	if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
	{
		ag_jwt_seterr(err, errlen, "RSA modulus of %d bits; %d to %d are allowed",
					  bits, RSA_MIN_BITS, RSA_MAX_BITS);
		goto out;
	}
	if (!BN_is_odd(n) || !BN_is_odd(e))
	{
		ag_jwt_seterr(err, errlen, "RSA modulus and exponent must be odd");
		goto out;
	}
	if (BN_is_one(e) || BN_num_bits(e) > RSA_MAX_E_BITS)
	{
		ag_jwt_seterr(err, errlen, "RSA exponent must be above 1 and at most 2^256");
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
		!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
		(params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
		(k->pkey = pkey_fromdata("RSA", params)) == NULL)
	{
		ag_jwt_seterr(err, errlen, "OpenSSL refused the RSA key");
		goto out;
	}
	k->sigsize = (size_t) EVP_PKEY_get_size(k->pkey);
	v = JWK_OK;
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return v;
}

/* EC: exact coordinate lengths, and the point must be on the curve. */
static jwk_verdict
parse_ec(json_t *jwk, ag_jwk *k, char *err, size_t errlen)
{
	const char *crv;
	unsigned char pub[1 + 2 * 66];
	size_t		xlen,
				ylen,
				coord = 0;
	const char *group = NULL;
	OSSL_PARAM	params[3];
	EVP_PKEY_CTX *chk;
	int			ok;

	if (!get_string(jwk, "crv", &crv, NULL) || crv == NULL)
	{
		ag_jwt_seterr(err, errlen, "member \"crv\" missing or not a string");
		return JWK_BAD;
	}
	for (size_t i = 0; i < sizeof(ag_curves) / sizeof(ag_curves[0]); i++)
		if (strcmp(crv, ag_curves[i].name) == 0)
		{
			k->crv = ag_curves[i].crv;
			coord = ag_curves[i].coord;
			group = ag_curves[i].group;
		}
	if (group == NULL)
		return JWK_SKIP;

	pub[0] = 0x04;				/* uncompressed point */
	if (!get_b64(jwk, "x", pub + 1, coord, &xlen, err, errlen) ||
		!get_b64(jwk, "y", pub + 1 + coord, coord, &ylen, err, errlen))
		return JWK_BAD;
	if (xlen != coord || ylen != coord)
	{
		ag_jwt_seterr(err, errlen, "%s coordinates must be %zu bytes each", crv, coord);
		return JWK_BAD;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
												 (char *) group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
												  pub, 1 + 2 * coord);
	params[2] = OSSL_PARAM_construct_end();
	k->pkey = pkey_fromdata("EC", params);
	if (k->pkey == NULL)
	{
		ag_jwt_seterr(err, errlen, "%s point refused (not on the curve?)", crv);
		return JWK_BAD;
	}
	/* cheap for EC, and it rules out points of small order */
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	ok = chk != NULL && EVP_PKEY_public_check(chk) == 1;
	EVP_PKEY_CTX_free(chk);
	if (!ok)
	{
		ag_jwt_seterr(err, errlen, "%s public key check failed", crv);
		return JWK_BAD;
	}
	k->sigsize = 2 * coord;
	return JWK_OK;
}

/* OKP: only Ed25519; Ed448 and the X curves are skipped. */
static jwk_verdict
parse_okp(json_t *jwk, ag_jwk *k, char *err, size_t errlen)
{
	const char *crv;
	unsigned char x[32];
	size_t		xlen;

	if (!get_string(jwk, "crv", &crv, NULL) || crv == NULL)
	{
		ag_jwt_seterr(err, errlen, "member \"crv\" missing or not a string");
		return JWK_BAD;
	}
	if (strcmp(crv, "Ed25519") != 0)
		return JWK_SKIP;
	k->crv = AG_CRV_ED25519;
	if (!get_b64(jwk, "x", x, sizeof(x), &xlen, err, errlen))
		return JWK_BAD;
	if (xlen != sizeof(x))
	{
		ag_jwt_seterr(err, errlen, "Ed25519 key must be 32 bytes");
		return JWK_BAD;
	}
	k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
	if (k->pkey == NULL)
	{
		ag_jwt_seterr(err, errlen, "OpenSSL refused the Ed25519 key");
		return JWK_BAD;
	}
	k->sigsize = 64;
	return JWK_OK;
}

/* oct: an HMAC secret of at least 32 bytes. */
static jwk_verdict
parse_oct(json_t *jwk, ag_jwk *k, char *err, size_t errlen)
{
	unsigned char buf[OCT_MAX_BYTES];
	size_t		len;

	if (!get_b64(jwk, "k", buf, sizeof(buf), &len, err, errlen))
		return JWK_BAD;
	if (len < OCT_MIN_BYTES)
	{
		OPENSSL_cleanse(buf, sizeof(buf));
		ag_jwt_seterr(err, errlen, "oct key of %zu bytes; at least %d are required",
					  len, OCT_MIN_BYTES);
		return JWK_BAD;
	}
	k->secret = OPENSSL_memdup(buf, len);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (k->secret == NULL)
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		return JWK_BAD;
	}
	k->secretlen = len;
	return JWK_OK;
}

/* Does key_ops, when present, allow "verify"? */
static bool
ops_allow_verify(json_t *ops)
{
	size_t		i;
	json_t	   *op;

	json_array_foreach(ops, i, op)
		if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
		return true;
	return false;
}

static jwk_verdict
parse_jwk(json_t *jwk, ag_jwk *k, char *err, size_t errlen)
{
	const char *kty,
			   *use,
			   *alg,
			   *kid;
	size_t		kidlen = 0;
	json_t	   *ops;
	jwk_verdict v;

	if (!json_is_object(jwk))
	{
		ag_jwt_seterr(err, errlen, "not a JSON object");
		return JWK_BAD;
	}
	if (!get_string(jwk, "kty", &kty, NULL) || kty == NULL)
	{
		ag_jwt_seterr(err, errlen, "member \"kty\" missing or not a string");
		return JWK_BAD;
	}
	if (!get_string(jwk, "use", &use, NULL) ||
		!get_string(jwk, "alg", &alg, NULL) ||
		!get_string(jwk, "kid", &kid, &kidlen))
	{
		ag_jwt_seterr(err, errlen, "members \"use\", \"alg\" and \"kid\" must be strings");
		return JWK_BAD;
	}
	if (kid != NULL && (kidlen == 0 || kidlen > KID_MAX || strlen(kid) != kidlen))
	{
		ag_jwt_seterr(err, errlen, "kid must be 1 to %d bytes without NUL", KID_MAX);
		return JWK_BAD;
	}
	ops = json_object_get(jwk, "key_ops");
	if (ops != NULL && !json_is_array(ops))
	{
		ag_jwt_seterr(err, errlen, "member \"key_ops\" is not an array");
		return JWK_BAD;
	}
	if (alg != NULL && strcasecmp(alg, "none") == 0)
	{
		ag_jwt_seterr(err, errlen, "alg \"none\" is not allowed");
		return JWK_BAD;
	}

	/* Not a signature key, or not one we can use: leave it out. */
	if ((use != NULL && strcmp(use, "sig") != 0) ||
		(ops != NULL && !ops_allow_verify(ops)))
		return JWK_SKIP;
	if (alg != NULL && (k->alg = ag_alg_lookup(alg)) == NULL)
		return JWK_SKIP;

	/* A published key set must not carry private keys. */
	if (strcmp(kty, "oct") != 0 && json_object_get(jwk, "d") != NULL)
	{
		ag_jwt_seterr(err, errlen, "holds a private key (member \"d\"); publish public keys only");
		return JWK_BAD;
	}

	if (strcmp(kty, "RSA") == 0)
	{
		k->kty = AG_KTY_RSA;
		v = parse_rsa(jwk, k, err, errlen);
	}
	else if (strcmp(kty, "EC") == 0)
	{
		k->kty = AG_KTY_EC;
		v = parse_ec(jwk, k, err, errlen);
	}
	else if (strcmp(kty, "OKP") == 0)
	{
		k->kty = AG_KTY_OKP;
		v = parse_okp(jwk, k, err, errlen);
	}
	else if (strcmp(kty, "oct") == 0)
	{
		k->kty = AG_KTY_OCT;
		v = parse_oct(jwk, k, err, errlen);
	}
	else
		v = JWK_SKIP;
	if (v != JWK_OK)
		return v;

	/* The key's own alg must fit its type, curve and size. */
	if (k->alg != NULL && !ag_jwk_allows(k, k->alg))
	{
		ag_jwt_seterr(err, errlen, "alg %s does not fit this %s key%s", k->alg->name, kty,
					  k->kty == AG_KTY_OCT && k->alg->fam == AG_FAM_HS ? " (too short)" :
					  k->kty == AG_KTY_EC && k->alg->fam == AG_FAM_ES ? " (wrong curve)" : "");
		return JWK_BAD;
	}
	if (kid != NULL && (k->kid = strdup(kid)) == NULL)
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		return JWK_BAD;
	}
	return JWK_OK;
}

static void
jwk_clear(ag_jwk *k)
{
	free(k->kid);
	EVP_PKEY_free(k->pkey);
	if (k->secret)
		OPENSSL_clear_free(k->secret, k->secretlen);
	memset(k, 0, sizeof(*k));
}

static ag_keyset *
keyset_alloc(size_t nkeys)
{
	ag_keyset  *ks = calloc(1, sizeof(ag_keyset) + nkeys * sizeof(ag_jwk));

	if (ks != NULL)
		atomic_init(&ks->refcount, 1);
	return ks;
}

static void
keyset_free(ag_keyset *ks)
{
	for (int i = 0; i < ks->nkeys; i++)
		jwk_clear(&ks->keys[i]);
	free(ks);
}

ag_keyset *
ag_keyset_parse(const char *json, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t	   *root = NULL,
			   *keys,
			   *jwk;
	ag_keyset  *ks = NULL;
	char		why[AG_JWT_ERRLEN];
	size_t		i;

	if (len > AG_JWKS_MAX_BYTES)
	{
		ag_jwt_seterr(err, errlen, "JWKS of %zu bytes exceeds %d", len, AG_JWKS_MAX_BYTES);
		return NULL;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		ag_jwt_seterr(err, errlen, "JWKS is not valid JSON: %s (line %d)", jerr.text, jerr.line);
		return NULL;
	}
	keys = json_object_get(root, "keys");
	if (!json_is_object(root) || !json_is_array(keys))
	{
		ag_jwt_seterr(err, errlen, "JWKS must be an object with a \"keys\" array");
		goto fail;
	}
	if (json_array_size(keys) > AG_JWKS_MAX_KEYS)
	{
		ag_jwt_seterr(err, errlen, "JWKS has %zu keys; at most %d are allowed",
					  json_array_size(keys), AG_JWKS_MAX_KEYS);
		goto fail;
	}
	if ((ks = keyset_alloc(json_array_size(keys))) == NULL)
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		goto fail;
	}

	json_array_foreach(keys, i, jwk)
	{
		ag_jwk	   *k = &ks->keys[ks->nkeys];

		why[0] = '\0';
		switch (parse_jwk(jwk, k, why, sizeof(why)))
		{
			case JWK_OK:
				for (int j = 0; k->kid && j < ks->nkeys; j++)
					if (ks->keys[j].kid && strcmp(ks->keys[j].kid, k->kid) == 0)
					{
						ag_jwt_seterr(why, sizeof(why), "duplicate kid");
						jwk_clear(k);
						goto badkey;
					}
				ks->nkeys++;
				break;
			case JWK_SKIP:
				jwk_clear(k);
				ks->nskipped++;
				break;
			case JWK_BAD:
				jwk_clear(k);
				goto badkey;
		}
	}
	if (ks->nkeys == 0)
	{
		ag_jwt_seterr(err, errlen, "JWKS has no usable signature key (%d skipped)", ks->nskipped);
		goto fail;
	}
	json_decref(root);
	return ks;

badkey:
	{
		const char *kid = NULL;
		char		pkid[64];

		get_string(jwk, "kid", &kid, NULL);
		ag_jwt_seterr(err, errlen, "JWKS key %zu%s%s%s: %s", i,
					  kid ? " (kid \"" : "",
					  kid ? ag_jwt_printable(pkid, sizeof(pkid), kid, strlen(kid)) : "",
					  kid ? "\")" : "", why);
	}
fail:
	if (ks)
		keyset_free(ks);
	json_decref(root);
	ERR_clear_error();
	return NULL;
}

ag_keyset *
ag_keyset_load_file(const char *path, char *err, size_t errlen)
{
	int			fd;
	struct stat st;
	char	   *buf;
	ssize_t		n;
	size_t		got = 0;
	ag_keyset  *ks;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
	{
		ag_jwt_seterr(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > AG_JWKS_MAX_BYTES)
	{
		ag_jwt_seterr(err, errlen, "\"%s\" is not a regular file of at most %d bytes",
					  path, AG_JWKS_MAX_BYTES);
		close(fd);
		return NULL;
	}
	/* read to EOF with the cap, in case the file grows meanwhile */
	if ((buf = malloc(AG_JWKS_MAX_BYTES + 1)) == NULL)
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	while (got <= AG_JWKS_MAX_BYTES &&
		   (n = read(fd, buf + got, AG_JWKS_MAX_BYTES + 1 - got)) != 0)
	{
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			ag_jwt_seterr(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		got += (size_t) n;
	}
	close(fd);
	ks = ag_keyset_parse(buf, got, err, errlen);
	free(buf);
	if (ks == NULL)
	{
		char		why[AG_JWT_ERRLEN];

		snprintf(why, sizeof(why), "%s", err);
		ag_jwt_seterr(err, errlen, "%s: %s", path, why);
	}
	return ks;
}

ag_keyset *
ag_keyset_ref(ag_keyset *ks)
{
	if (ks)
		atomic_fetch_add_explicit(&ks->refcount, 1, memory_order_relaxed);
	return ks;
}

void
ag_keyset_unref(ag_keyset *ks)
{
	if (ks && atomic_fetch_sub_explicit(&ks->refcount, 1, memory_order_acq_rel) == 1)
		keyset_free(ks);
}

int
ag_keyset_count(const ag_keyset *ks)
{
	return ks ? ks->nkeys : 0;
}

int
ag_keyset_skipped(const ag_keyset *ks)
{
	return ks ? ks->nskipped : 0;
}

int
ag_keyset_has_kid(const ag_keyset *ks, const char *kid)
{
	for (int i = 0; ks && kid && i < ks->nkeys; i++)
		if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0)
			return 1;
	return 0;
}

/*
 * A new keyset holding the keys of a then b (either may be NULL), for a
 * key source with both a file and a jwks_uri.  Keys are shared, not
 * re-parsed.  A kid present in both is kept twice; verification tries
 * every key with the token's kid.
 */
ag_keyset *
ag_keyset_merge(const ag_keyset *a, const ag_keyset *b)
{
	int			na = a ? a->nkeys : 0,
				nb = b ? b->nkeys : 0;
	ag_keyset  *ks = keyset_alloc((size_t) (na + nb));

	if (ks == NULL)
		return NULL;
	for (int i = 0; i < na + nb; i++)
	{
		const ag_jwk *src = i < na ? &a->keys[i] : &b->keys[i - na];
		ag_jwk	   *k = &ks->keys[i];

		*k = *src;
		k->kid = NULL;
		k->pkey = NULL;
		k->secret = NULL;
		ks->nkeys++;
		if ((src->kid && (k->kid = strdup(src->kid)) == NULL) ||
			(src->secret && (k->secret = OPENSSL_memdup(src->secret, src->secretlen)) == NULL) ||
			(src->pkey && !EVP_PKEY_up_ref(src->pkey)))
		{
			keyset_free(ks);
			return NULL;
		}
		k->pkey = src->pkey;
	}
	ks->nskipped = (a ? a->nskipped : 0) + (b ? b->nskipped : 0);
	return ks;
}
