/*-------------------------------------------------------------------------
 *
 * jwt.c
 *	  JWS compact token verification and the claim policy.
 *
 * The order of the checks is the point of this file:
 *	 1. size (1..16384 bytes) and no NUL;
 *	 2. exactly three non-empty segments, each strict base64url;
 *	 3. the header: a JSON object without duplicate members, a supported
 *		alg (case-sensitive, never "none"), no "crit", an allowed "typ";
 *		"jku", "x5u", "jwk" and "x5c" are ignored, never fetched or trusted;
 *	 4. the key: the exact kid picks it, and the key decides which
 *		algorithms it may verify;
 *	 5. the signature, with its exact length for the key;
 *	 6. only then is the payload decoded and its claims checked.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "jwt_int.h"

/* Digests fetched once: fetching per call costs more than hashing a JWT. */
static EVP_MD *ag_mds[3];
static pthread_once_t ag_mds_once = PTHREAD_ONCE_INIT;

static void
fetch_mds(void)
{
	ag_mds[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	ag_mds[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	ag_mds[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
}

const EVP_MD *
ag_jwt_md(int mdidx)
{
	pthread_once(&ag_mds_once, fetch_mds);
	return mdidx >= 0 && mdidx < 3 ? ag_mds[mdidx] : NULL;
}

void
ag_jwt_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Token-supplied text made safe for a log line: printable ASCII only,
 * truncated.  Returns dst.
 */
const char *
ag_jwt_printable(char *dst, size_t dstlen, const char *s, size_t len)
{
	size_t		o = 0;

	for (size_t i = 0; i < len && o + 4 < dstlen; i++)
		dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (o + 4 >= dstlen && o < len)
	{
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

const char *
ag_jwt_status_name(ag_jwt_status st)
{
	switch (st)
	{
		case AG_JWT_OK:
			return "ok";
		case AG_JWT_MALFORMED:
			return "malformed";
		case AG_JWT_BAD_HEADER:
			return "bad header";
		case AG_JWT_NO_KEY:
			return "no key";
		case AG_JWT_BAD_SIGNATURE:
			return "bad signature";
		case AG_JWT_EXPIRED:
			return "expired";
		case AG_JWT_NOT_YET_VALID:
			return "not yet valid";
		case AG_JWT_BAD_CLAIMS:
			return "bad claims";
	}
	return "unknown";
}

/* JWS ECDSA signatures are R||S; OpenSSL wants DER. */
static bool
verify_ecdsa(EVP_MD_CTX *ctx, const ag_jwk *k, const ag_alg *a,
			 const unsigned char *msg, size_t msglen,
			 const unsigned char *sig, size_t siglen)
{
	size_t		half = siglen / 2;
	ECDSA_SIG  *esig = ECDSA_SIG_new();
	BIGNUM	   *r = BN_bin2bn(sig, (int) half, NULL);
	BIGNUM	   *s = BN_bin2bn(sig + half, (int) half, NULL);
	unsigned char *der = NULL;
	int			derlen = -1;
	bool		ok = false;

	if (esig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(esig, r, s))
	{
		r = s = NULL;			/* owned by esig now */
		derlen = i2d_ECDSA_SIG(esig, &der);
	}
	if (derlen > 0 &&
		EVP_DigestVerifyInit(ctx, NULL, ag_jwt_md(a->mdidx), NULL, k->pkey) == 1)
		ok = EVP_DigestVerify(ctx, der, (size_t) derlen, msg, msglen) == 1;
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(esig);
	return ok;
}

/*
 * Does sig verify msg under key k with algorithm a?  The caller has
 * checked that k allows a.
 */
static bool
verify_sig(const ag_jwk *k, const ag_alg *a,
		   const unsigned char *msg, size_t msglen,
		   const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx;
	EVP_PKEY_CTX *pctx = NULL;
	bool		ok = false;

	if (a->fam == AG_FAM_HS)
	{
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;

		/* belt and braces: only an oct key is ever an HMAC secret */
		if (k->kty != AG_KTY_OCT || k->secret == NULL || siglen != (size_t) a->mdlen ||
			HMAC(ag_jwt_md(a->mdidx), k->secret, (int) k->secretlen,
				 msg, msglen, mac, &maclen) == NULL)
			return false;
		return maclen == siglen && CRYPTO_memcmp(mac, sig, siglen) == 0;
	}

	/*
	 * Exact lengths: OpenSSL takes a PSS signature whose leading zero byte
	 * was stripped, and DER where JWS wants R||S; both make tokens
	 * malleable.
	 */
	if (k->pkey == NULL || siglen != k->sigsize)
		return false;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return false;

	switch (a->fam)
	{
		case AG_FAM_ES:
			ok = verify_ecdsa(ctx, k, a, msg, msglen, sig, siglen);
			break;
		case AG_FAM_ED:
			if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1)
				ok = EVP_DigestVerify(ctx, sig, siglen, msg, msglen) == 1;
			break;
		case AG_FAM_RS:
		case AG_FAM_PS:
			if (EVP_DigestVerifyInit(ctx, &pctx, ag_jwt_md(a->mdidx), NULL, k->pkey) != 1)
				break;
			if (a->fam == AG_FAM_PS &&
				(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
				 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
				break;
			ok = EVP_DigestVerify(ctx, sig, siglen, msg, msglen) == 1;
			break;
		case AG_FAM_HS:
			break;
	}
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static bool
utf8_valid(const unsigned char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t		n;
		uint32_t	cp;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (len - i <= n)
			return false;
		for (size_t j = 1; j <= n; j++)
		{
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
			(n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * A name-like claim value: 1..AG_JWT_MAX_IDENTITY bytes of valid UTF-8
 * without control characters.  PostgreSQL truncates names past 63 bytes,
 * so longer values could collide.
 */
static bool
name_ok(json_t *v)
{
	const unsigned char *s;
	size_t		len;

	if (!json_is_string(v))
		return false;
	s = (const unsigned char *) json_string_value(v);
	len = json_string_length(v);
	if (len == 0 || len > AG_JWT_MAX_IDENTITY)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return utf8_valid(s, len);
}

/* A NumericDate claim: absent is fine unless required; any JSON number. */
static bool
numeric_claim(json_t *payload, const char *name, bool required, double *out)
{
	json_t	   *v = json_object_get(payload, name);

	if (v == NULL)
		return !required;
	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return isfinite(*out);
}

static bool
aud_ok(json_t *aud, const char *want)
{
	size_t		i;
	json_t	   *v;
	bool		found = false;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud) || json_array_size(aud) == 0)
		return false;
	/* every entry must be a string, not only the matching one */
	json_array_foreach(aud, i, v)
	{
		if (!json_is_string(v))
			return false;
		if (strcmp(json_string_value(v), want) == 0)
			found = true;
	}
	return found;
}

/* strdup into list[(*n)++]; false when out of memory */
static bool
list_add(char **list, int *n, const char *s, size_t len)
{
	if ((list[*n] = malloc(len + 1)) == NULL)
		return false;
	memcpy(list[*n], s, len);
	list[*n][len] = '\0';
	(*n)++;
	return true;
}

/*
 * One scope entry: a name (as name_ok) without spaces, not seen before.
 * Adds it to out->scopes, or says in err what is wrong with entry n
 * (1-based) of the claim cname.
 */
static bool
scope_add(ag_jwt_result *out, const char *cname, const char *s, size_t len,
		  char *err, size_t errlen)
{
	json_t	   *one;
	bool		good;

	if (out->nscopes == AG_JWT_MAX_SCOPES)
	{
		ag_jwt_seterr(err, errlen, "scope claim \"%s\" has more than %d entries",
					  cname, AG_JWT_MAX_SCOPES);
		return false;
	}
	one = json_stringn(s, len);
	good = one != NULL && name_ok(one) && memchr(s, ' ', len) == NULL;
	json_decref(one);
	if (!good)
	{
		ag_jwt_seterr(err, errlen, "scope claim \"%s\" entry %d must be 1 to %d bytes of UTF-8 without spaces or control characters (one space between the entries of a string)",
					  cname, out->nscopes + 1, AG_JWT_MAX_IDENTITY);
		return false;
	}
	for (int k = 0; k < out->nscopes; k++)
		if (strlen(out->scopes[k]) == len && memcmp(out->scopes[k], s, len) == 0)
		{
			ag_jwt_seterr(err, errlen, "scope claim \"%s\" names an entry twice", cname);
			return false;
		}
	if (!list_add(out->scopes, &out->nscopes, s, len))
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		return false;
	}
	return true;
}

/*
 * The scopes of a token, from the claim the policy names (scope_claim).
 *
 * "scope" itself is a string of space-separated names (RFC 8693 section
 * 4.2, RFC 9068): no empty entries (no leading, trailing or double
 * spaces).  Another claim name is how IdPs that do not follow it are
 * read: Okta's "scp" is an array of strings, Entra ID's "scp" a
 * space-separated string, so such a claim may be either; an array entry
 * may not contain a space, because the entries travel on as one
 * space-separated string.  Either way: names, at most AG_JWT_MAX_SCOPES,
 * no duplicates, and an empty claim is refused rather than read as "no
 * restriction" or as "no rights".
 *
 * With another claim configured a token that also carries "scope" is
 * refused: which of the two narrows the session would be a guess, and the
 * server reads "scope".  The scopes are then written into the payload as
 * the standard "scope" string (rewrite_scope), so that the claims the
 * server gets say the same as the token, in the one form it reads.
 */
static ag_jwt_status
check_scope(json_t *payload, const char *cname, ag_jwt_result *out,
			char *err, size_t errlen)
{
	json_t	   *scope = json_object_get(payload, cname);
	bool		standard = strcmp(cname, "scope") == 0;

	if (!standard && json_object_get(payload, "scope") != NULL)
	{
		if (scope != NULL)
			ag_jwt_seterr(err, errlen, "the token carries both \"scope\" and the configured scope claim \"%s\": ambiguous, refused",
						  cname);
		else
			ag_jwt_seterr(err, errlen, "the token carries \"scope\", not the configured scope claim \"%s\": refused rather than guess which narrows the session",
						  cname);
		return AG_JWT_BAD_CLAIMS;
	}
	if (scope == NULL)
		return AG_JWT_OK;
	if ((out->scopes = calloc(AG_JWT_MAX_SCOPES, sizeof(char *))) == NULL)
	{
		ag_jwt_seterr(err, errlen, "out of memory");
		return AG_JWT_BAD_CLAIMS;
	}
	if (json_is_string(scope))
	{
		const char *s = json_string_value(scope);
		size_t		len = json_string_length(scope),
					start = 0;

		for (size_t i = 0; i <= len; i++)
		{
			if (i < len && s[i] != ' ')
				continue;
			if (!scope_add(out, cname, s + start, i - start, err, errlen))
				return AG_JWT_BAD_CLAIMS;
			start = i + 1;
		}
	}
	else if (!standard && json_is_array(scope) && json_array_size(scope) > 0)
	{
		size_t		i;
		json_t	   *v;

		json_array_foreach(scope, i, v)
		{
			if (!json_is_string(v))
			{
				ag_jwt_seterr(err, errlen, "scope claim \"%s\" entry %zu must be a string",
							  cname, i + 1);
				return AG_JWT_BAD_CLAIMS;
			}
			if (!scope_add(out, cname, json_string_value(v), json_string_length(v),
						   err, errlen))
				return AG_JWT_BAD_CLAIMS;
		}
	}
	else
	{
		if (standard)
			ag_jwt_seterr(err, errlen, "claim \"scope\" must be a string");
		else
			ag_jwt_seterr(err, errlen, "scope claim \"%s\" must be a string or a non-empty array of strings",
						  cname);
		return AG_JWT_BAD_CLAIMS;
	}
	return AG_JWT_OK;
}

/* Set the payload's "scope" to out's scopes joined by single spaces. */
static bool
rewrite_scope(json_t *payload, const ag_jwt_result *out)
{
	char		buf[AG_JWT_MAX_SCOPES * (AG_JWT_MAX_IDENTITY + 1)];
	size_t		o = 0;

	for (int i = 0; i < out->nscopes; i++)
	{
		size_t		len = strlen(out->scopes[i]);

		if (i > 0)
			buf[o++] = ' ';
		memcpy(buf + o, out->scopes[i], len);
		o += len;
	}
	return json_object_set_new(payload, "scope", json_stringn(buf, o)) == 0;
}

/*
 * Delegation.  An "act" claim (RFC 8693 section 4.1) names the current
 * actor in its "sub" and, in a nested "act", the actor before it, and so
 * on.  Every level must be an object whose "sub" is a name like the
 * identity; other members of a level (iss, client_id...) are allowed but
 * must not be containers, so that a level cannot hide a chain of its own.
 * The whole chain is kept, current actor first, principal last; it is at
 * most AG_JWT_MAX_CHAIN long, and an identity may not appear twice in it
 * (a loop would make revocation reasoning and the audit log ambiguous).
 */
static ag_jwt_status
check_delegation(json_t *payload, const char *idname, ag_jwt_result *out,
				 char *err, size_t errlen)
{
	json_t	   *act = json_object_get(payload, "act");

	if (act != NULL)
	{
		char	   *tmp[AG_JWT_MAX_CHAIN];
		int			n = 0;

		if (strcmp(idname, "sub") != 0 &&
			!name_ok(json_object_get(payload, "sub")))
		{
			ag_jwt_seterr(err, errlen, "a delegated token needs \"sub\", the principal, as a name");
			return AG_JWT_BAD_CLAIMS;
		}
		while (act != NULL)
		{
			const char *key;
			json_t	   *m;
			json_t	   *sub;

			if (!json_is_object(act))
			{
				ag_jwt_seterr(err, errlen, "claim \"act\" must be an object at depth %d", n + 1);
				goto bad;
			}
			sub = json_object_get(act, "sub");
			if (!name_ok(sub))
			{
				ag_jwt_seterr(err, errlen, "claim \"act\" at depth %d needs \"sub\" as a string of 1 to %d bytes of UTF-8 without control characters",
							  n + 1, AG_JWT_MAX_IDENTITY);
				goto bad;
			}
			json_object_foreach(act, key, m)
			{
				if (strcmp(key, "act") != 0 && (json_is_object(m) || json_is_array(m)))
				{
					ag_jwt_seterr(err, errlen, "claim \"act\" at depth %d has a nested member other than \"act\"", n + 1);
					goto bad;
				}
			}
			if (n == AG_JWT_MAX_CHAIN - 1)
			{
				ag_jwt_seterr(err, errlen, "delegation chain longer than %d identities", AG_JWT_MAX_CHAIN);
				goto bad;
			}
			tmp[n++] = (char *) json_string_value(sub);
			act = json_object_get(act, "act");
		}
		tmp[n++] = (char *) json_string_value(json_object_get(payload, "sub"));
		for (int a = 0; a < n; a++)
			for (int b = a + 1; b < n; b++)
				if (strcmp(tmp[a], tmp[b]) == 0)
				{
					ag_jwt_seterr(err, errlen, "delegation chain names an identity twice");
					goto bad;
				}
		if ((out->chain = calloc((size_t) n, sizeof(char *))) == NULL)
			goto oom;
		for (int a = 0; a < n; a++)
			if (!list_add(out->chain, &out->nchain, tmp[a], strlen(tmp[a])))
				goto oom;
	}

	return AG_JWT_OK;

oom:
	ag_jwt_seterr(err, errlen, "out of memory");
bad:
	return AG_JWT_BAD_CLAIMS;
}

static ag_jwt_status
check_claims(json_t *payload, const ag_jwt_policy *pol, time_t now,
			 ag_jwt_result *out, char *err, size_t errlen)
{
	const char *idname = pol->identity_claim ? pol->identity_claim : "sub";
	const char *grname = pol->groups_claim ? pol->groups_claim : "groups";
	const char *scname = pol->scope_claim ? pol->scope_claim : "scope";
	double		leeway = pol->leeway > 0 ? pol->leeway : 0;
	double		exp = 0,
				nbf = 0,
				iat = 0;
	json_t	   *v,
			   *groups;
	size_t		i;
	ag_jwt_status st;

	if (!numeric_claim(payload, "exp", true, &exp))
	{
		ag_jwt_seterr(err, errlen, "claim \"exp\" missing or not a number");
		return AG_JWT_BAD_CLAIMS;
	}
	nbf = iat = (double) now;
	if (!numeric_claim(payload, "nbf", false, &nbf) ||
		!numeric_claim(payload, "iat", false, &iat))
	{
		ag_jwt_seterr(err, errlen, "claims \"nbf\" and \"iat\" must be numbers");
		return AG_JWT_BAD_CLAIMS;
	}
	if (!(exp > (double) now - leeway))
	{
		ag_jwt_seterr(err, errlen, "token expired at %.0f (now %lld)", exp, (long long) now);
		return AG_JWT_EXPIRED;
	}
	if (nbf > (double) now + leeway)
	{
		ag_jwt_seterr(err, errlen, "token not valid before %.0f (now %lld)", nbf, (long long) now);
		return AG_JWT_NOT_YET_VALID;
	}
	if (iat > (double) now + leeway)
	{
		ag_jwt_seterr(err, errlen, "token issued in the future at %.0f (now %lld)", iat, (long long) now);
		return AG_JWT_NOT_YET_VALID;
	}

	v = json_object_get(payload, "iss");
	if (!json_is_string(v) || strcmp(json_string_value(v), pol->issuer) != 0)
	{
		ag_jwt_seterr(err, errlen, "claim \"iss\" missing or not the configured issuer");
		return AG_JWT_BAD_CLAIMS;
	}
	if (!aud_ok(json_object_get(payload, "aud"), pol->audience))
	{
		ag_jwt_seterr(err, errlen, "claim \"aud\" missing or does not hold the configured audience");
		return AG_JWT_BAD_CLAIMS;
	}

	v = json_object_get(payload, idname);
	if (!name_ok(v))
	{
		ag_jwt_seterr(err, errlen, "identity claim \"%s\" must be a string of 1 to %d bytes of UTF-8 without control characters",
					  idname, AG_JWT_MAX_IDENTITY);
		return AG_JWT_BAD_CLAIMS;
	}
	memcpy(out->identity, json_string_value(v), json_string_length(v) + 1);

	groups = json_object_get(payload, grname);
	if (groups != NULL)
	{
		if (!json_is_array(groups) || json_array_size(groups) > AG_JWT_MAX_GROUPS)
		{
			ag_jwt_seterr(err, errlen, "groups claim \"%s\" must be an array of at most %d strings",
						  grname, AG_JWT_MAX_GROUPS);
			return AG_JWT_BAD_CLAIMS;
		}
		json_array_foreach(groups, i, v)
			if (!name_ok(v))
		{
			ag_jwt_seterr(err, errlen, "groups claim \"%s\" entry %zu must be a string of 1 to %d bytes of UTF-8 without control characters",
						  grname, i, AG_JWT_MAX_IDENTITY);
			return AG_JWT_BAD_CLAIMS;
		}
		if (json_array_size(groups) > 0 &&
			(out->groups = calloc(json_array_size(groups), sizeof(char *))) == NULL)
			goto oom;
		json_array_foreach(groups, i, v)
		{
			if ((out->groups[i] = strdup(json_string_value(v))) == NULL)
				goto oom;
			out->ngroups++;
		}
	}

	if ((st = check_delegation(payload, idname, out, err, errlen)) != AG_JWT_OK ||
		(st = check_scope(payload, scname, out, err, errlen)) != AG_JWT_OK)
		return st;
	if (out->nscopes > 0 && !json_is_string(json_object_get(payload, "scope")) &&
		!rewrite_scope(payload, out))
		goto oom;

	if (exp >= 9.2e18)
		out->exp = INT64_MAX;
	else if (exp <= -9.2e18)
		out->exp = INT64_MIN;
	else
	{
		out->exp = (int64_t) exp;
		if ((double) out->exp > exp)
			out->exp--;			/* floor, without libm */
	}
	if ((out->claims_json = json_dumps(payload, JSON_COMPACT)) == NULL)
		goto oom;
	return AG_JWT_OK;

oom:
	ag_jwt_seterr(err, errlen, "out of memory");
	return AG_JWT_BAD_CLAIMS;
}

/* Parse decoded JSON that must be an object without duplicate members. */
static json_t *
parse_object(const unsigned char *buf, size_t len, const char *what,
			 char *err, size_t errlen)
{
	json_error_t jerr;
	json_t	   *obj = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &jerr);

	if (obj == NULL || !json_is_object(obj))
	{
		ag_jwt_seterr(err, errlen, "%s is not a JSON object%s%s", what,
					  obj ? "" : ": ", obj ? "" : jerr.text);
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Header checks; returns the alg or NULL with err set. */
static const ag_alg *
check_header(json_t *hdr, const char **kid, char *err, size_t errlen)
{
	json_t	   *v;
	const ag_alg *alg;
	const char *s;
	char		p[48];

	v = json_object_get(hdr, "alg");
	if (!json_is_string(v))
	{
		ag_jwt_seterr(err, errlen, "header \"alg\" missing or not a string");
		return NULL;
	}
	s = json_string_value(v);
	if ((alg = ag_alg_lookup(s)) == NULL)
	{
		if (strcasecmp(s, "none") == 0)
			ag_jwt_seterr(err, errlen, "unsigned tokens (alg \"%s\") are refused",
						  ag_jwt_printable(p, sizeof(p), s, strlen(s)));
		else
			ag_jwt_seterr(err, errlen, "unsupported alg \"%s\"",
						  ag_jwt_printable(p, sizeof(p), s, strlen(s)));
		return NULL;
	}
	if (json_object_get(hdr, "crit") != NULL)
	{
		ag_jwt_seterr(err, errlen, "header \"crit\" is not supported");
		return NULL;
	}
	v = json_object_get(hdr, "typ");
	if (v != NULL && (!json_is_string(v) ||
					  (strcmp(json_string_value(v), "JWT") != 0 &&
					   strcmp(json_string_value(v), "at+jwt") != 0)))
	{
		ag_jwt_seterr(err, errlen, "header \"typ\" must be \"JWT\" or \"at+jwt\"");
		return NULL;
	}
	v = json_object_get(hdr, "kid");
	*kid = NULL;
	if (v != NULL)
	{
		if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)))
		{
			ag_jwt_seterr(err, errlen, "header \"kid\" must be a string");
			return NULL;
		}
		*kid = json_string_value(v);
	}
	return alg;
}

ag_jwt_status
ag_jwt_verify(const ag_keyset *ks, const char *token, size_t len,
			  const ag_jwt_policy *policy, time_t now,
			  ag_jwt_result *out, char *err, size_t errlen)
{
	/* decoded header, signature and payload together stay under 3/4 len */
	unsigned char buf[AG_JWT_MAX_TOKEN];
	const char *dot1,
			   *dot2,
			   *seg[3];
	size_t		seglen[3],
				hlen,
				slen,
				plen;
	unsigned char *hbuf,
			   *sbuf,
			   *pbuf;
	json_t	   *hdr = NULL,
			   *payload = NULL;
	const ag_alg *alg;
	const char *kid;
	const ag_jwk *key = NULL;
	int			tried = 0;
	ag_jwt_status st;
	char		p[48];

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (ks == NULL || policy == NULL || policy->issuer == NULL || policy->audience == NULL)
	{
		ag_jwt_seterr(err, errlen, "no keys, issuer or audience configured");
		return AG_JWT_NO_KEY;
	}

	/* 1, 2: shape */
	if (token == NULL || len == 0 || len > AG_JWT_MAX_TOKEN)
	{
		ag_jwt_seterr(err, errlen, "token must be 1 to %d bytes", AG_JWT_MAX_TOKEN);
		return AG_JWT_MALFORMED;
	}
	if (memchr(token, '\0', len) != NULL)
	{
		ag_jwt_seterr(err, errlen, "token contains a NUL byte");
		return AG_JWT_MALFORMED;
	}
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t) (dot2 + 1 - token)) != NULL)
	{
		ag_jwt_seterr(err, errlen, "token must have exactly three segments");
		return AG_JWT_MALFORMED;
	}
	seg[0] = token;
	seglen[0] = (size_t) (dot1 - token);
	seg[1] = dot1 + 1;
	seglen[1] = (size_t) (dot2 - seg[1]);
	seg[2] = dot2 + 1;
	seglen[2] = len - (size_t) (seg[2] - token);
	if (seglen[0] == 0 || seglen[1] == 0 || seglen[2] == 0)
	{
		ag_jwt_seterr(err, errlen, "token has an empty segment");
		return AG_JWT_MALFORMED;
	}

	hbuf = buf;
	if (!ag_b64url_decode(seg[0], seglen[0], hbuf, sizeof(buf), &hlen))
	{
		ag_jwt_seterr(err, errlen, "header is not canonical base64url");
		return AG_JWT_MALFORMED;
	}
	sbuf = hbuf + hlen;
	if (!ag_b64url_decode(seg[2], seglen[2], sbuf, sizeof(buf) - hlen, &slen))
	{
		ag_jwt_seterr(err, errlen, "signature is not canonical base64url");
		return AG_JWT_MALFORMED;
	}
	pbuf = sbuf + slen;

	/* 3: header */
	if ((hdr = parse_object(hbuf, hlen, "header", err, errlen)) == NULL)
		return AG_JWT_MALFORMED;
	if ((alg = check_header(hdr, &kid, err, errlen)) == NULL)
	{
		st = AG_JWT_BAD_HEADER;
		goto done;
	}

	/* 4, 5: the key decides; try each key the kid (or its absence) allows */
	for (int i = 0; i < ks->nkeys && key == NULL; i++)
	{
		const ag_jwk *k = &ks->keys[i];

		if (kid != NULL && (k->kid == NULL || strcmp(k->kid, kid) != 0))
			continue;
		if (!ag_jwk_allows(k, alg))
			continue;
		tried++;
		if (verify_sig(k, alg, (const unsigned char *) token,
					   seglen[0] + 1 + seglen[1], sbuf, slen))
			key = k;
		else
			ERR_clear_error();
	}
	if (tried == 0)
	{
		if (kid != NULL && ag_keyset_has_kid(ks, kid))
			ag_jwt_seterr(err, errlen, "key \"%s\" does not allow alg %s",
						  ag_jwt_printable(p, sizeof(p), kid, strlen(kid)), alg->name);
		else if (kid != NULL)
			ag_jwt_seterr(err, errlen, "unknown kid \"%s\"",
						  ag_jwt_printable(p, sizeof(p), kid, strlen(kid)));
		else
			ag_jwt_seterr(err, errlen, "no key for alg %s", alg->name);
		st = AG_JWT_NO_KEY;
		goto done;
	}
	if (key == NULL)
	{
		ag_jwt_seterr(err, errlen, "signature does not verify (%s)", alg->name);
		st = AG_JWT_BAD_SIGNATURE;
		goto done;
	}

	/* 6: claims, from an authenticated payload */
	if (!ag_b64url_decode(seg[1], seglen[1], pbuf, sizeof(buf) - hlen - slen, &plen))
	{
		ag_jwt_seterr(err, errlen, "payload is not canonical base64url");
		st = AG_JWT_MALFORMED;
		goto done;
	}
	if ((payload = parse_object(pbuf, plen, "payload", err, errlen)) == NULL)
	{
		st = AG_JWT_MALFORMED;
		goto done;
	}
	st = check_claims(payload, policy, now, out, err, errlen);
	if (st == AG_JWT_OK)
	{
		if (key->kid)
			snprintf(out->kid, sizeof(out->kid), "%s", key->kid);
		snprintf(out->alg, sizeof(out->alg), "%s", alg->name);
	}
	else
		ag_jwt_result_free(out);

done:
	json_decref(hdr);
	json_decref(payload);
	return st;
}

int
ag_jwt_peek_kid(const char *token, size_t len, char *kid, size_t kidlen)
{
	unsigned char buf[AG_JWT_MAX_TOKEN];
	const char *dot = token && len <= AG_JWT_MAX_TOKEN ? memchr(token, '.', len) : NULL;
	size_t		hlen;
	json_t	   *hdr,
			   *v;
	int			found = 0;

	if (dot == NULL || kidlen == 0 ||
		!ag_b64url_decode(token, (size_t) (dot - token), buf, sizeof(buf), &hlen) ||
		(hdr = json_loadb((const char *) buf, hlen, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return 0;
	v = json_object_get(hdr, "kid");
	if (json_is_string(v) && json_string_length(v) < kidlen &&
		json_string_length(v) == strlen(json_string_value(v)))
	{
		memcpy(kid, json_string_value(v), json_string_length(v) + 1);
		found = 1;
	}
	json_decref(hdr);
	return found;
}

void
ag_jwt_result_free(ag_jwt_result *res)
{
	if (res == NULL)
		return;
	for (int i = 0; i < res->ngroups; i++)
		free(res->groups[i]);
	free(res->groups);
	for (int i = 0; i < res->nchain; i++)
		free(res->chain[i]);
	free(res->chain);
	for (int i = 0; i < res->nscopes; i++)
		free(res->scopes[i]);
	free(res->scopes);
	free(res->claims_json);
	memset(res, 0, sizeof(*res));
}
