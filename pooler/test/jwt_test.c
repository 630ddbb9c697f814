/*
 * jwt_test.c
 *	  Unit tests of the JWT verifier (b64url.c, jwks.c, jwt.c).
 *
 * Self-contained: keys are generated in-process with OpenSSL, JWKS
 * documents and tokens are built here, including malformed ones, with a
 * raw builder that signs arbitrary header and payload bytes.  The
 * base64url encoder below is independent of the library's.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ag_jwt.h"
#include "ag_test.h"
#include "../src/jwt_int.h"		/* the b64url functions, tested directly */

#define NOW			1700000000
#define ISS			"https://idp.example.com"
#define AUD			"agentgate"
/* iss, aud and a valid exp, for payloads that set the rest themselves */
#define BASE		"\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000300"
#define STD			"{" BASE ",\"sub\":\"agent-7\",\"iat\":1700000000}"



/* ---- base64url, written independently of b64url.c ---- */

static char *
b64(const unsigned char *in, size_t len)
{
	char	   *out = malloc(len / 3 * 4 + 8);
	int			n = EVP_EncodeBlock((unsigned char *) out, in, (int) len);

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

static char *
b64s(const char *s)
{
	return b64((const unsigned char *) s, strlen(s));
}

/* ---- keys ---- */

typedef struct tkey
{
	EVP_PKEY   *pk;				/* asymmetric */
	unsigned char sec[128];		/* HMAC secret */
	size_t		seclen;
} tkey;

static tkey rsa1,				/* kid rsa1, alg RS256 */
			rsa2,				/* kid rsa2, no alg: RS* and PS* */
			ec256,
			ec384,
			ec521,
			ed1,
			hs32,				/* kid hs1, HS256 */
			hs64,				/* kid hs64, no alg */
			attacker;			/* not in the keyset */

static EVP_PKEY *
keygen(const char *type, const char *crv, size_t bits)
{
	EVP_PKEY   *pk;

	if (crv)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, type, crv);
	else if (bits)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, type, bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, type);
	if (pk == NULL)
	{
		fprintf(stderr, "keygen %s failed\n", type);
		exit(2);
	}
	return pk;
}

static char *
bn_b64(EVP_PKEY *pk, const char *param, int pad)
{
	BIGNUM	   *bn = NULL;
	unsigned char buf[2048];
	int			n;
	char	   *s;

	EVP_PKEY_get_bn_param(pk, param, &bn);
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	s = b64(buf, (size_t) n);
	BN_free(bn);
	return s;
}

/* A JWK for a test key; alg and kid may be NULL. */
static json_t *
jwk(tkey *k, const char *kid, const char *alg)
{
	json_t	   *o = json_object();
	char	   *a = NULL,
			   *b = NULL;

	if (k->pk == NULL)
	{
		json_object_set_new(o, "kty", json_string("oct"));
		json_object_set_new(o, "k", json_string(a = b64(k->sec, k->seclen)));
	}
	else if (EVP_PKEY_is_a(k->pk, "RSA"))
	{
		json_object_set_new(o, "kty", json_string("RSA"));
		json_object_set_new(o, "n", json_string(a = bn_b64(k->pk, OSSL_PKEY_PARAM_RSA_N, 0)));
		json_object_set_new(o, "e", json_string(b = bn_b64(k->pk, OSSL_PKEY_PARAM_RSA_E, 0)));
	}
	else if (EVP_PKEY_is_a(k->pk, "EC"))
	{
		char		grp[32];
		int			bits = EVP_PKEY_get_bits(k->pk);
		int			coord = (bits + 7) / 8;

		EVP_PKEY_get_utf8_string_param(k->pk, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp), NULL);
		json_object_set_new(o, "kty", json_string("EC"));
		json_object_set_new(o, "crv", json_string(bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521"));
		json_object_set_new(o, "x", json_string(a = bn_b64(k->pk, OSSL_PKEY_PARAM_EC_PUB_X, coord)));
		json_object_set_new(o, "y", json_string(b = bn_b64(k->pk, OSSL_PKEY_PARAM_EC_PUB_Y, coord)));
	}
	else
	{
		unsigned char raw[32];
		size_t		rawlen = sizeof(raw);

		EVP_PKEY_get_raw_public_key(k->pk, raw, &rawlen);
		json_object_set_new(o, "kty", json_string("OKP"));
		json_object_set_new(o, "crv", json_string("Ed25519"));
		json_object_set_new(o, "x", json_string(a = b64(raw, rawlen)));
	}
	if (kid)
		json_object_set_new(o, "kid", json_string(kid));
	if (alg)
		json_object_set_new(o, "alg", json_string(alg));
	free(a);
	free(b);
	return o;
}

/* A JWKS text from NULL-terminated JWKs (references stolen). */
static char *
jwks_of(json_t *first,...)
{
	json_t	   *keys = json_array(),
			   *k;
	va_list		ap;
	char	   *s;

	va_start(ap, first);
	for (k = first; k; k = va_arg(ap, json_t *))
		json_array_append_new(keys, k);
	va_end(ap);
	k = json_pack("{s:o}", "keys", keys);
	s = json_dumps(k, JSON_COMPACT);
	json_decref(k);
	return s;
}

/* ---- raw token builder ---- */

/* Sign input with alg; der keeps ECDSA signatures in DER. */
static size_t
sign(tkey *k, const char *alg, const char *input, size_t len,
	 unsigned char *sig, int der)
{
	const EVP_MD *md = strstr(alg, "384") ? EVP_sha384() :
		strstr(alg, "512") ? EVP_sha512() : EVP_sha256();
	EVP_MD_CTX *ctx;
	EVP_PKEY_CTX *pctx;
	size_t		siglen = 2048;

	if (alg[0] == 'H')
	{
		unsigned int n = 0;

		HMAC(md, k->sec, (int) k->seclen, (const unsigned char *) input, len, sig, &n);
		return n;
	}
	ctx = EVP_MD_CTX_new();
	if (strcmp(alg, "EdDSA") == 0)
		md = NULL;
	EVP_DigestSignInit(ctx, &pctx, md, NULL, k->pk);
	if (alg[0] == 'P')
	{
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
	}
	if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *) input, len) != 1)
	{
		fprintf(stderr, "sign %s failed\n", alg);
		exit(2);
	}
	EVP_MD_CTX_free(ctx);
	if (alg[0] == 'E' && alg[1] == 'S' && !der)
	{
		const unsigned char *p = sig;
		ECDSA_SIG  *es = d2i_ECDSA_SIG(NULL, &p, (long) siglen);
		int			coord = (EVP_PKEY_get_bits(k->pk) + 7) / 8;

		BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, coord);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + coord, coord);
		ECDSA_SIG_free(es);
		siglen = 2 * (size_t) coord;
	}
	return siglen;
}

/* header.payload from segments that are already encoded. */
static char *
signing_input(const char *h64, const char *p64)
{
	char	   *s = malloc(strlen(h64) + strlen(p64) + 2);

	sprintf(s, "%s.%s", h64, p64);
	return s;
}

static char *
join3(const char *a, const char *b)
{
	char	   *s = malloc(strlen(a) + strlen(b) + 2);

	sprintf(s, "%s.%s", a, b);
	return s;
}

/* Token over encoded segments; the signature covers exactly them. */
static char *
tok_seg(const char *h64, const char *p64, tkey *k, const char *alg)
{
	char	   *in = signing_input(h64, p64);
	unsigned char sig[2048];
	size_t		n = sign(k, alg, in, strlen(in), sig, 0);
	char	   *s64 = b64(sig, n);
	char	   *t = join3(in, s64);

	free(in);
	free(s64);
	return t;
}

/* Token over raw header and payload JSON text. */
static char *
tok(const char *hdr, const char *pay, tkey *k, const char *alg)
{
	char	   *h = b64s(hdr),
			   *p = b64s(pay),
			   *t = tok_seg(h, p, k, alg);

	free(h);
	free(p);
	return t;
}

/* An HS256 token over header and the standard payload, with any key bytes. */
static char *
tok_hmac(const char *header, const void *key, size_t keylen)
{
	char	   *h = b64s(header),
			   *p = b64s(STD),
			   *in = signing_input(h, p),
			   *m64,
			   *t;
	unsigned char mac[32];
	unsigned int maclen;

	HMAC(EVP_sha256(), key, (int) keylen, (unsigned char *) in, strlen(in), mac, &maclen);
	m64 = b64(mac, maclen);
	t = join3(in, m64);
	free(h);
	free(p);
	free(in);
	free(m64);
	return t;
}

/* Standard header for alg and kid. */
static char *
hdr(const char *alg, const char *kid)
{
	static char buf[8192];

	if (kid)
		snprintf(buf, sizeof(buf), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
	else
		snprintf(buf, sizeof(buf), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
	return buf;
}

/* ---- verification helpers ---- */

static ag_keyset *ks;
static ag_jwt_policy policy = {ISS, AUD, AG_JWT_DEFAULT_LEEWAY, NULL, NULL, NULL};

static ag_jwt_status
verify_len(const char *t, size_t len, ag_jwt_result *res, char *err)
{
	return ag_jwt_verify(ks, t, len, &policy, NOW, res, err, AG_JWT_ERRLEN);
}

/* Verify t and expect status want; frees t. */
static void
expect(const char *name, char *t, ag_jwt_status want)
{
	ag_jwt_result res;
	char		err[AG_JWT_ERRLEN];
	ag_jwt_status st = verify_len(t, strlen(t), &res, err);

	ok(st == want, "%s: got %s (%s), want %s", name, ag_jwt_status_name(st), err,
	   ag_jwt_status_name(want));
	ok(st == AG_JWT_OK || (res.claims_json == NULL && res.ngroups == 0 && res.identity[0] == '\0'),
	   "%s: result left filled on failure", name);
	ag_jwt_result_free(&res);
	free(t);
}

/* ---- tests ---- */

/*
 * Strict base64url: every byte string has exactly one accepted encoding.
 * Checked exhaustively for 2-byte inputs (all 65536 strings, 256 accepted)
 * and for 3-character strings over the alphabet (65536 of 262144).
 */
static void
test_b64url(void)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char out[64],
				in[48];
	char		s[4],
				enc[80];
	size_t		n;
	long		accepted = 0;
	int			seen[256] = {0},
				dup = 0,
				mismatch = 0;

	for (int a = 0; a < 256; a++)
		for (int b = 0; b < 256; b++)
		{
			s[0] = (char) a;
			s[1] = (char) b;
			if (ag_b64url_decode(s, 2, out, sizeof(out), &n))
			{
				accepted++;
				if (n != 1 || seen[out[0]]++)
					dup++;
			}
		}
	ok(accepted == 256 && dup == 0, "2-char strings: %ld accepted, %d duplicates", accepted, dup);

	accepted = 0;
	for (int a = 0; a < 64; a++)
		for (int b = 0; b < 64; b++)
			for (int c = 0; c < 64; c++)
			{
				s[0] = alpha[a];
				s[1] = alpha[b];
				s[2] = alpha[c];
				if (ag_b64url_decode(s, 3, out, sizeof(out), &n))
					accepted++;
			}
	ok(accepted == 65536, "3-char strings: %ld accepted", accepted);

	/* round trips against the independent encoder, every length to 48 */
	for (size_t len = 0; len <= sizeof(in); len++)
	{
		char	   *ref;

		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char) (i * 37 + len * 11);
		ref = b64(in, len);
		ag_b64url_encode(in, len, enc);
		if (strcmp(ref, enc) != 0 ||
			strlen(enc) != AG_B64URL_ENCODED_LEN(len) ||
			!ag_b64url_decode(ref, strlen(ref), out, sizeof(out), &n) ||
			n != len || memcmp(out, in, len) != 0)
			mismatch++;
		free(ref);
	}
	ok(mismatch == 0, "b64url round trips: %d mismatches", mismatch);
	ok(!ag_b64url_decode("AAAAA", 5, out, sizeof(out), &n), "4n+1 length refused");
	ok(!ag_b64url_decode("AAAA", 4, out, 2, &n), "output capacity respected");
	ok(!ag_b64url_decode("AA==", 4, out, sizeof(out), &n), "padding refused");
	ok(!ag_b64url_decode("A+/A", 4, out, sizeof(out), &n), "standard alphabet refused");
	ok(ag_b64url_decode("", 0, out, sizeof(out), &n) && n == 0, "empty decodes to empty");
}

static void
test_valid_algorithms(void)
{
	static const struct
	{
		const char *alg;
		tkey	   *key;
		const char *kid;
	}			cases[] = {
		{"RS256", &rsa1, "rsa1"}, {"RS384", &rsa2, "rsa2"}, {"RS512", &rsa2, "rsa2"},
		{"PS256", &rsa2, "rsa2"}, {"PS384", &rsa2, "rsa2"}, {"PS512", &rsa2, "rsa2"},
		{"ES256", &ec256, "ec256"}, {"ES384", &ec384, "ec384"}, {"ES512", &ec521, "ec521"},
		{"EdDSA", &ed1, "ed1"}, {"HS256", &hs32, "hs1"}, {"HS384", &hs64, "hs64"},
		{"HS512", &hs64, "hs64"},
		/* no kid: every compatible key is tried */
		{"RS256", &rsa2, NULL}, {"ES256", &ec256, NULL}, {"HS256", &hs64, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char	   *t = tok(hdr(cases[i].alg, cases[i].kid), STD, cases[i].key, cases[i].alg);
		ag_jwt_result res;
		char		err[AG_JWT_ERRLEN];
		ag_jwt_status st = verify_len(t, strlen(t), &res, err);

		ok(st == AG_JWT_OK, "valid %s kid %s: %s", cases[i].alg, cases[i].kid ? cases[i].kid : "-", err);
		if (st == AG_JWT_OK)
		{
			ok(strcmp(res.identity, "agent-7") == 0, "%s identity", cases[i].alg);
			ok(strcmp(res.alg, cases[i].alg) == 0, "%s alg %s", cases[i].alg, res.alg);
			ok(!cases[i].kid || strcmp(res.kid, cases[i].kid) == 0, "%s kid %s", cases[i].alg, res.kid);
			ok(res.exp == 1700000300, "%s exp", cases[i].alg);
			ok(res.ngroups == 0 && res.groups == NULL, "%s no groups", cases[i].alg);
			ok(res.claims_json && strstr(res.claims_json, "\"sub\":\"agent-7\""), "%s claims_json", cases[i].alg);
		}
		ag_jwt_result_free(&res);
		free(t);
	}
}

/*
 * Verify pay (signed with hs1) with scope_claim cname; 1 if the scopes are
 * exactly want (space-separated), the claims carry them as the standard
 * "scope" string, and the original claim is kept.
 */
static int
scopes_are(const char *cname, const char *pay, const char *want, char *err)
{
	ag_jwt_result res;
	char	   *t = tok(hdr("HS256", "hs1"), pay, &hs32, "HS256");
	char		joined[AG_JWT_MAX_SCOPES * (AG_JWT_MAX_IDENTITY + 1)] = "";
	json_t	   *claims = NULL;
	int			good = 0;

	policy.scope_claim = cname;
	if (verify_len(t, strlen(t), &res, err) == AG_JWT_OK)
	{
		for (int i = 0; i < res.nscopes; i++)
		{
			if (i > 0)
				strcat(joined, " ");
			strcat(joined, res.scopes[i]);
		}
		claims = json_loads(res.claims_json, 0, NULL);
		good = strcmp(joined, want) == 0 &&
			json_is_string(json_object_get(claims, "scope")) &&
			strcmp(json_string_value(json_object_get(claims, "scope")), want) == 0 &&
			json_object_get(claims, cname) != NULL;
		if (!good)
			snprintf(err, AG_JWT_ERRLEN, "scopes \"%s\", claims %s", joined, res.claims_json);
	}
	policy.scope_claim = NULL;
	json_decref(claims);
	ag_jwt_result_free(&res);
	free(t);
	return good;
}

/* The scope claim mapped from another claim (scope_claim, e.g. "scp"). */
static void
test_scope_claim(void)
{
	char		err[AG_JWT_ERRLEN];
	ag_jwt_result res;
	char	   *t;

	/* Okta: an array; Entra ID: a space-separated string */
	ok(scopes_are("scp", "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\",\"audit\"]}", "read audit", err),
	   "scp array: %s", err);
	ok(scopes_are("scp", "{" BASE ",\"sub\":\"a\",\"scp\":\"read audit\"}", "read audit", err),
	   "scp string: %s", err);
	ok(scopes_are("scp", "{" BASE ",\"sub\":\"a\",\"scp\":[\"db:read\"]}", "db:read", err),
	   "scp one entry: %s", err);
	ok(scopes_are("https://example.com/scp",
				  "{" BASE ",\"sub\":\"a\",\"https://example.com/scp\":[\"r\",\"w\"]}", "r w", err),
	   "namespaced scope claim: %s", err);
	/* the mapped scopes go with a delegation chain like "scope" does */
	ok(scopes_are("scp", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"b\"},\"scp\":[\"read\"]}",
				  "read", err), "scp with act: %s", err);

	/* the default ignores scp, and scope_claim = scope is the default */
	t = tok(hdr("HS256", "hs1"), "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\"]}", &hs32, "HS256");
	ok(verify_len(t, strlen(t), &res, err) == AG_JWT_OK && res.nscopes == 0 &&
	   strstr(res.claims_json, "\"scope\"") == NULL, "default config ignores scp: %s", err);
	ag_jwt_result_free(&res);
	policy.scope_claim = "scope";
	ok(verify_len(t, strlen(t), &res, err) == AG_JWT_OK && res.nscopes == 0,
	   "scope_claim = scope ignores scp: %s", err);
	ag_jwt_result_free(&res);
	free(t);
	ok(scopes_are("scope", "{" BASE ",\"sub\":\"a\",\"scope\":\"read write\"}", "read write", err),
	   "scope_claim = scope reads scope: %s", err);

	/* a string and an array obey the same rules as "scope" */
	policy.scope_claim = "scp";
#define P(name, pay, want) expect(name, tok(hdr("HS256", "hs1"), pay, &hs32, "HS256"), want)
	P("scp and scope both", "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\"],\"scope\":\"read\"}", AG_JWT_BAD_CLAIMS);
	P("scope without scp", "{" BASE ",\"sub\":\"a\",\"scope\":\"read\"}", AG_JWT_BAD_CLAIMS);
	P("scp absent", "{" BASE ",\"sub\":\"a\"}", AG_JWT_OK);
	P("scp empty array", "{" BASE ",\"sub\":\"a\",\"scp\":[]}", AG_JWT_BAD_CLAIMS);
	P("scp empty string", "{" BASE ",\"sub\":\"a\",\"scp\":\"\"}", AG_JWT_BAD_CLAIMS);
	P("scp null", "{" BASE ",\"sub\":\"a\",\"scp\":null}", AG_JWT_BAD_CLAIMS);
	P("scp number", "{" BASE ",\"sub\":\"a\",\"scp\":7}", AG_JWT_BAD_CLAIMS);
	P("scp bool", "{" BASE ",\"sub\":\"a\",\"scp\":true}", AG_JWT_BAD_CLAIMS);
	P("scp object", "{" BASE ",\"sub\":\"a\",\"scp\":{\"read\":true}}", AG_JWT_BAD_CLAIMS);
	P("scp array with number", "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\",1]}", AG_JWT_BAD_CLAIMS);
	P("scp array with null", "{" BASE ",\"sub\":\"a\",\"scp\":[null]}", AG_JWT_BAD_CLAIMS);
	P("scp array nested", "{" BASE ",\"sub\":\"a\",\"scp\":[[\"read\"]]}", AG_JWT_BAD_CLAIMS);
	P("scp array with empty", "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\",\"\"]}", AG_JWT_BAD_CLAIMS);
	P("scp array entry with space", "{" BASE ",\"sub\":\"a\",\"scp\":[\"read write\"]}", AG_JWT_BAD_CLAIMS);
	P("scp array entry with tab", "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\\twrite\"]}", AG_JWT_BAD_CLAIMS);
	P("scp array entry control", "{" BASE ",\"sub\":\"a\",\"scp\":[\"a\\u0001\"]}", AG_JWT_BAD_CLAIMS);
	P("scp array twice", "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\",\"read\"]}", AG_JWT_BAD_CLAIMS);
	P("scp array 63 bytes", "{" BASE ",\"sub\":\"a\",\"scp\":[\"123456789012345678901234567890123456789012345678901234567890123\"]}", AG_JWT_OK);
	P("scp array 64 bytes", "{" BASE ",\"sub\":\"a\",\"scp\":[\"1234567890123456789012345678901234567890123456789012345678901234\"]}", AG_JWT_BAD_CLAIMS);
	P("scp array UTF-8", "{" BASE ",\"sub\":\"a\",\"scp\":[\"l\xc3\xa9" "ser\"]}", AG_JWT_OK);
	P("scp string double space", "{" BASE ",\"sub\":\"a\",\"scp\":\"read  write\"}", AG_JWT_BAD_CLAIMS);
	P("scp string leading space", "{" BASE ",\"sub\":\"a\",\"scp\":\" read\"}", AG_JWT_BAD_CLAIMS);
	P("scp string twice", "{" BASE ",\"sub\":\"a\",\"scp\":\"read read\"}", AG_JWT_BAD_CLAIMS);
#undef P

	/* the error says what is wrong */
	t = tok(hdr("HS256", "hs1"), "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\"],\"scope\":\"read\"}", &hs32, "HS256");
	ok(verify_len(t, strlen(t), &res, err) == AG_JWT_BAD_CLAIMS &&
	   strstr(err, "both \"scope\"") && strstr(err, "\"scp\"") && strstr(err, "ambiguous"),
	   "both claims: the error says so: %s", err);
	ag_jwt_result_free(&res);
	free(t);
	t = tok(hdr("HS256", "hs1"), "{" BASE ",\"sub\":\"a\",\"scp\":[\"read\",7]}", &hs32, "HS256");
	ok(verify_len(t, strlen(t), &res, err) == AG_JWT_BAD_CLAIMS &&
	   strstr(err, "\"scp\" entry 2 must be a string"), "bad entry named: %s", err);
	ag_jwt_result_free(&res);
	free(t);

	/* the entry cap, for an array and for a string */
	for (int arr = 0; arr <= 1; arr++)
		for (int n = AG_JWT_MAX_SCOPES; n <= AG_JWT_MAX_SCOPES + 1; n++)
		{
			char		pay[4096];
			size_t		o = (size_t) snprintf(pay, sizeof(pay), "{" BASE ",\"sub\":\"a\",\"scp\":%s",
											  arr ? "[" : "\"");

			for (int i = 0; i < n; i++)
				o += (size_t) snprintf(pay + o, sizeof(pay) - o, arr ? "%s\"s%d\"" : "%ss%d",
									   i ? (arr ? "," : " ") : "", i);
			snprintf(pay + o, sizeof(pay) - o, arr ? "]}" : "\"}");
			t = tok(hdr("HS256", "hs1"), pay, &hs32, "HS256");
			ok((verify_len(t, strlen(t), &res, err) == AG_JWT_OK) == (n == AG_JWT_MAX_SCOPES),
			   "scp %s of %d entries: %s", arr ? "array" : "string", n, err);
			ok(n != AG_JWT_MAX_SCOPES || res.nscopes == n, "all %d kept", n);
			ag_jwt_result_free(&res);
			free(t);
		}
	policy.scope_claim = NULL;
}

static void
test_claims(void)
{
	ag_jwt_result res;
	char		err[AG_JWT_ERRLEN];
	char	   *t;

	/* groups come back in order; claims_json is compact */
	t = tok(hdr("RS256", "rsa1"),
			"{" BASE ",\"sub\":\"agent-7\",\"groups\":[\"analysts\",\"ops\"],\"x\": [1, 2]}",
			&rsa1, "RS256");
	ok(verify_len(t, strlen(t), &res, err) == AG_JWT_OK, "groups token: %s", err);
	ok(res.ngroups == 2 && strcmp(res.groups[0], "analysts") == 0 &&
	   strcmp(res.groups[1], "ops") == 0, "groups values");
	ok(res.claims_json && strstr(res.claims_json, "\"x\":[1,2]") != NULL, "compact claims: %s",
	   res.claims_json);
	ag_jwt_result_free(&res);
	free(t);

	/* the chain comes back current actor first, principal last */
	t = tok(hdr("RS256", "rsa1"),
			"{" BASE ",\"sub\":\"contractor@corp\",\"scope\":\"read audit\","
			"\"act\":{\"sub\":\"subagent-7\",\"act\":{\"sub\":\"ci-pipeline\"}}}",
			&rsa1, "RS256");
	ok(verify_len(t, strlen(t), &res, err) == AG_JWT_OK, "delegated token: %s", err);
	ok(strcmp(res.identity, "contractor@corp") == 0 && res.nchain == 3 &&
	   strcmp(res.chain[0], "subagent-7") == 0 && strcmp(res.chain[1], "ci-pipeline") == 0 &&
	   strcmp(res.chain[2], "contractor@corp") == 0, "chain values");
	ok(res.nscopes == 2 && strcmp(res.scopes[0], "read") == 0 &&
	   strcmp(res.scopes[1], "audit") == 0, "scope values");
	ag_jwt_result_free(&res);
	free(t);
	/* scope cap */
	{
		char		pay[4096];

		for (int n = AG_JWT_MAX_SCOPES; n <= AG_JWT_MAX_SCOPES + 1; n++)
		{
			size_t		o = (size_t) snprintf(pay, sizeof(pay), "{" BASE ",\"sub\":\"a\",\"scope\":\"");

			for (int i = 0; i < n; i++)
				o += (size_t) snprintf(pay + o, sizeof(pay) - o, "%ss%d", i ? " " : "", i);
			snprintf(pay + o, sizeof(pay) - o, "\"}");
			t = tok(hdr("RS256", "rsa1"), pay, &rsa1, "RS256");
			ok((verify_len(t, strlen(t), &res, err) == AG_JWT_OK) == (n == AG_JWT_MAX_SCOPES),
			   "%d scopes: %s", n, err);
			ag_jwt_result_free(&res);
			free(t);
		}
	}

	/* configurable claim names */
	policy.identity_claim = "email";
	policy.groups_claim = "https://example.com/groups";
	t = tok(hdr("ES256", "ec256"),
			"{" BASE ",\"email\":\"bot@example.com\",\"sub\":123,\"https://example.com/groups\":[\"g1\"]}",
			&ec256, "ES256");
	ok(verify_len(t, strlen(t), &res, err) == AG_JWT_OK, "custom claims: %s", err);
	ok(strcmp(res.identity, "bot@example.com") == 0 && res.ngroups == 1 &&
	   strcmp(res.groups[0], "g1") == 0, "custom claim values");
	ag_jwt_result_free(&res);
	free(t);
	expect("custom identity missing",
		   tok(hdr("ES256", "ec256"), STD, &ec256, "ES256"), AG_JWT_BAD_CLAIMS);
	expect("custom groups not array",
		   tok(hdr("ES256", "ec256"), "{" BASE ",\"email\":\"a\",\"https://example.com/groups\":\"g1\"}",
			   &ec256, "ES256"), AG_JWT_BAD_CLAIMS);
	policy.identity_claim = NULL;
	policy.groups_claim = NULL;

#define P(name, pay, want) expect(name, tok(hdr("HS256", "hs1"), pay, &hs32, "HS256"), want)
	/* time */
	P("exp twice", "{" BASE ",\"sub\":\"a\",\"exp\":1699999941}", AG_JWT_MALFORMED);
	P("exp past leeway", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":1699999940}", AG_JWT_EXPIRED);
	P("exp within leeway", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":1699999941}", AG_JWT_OK);
	P("exp fractional", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":1700000300.5}", AG_JWT_OK);
	P("exp fractional expired", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":1699999939.5}", AG_JWT_EXPIRED);
	P("exp missing", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("exp string", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":\"1700000300\"}", AG_JWT_BAD_CLAIMS);
	P("exp null", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":null}", AG_JWT_BAD_CLAIMS);
	P("exp bool", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":true}", AG_JWT_BAD_CLAIMS);
	P("exp huge", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"exp\":1e300}", AG_JWT_OK);
	P("nbf future", "{" BASE ",\"sub\":\"a\",\"nbf\":1700000061}", AG_JWT_NOT_YET_VALID);
	P("nbf in leeway", "{" BASE ",\"sub\":\"a\",\"nbf\":1700000060}", AG_JWT_OK);
	P("nbf string", "{" BASE ",\"sub\":\"a\",\"nbf\":\"1\"}", AG_JWT_BAD_CLAIMS);
	P("iat future", "{" BASE ",\"sub\":\"a\",\"iat\":1700000120}", AG_JWT_NOT_YET_VALID);
	P("iat string", "{" BASE ",\"sub\":\"a\",\"iat\":\"now\"}", AG_JWT_BAD_CLAIMS);
	/* iss and aud */
	P("iss wrong", "{\"iss\":\"https://evil.example.com\",\"aud\":\"" AUD "\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("iss case", "{\"iss\":\"HTTPS://idp.example.com\",\"aud\":\"" AUD "\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("iss trailing slash", "{\"iss\":\"" ISS "/\",\"aud\":\"" AUD "\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("iss missing", "{\"aud\":\"" AUD "\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("iss array", "{\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("aud wrong", "{\"iss\":\"" ISS "\",\"aud\":\"other\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("aud missing", "{\"iss\":\"" ISS "\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("aud array with", "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"],\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_OK);
	P("aud array without", "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"],\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("aud array empty", "{\"iss\":\"" ISS "\",\"aud\":[],\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("aud array with number", "{\"iss\":\"" ISS "\",\"aud\":[\"" AUD "\",7],\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	P("aud prefix", "{\"iss\":\"" ISS "\",\"aud\":\"agentgate2\",\"exp\":1700000300,\"sub\":\"a\"}", AG_JWT_BAD_CLAIMS);
	/* identity */
	P("sub number", "{" BASE ",\"sub\":42}", AG_JWT_BAD_CLAIMS);
	P("sub empty", "{" BASE ",\"sub\":\"\"}", AG_JWT_BAD_CLAIMS);
	P("sub missing", "{" BASE "}", AG_JWT_BAD_CLAIMS);
	P("sub null", "{" BASE ",\"sub\":null}", AG_JWT_BAD_CLAIMS);
	P("sub array", "{" BASE ",\"sub\":[\"a\"]}", AG_JWT_BAD_CLAIMS);
	P("sub 63 bytes", "{" BASE ",\"sub\":\"123456789012345678901234567890123456789012345678901234567890123\"}", AG_JWT_OK);
	P("sub 64 bytes", "{" BASE ",\"sub\":\"1234567890123456789012345678901234567890123456789012345678901234\"}", AG_JWT_BAD_CLAIMS);
	P("sub control char", "{" BASE ",\"sub\":\"a\\u0001b\"}", AG_JWT_BAD_CLAIMS);
	P("sub newline", "{" BASE ",\"sub\":\"a\\nb\"}", AG_JWT_BAD_CLAIMS);
	P("sub DEL", "{" BASE ",\"sub\":\"a\\u007fb\"}", AG_JWT_BAD_CLAIMS);
	P("sub NUL escape", "{" BASE ",\"sub\":\"a\\u0000b\"}", AG_JWT_MALFORMED);
	P("sub invalid UTF-8", "{" BASE ",\"sub\":\"a\xff\xfe" "b\"}", AG_JWT_MALFORMED);
	P("sub lone surrogate", "{" BASE ",\"sub\":\"a\\ud800b\"}", AG_JWT_MALFORMED);
	P("sub UTF-8", "{" BASE ",\"sub\":\"ag\xc3\xa9nt\"}", AG_JWT_OK);
	P("sub quotes kept", "{" BASE ",\"sub\":\"a\\\"b'c\"}", AG_JWT_OK);
	P("sub twice", "{" BASE ",\"sub\":\"agent-7\",\"sub\":\"postgres\"}", AG_JWT_MALFORMED);
	/* groups */
	P("groups string", "{" BASE ",\"sub\":\"a\",\"groups\":\"admins\"}", AG_JWT_BAD_CLAIMS);
	P("groups with number", "{" BASE ",\"sub\":\"a\",\"groups\":[\"a\",1]}", AG_JWT_BAD_CLAIMS);
	P("groups with empty", "{" BASE ",\"sub\":\"a\",\"groups\":[\"\"]}", AG_JWT_BAD_CLAIMS);
	P("groups null", "{" BASE ",\"sub\":\"a\",\"groups\":null}", AG_JWT_BAD_CLAIMS);
	P("groups control", "{" BASE ",\"sub\":\"a\",\"groups\":[\"a\\tb\"]}", AG_JWT_BAD_CLAIMS);
	P("groups 64 bytes", "{" BASE ",\"sub\":\"a\",\"groups\":[\"1234567890123456789012345678901234567890123456789012345678901234\"]}", AG_JWT_BAD_CLAIMS);
	P("groups empty array", "{" BASE ",\"sub\":\"a\",\"groups\":[]}", AG_JWT_OK);
	/* delegation (act) and scope */
	P("act chain of three", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"b\",\"act\":{\"sub\":\"a\"}}}", AG_JWT_OK);
	P("act string", "{" BASE ",\"sub\":\"p\",\"act\":\"b\"}", AG_JWT_BAD_CLAIMS);
	P("act null", "{" BASE ",\"sub\":\"p\",\"act\":null}", AG_JWT_BAD_CLAIMS);
	P("act array", "{" BASE ",\"sub\":\"p\",\"act\":[{\"sub\":\"b\"}]}", AG_JWT_BAD_CLAIMS);
	P("act without sub", "{" BASE ",\"sub\":\"p\",\"act\":{\"iss\":\"x\"}}", AG_JWT_BAD_CLAIMS);
	P("act sub number", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":7}}", AG_JWT_BAD_CLAIMS);
	P("act sub 64 bytes", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"1234567890123456789012345678901234567890123456789012345678901234\"}}", AG_JWT_BAD_CLAIMS);
	P("act sub control", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"a\\nb\"}}", AG_JWT_BAD_CLAIMS);
	P("act nested not object", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"b\",\"act\":true}}", AG_JWT_BAD_CLAIMS);
	P("act member object", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"b\",\"x\":{\"sub\":\"c\"}}}", AG_JWT_BAD_CLAIMS);
	P("act member scalar", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"b\",\"iss\":\"x\",\"n\":1}}", AG_JWT_OK);
	P("act duplicate member", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"b\",\"sub\":\"c\"}}", AG_JWT_MALFORMED);
	P("act loop", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"b\",\"act\":{\"sub\":\"p\"}}}", AG_JWT_BAD_CLAIMS);
	P("act 7 deep (8 identities)", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"a1\",\"act\":{\"sub\":\"a2\",\"act\":{\"sub\":\"a3\",\"act\":{\"sub\":\"a4\",\"act\":{\"sub\":\"a5\",\"act\":{\"sub\":\"a6\",\"act\":{\"sub\":\"a7\"}}}}}}}}", AG_JWT_OK);
	P("act 8 deep (9 identities)", "{" BASE ",\"sub\":\"p\",\"act\":{\"sub\":\"a1\",\"act\":{\"sub\":\"a2\",\"act\":{\"sub\":\"a3\",\"act\":{\"sub\":\"a4\",\"act\":{\"sub\":\"a5\",\"act\":{\"sub\":\"a6\",\"act\":{\"sub\":\"a7\",\"act\":{\"sub\":\"a8\"}}}}}}}}}", AG_JWT_BAD_CLAIMS);
	P("scope", "{" BASE ",\"sub\":\"a\",\"scope\":\"read write\"}", AG_JWT_OK);
	/* RFC 8693 and RFC 9068 define "scope" as a string: no array there */
	P("scope array", "{" BASE ",\"sub\":\"a\",\"scope\":[\"read\"]}", AG_JWT_BAD_CLAIMS);
	P("scope empty", "{" BASE ",\"sub\":\"a\",\"scope\":\"\"}", AG_JWT_BAD_CLAIMS);
	P("scope double space", "{" BASE ",\"sub\":\"a\",\"scope\":\"read  write\"}", AG_JWT_BAD_CLAIMS);
	P("scope trailing space", "{" BASE ",\"sub\":\"a\",\"scope\":\"read \"}", AG_JWT_BAD_CLAIMS);
	P("scope tab", "{" BASE ",\"sub\":\"a\",\"scope\":\"read\\twrite\"}", AG_JWT_BAD_CLAIMS);
	P("scope twice", "{" BASE ",\"sub\":\"a\",\"scope\":\"read read\"}", AG_JWT_BAD_CLAIMS);
	P("scope 64 bytes", "{" BASE ",\"sub\":\"a\",\"scope\":\"1234567890123456789012345678901234567890123456789012345678901234\"}", AG_JWT_BAD_CLAIMS);
	/* payload shape, after a good signature */
	P("payload array", "[1,2]", AG_JWT_MALFORMED);
	P("payload not JSON", "{\"sub\":", AG_JWT_MALFORMED);
	P("payload trailing data", STD "x", AG_JWT_MALFORMED);
#undef P

	/* group count cap */
	{
		char		pay[8192];
		size_t		o;

		for (int n = 256; n <= 257; n++)
		{
			o = (size_t) snprintf(pay, sizeof(pay), "{" BASE ",\"sub\":\"a\",\"groups\":[");
			for (int i = 0; i < n; i++)
				o += (size_t) snprintf(pay + o, sizeof(pay) - o, "%s\"g%d\"", i ? "," : "", i);
			snprintf(pay + o, sizeof(pay) - o, "]}");
			expect(n == 256 ? "256 groups" : "257 groups", tok(hdr("HS256", "hs1"), pay, &hs32, "HS256"),
				   n == 256 ? AG_JWT_OK : AG_JWT_BAD_CLAIMS);
		}
	}
}

static void
test_header(void)
{
	static const char *nones[] = {"none", "None", "NONE", "nOnE"};
	char		h[256];
	char	   *h64,
			   *p64 = b64s(STD);

	for (size_t i = 0; i < 4; i++)
	{
		char	   *t;

		snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", nones[i]);
		h64 = b64s(h);
		t = malloc(strlen(h64) + strlen(p64) + 3);
		sprintf(t, "%s.%s.", h64, p64);
		expect("alg none, empty signature", t, AG_JWT_MALFORMED);
		/* a "signature" made with each key, in case anything treats none as a MAC */
		snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"hs1\"}", nones[i]);
		expect("alg none, HMAC signature", tok(h, STD, &hs32, "HS256"), AG_JWT_BAD_HEADER);
		snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"rsa1\"}", nones[i]);
		expect("alg none, RSA signature", tok(h, STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
		free(h64);
	}
	free(p64);

	expect("alg lowercase", tok("{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("alg with space", tok("{\"alg\":\"RS256 \",\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("alg missing", tok("{\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("alg number", tok("{\"alg\":256,\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("alg unknown", tok("{\"alg\":\"ES256K\",\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("crit present", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"exp\"]}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("crit empty", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[]}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("typ at+jwt", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"at+jwt\"}", STD, &rsa1, "RS256"), AG_JWT_OK);
	expect("typ absent", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_OK);
	expect("typ JWS", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JWS\"}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("typ JWE-ish", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JOSE+JSON\"}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("typ number", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":1}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("header alg twice", tok("{\"alg\":\"RS256\",\"alg\":\"HS256\",\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_MALFORMED);
	expect("header kid twice", tok("{\"alg\":\"RS256\",\"kid\":\"x\",\"kid\":\"rsa1\"}", STD, &rsa1, "RS256"), AG_JWT_MALFORMED);
	expect("header array", tok("[\"RS256\"]", STD, &rsa1, "RS256"), AG_JWT_MALFORMED);
	expect("header not JSON", tok("{\"alg\":\"RS256\"", STD, &rsa1, "RS256"), AG_JWT_MALFORMED);
	expect("header trailing data", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}{}", STD, &rsa1, "RS256"), AG_JWT_MALFORMED);
	/* key-carrying headers are ignored, never trusted */
	expect("jku/x5u ignored", tok("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"jku\":\"https://evil/jwks\",\"x5u\":\"https://evil/c\"}", STD, &rsa1, "RS256"), AG_JWT_OK);
	{
		json_t	   *h2 = json_pack("{s:s,s:o}", "alg", "RS256", "jwk", jwk(&attacker, NULL, NULL));
		char	   *hs = json_dumps(h2, JSON_COMPACT);

		expect("embedded jwk not trusted", tok(hs, STD, &attacker, "RS256"), AG_JWT_BAD_SIGNATURE);
		free(hs);
		json_decref(h2);
		h2 = json_pack("{s:s,s:s,s:o}", "alg", "RS256", "kid", "attacker", "jwk", jwk(&attacker, "attacker", NULL));
		hs = json_dumps(h2, JSON_COMPACT);
		expect("embedded jwk with its kid", tok(hs, STD, &attacker, "RS256"), AG_JWT_NO_KEY);
		free(hs);
		json_decref(h2);
	}
}

static void
test_kids_and_keys(void)
{
	char		longkid[5001];

	memset(longkid, 'k', sizeof(longkid) - 1);
	longkid[sizeof(longkid) - 1] = '\0';

	expect("unknown kid", tok(hdr("RS256", "nope"), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("kid case differs", tok(hdr("RS256", "RSA1"), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("kid prefix", tok(hdr("RS256", "rsa"), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("kid very long", tok(hdr("RS256", longkid), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("kid path", tok(hdr("RS256", "../../../etc/passwd"), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("kid SQL", tok(hdr("RS256", "rsa1' OR '1'='1"), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("kid NUL escape", tok(hdr("RS256", "rsa1\\u0000x"), STD, &rsa1, "RS256"), AG_JWT_MALFORMED);
	expect("kid empty", tok(hdr("RS256", ""), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("kid number", tok("{\"alg\":\"RS256\",\"kid\":1}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	expect("kid null", tok("{\"alg\":\"RS256\",\"kid\":null}", STD, &rsa1, "RS256"), AG_JWT_BAD_HEADER);
	/* the right key for the kid, but signed by another one */
	expect("kid of other key", tok(hdr("RS256", "rsa2"), STD, &rsa1, "RS256"), AG_JWT_BAD_SIGNATURE);
	expect("attacker key, no kid", tok(hdr("RS256", NULL), STD, &attacker, "RS256"), AG_JWT_BAD_SIGNATURE);

	/* the key decides the algorithm */
	expect("RS256 on EC key", tok(hdr("RS256", "ec256"), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("ES384 on P-256 key", tok(hdr("ES384", "ec256"), STD, &ec256, "ES384"), AG_JWT_NO_KEY);
	expect("ES256 on P-384 key", tok(hdr("ES256", "ec384"), STD, &ec384, "ES256"), AG_JWT_NO_KEY);
	expect("PS256 on RS256-only key", tok(hdr("PS256", "rsa1"), STD, &rsa1, "PS256"), AG_JWT_NO_KEY);
	expect("RS384 on RS256-only key", tok(hdr("RS384", "rsa1"), STD, &rsa1, "RS384"), AG_JWT_NO_KEY);
	expect("EdDSA on RSA key", tok(hdr("EdDSA", "rsa2"), STD, &ed1, "EdDSA"), AG_JWT_NO_KEY);
	expect("ES256 on Ed25519 key", tok(hdr("ES256", "ed1"), STD, &ec256, "ES256"), AG_JWT_NO_KEY);
	expect("RS256 on oct key", tok(hdr("RS256", "hs1"), STD, &rsa1, "RS256"), AG_JWT_NO_KEY);
	expect("HS384 on HS256-only key", tok(hdr("HS384", "hs1"), STD, &hs32, "HS384"), AG_JWT_NO_KEY);
	expect("HS256 on EC key", tok(hdr("HS256", "ec256"), STD, &hs32, "HS256"), AG_JWT_NO_KEY);
	expect("PS256 signature under RS256 header", tok(hdr("RS256", "rsa2"), STD, &rsa2, "PS256"), AG_JWT_BAD_SIGNATURE);

	/* HS256 keyed with the RSA public key, every way it could be encoded */
	for (int i = 0; i < 2; i++)
	{
		EVP_PKEY   *pk = i ? rsa2.pk : rsa1.pk;
		const char *kid = i ? "rsa2" : "rsa1";
		BIO		   *bio = BIO_new(BIO_s_mem());
		char	   *pem;
		long		pemlen;
		unsigned char *spki = NULL,
				   *pkcs1 = NULL,
					nbuf[512];
		int			spkilen = i2d_PUBKEY(pk, &spki),
					pkcs1len = i2d_PublicKey(pk, &pkcs1);
		BIGNUM	   *bn = NULL;
		json_t	   *jj = jwk(&(tkey) {.pk = pk}, kid, NULL);
		char	   *jtext = json_dumps(jj, JSON_COMPACT);
		struct
		{
			const char *what;
			const void *key;
			size_t		len;
		}			enc[7];

		PEM_write_bio_PUBKEY(bio, pk);
		pemlen = BIO_get_mem_data(bio, &pem);
		EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &bn);
		enc[0].what = "PEM", enc[0].key = pem, enc[0].len = (size_t) pemlen;
		enc[1].what = "PEM without its last newline", enc[1].key = pem, enc[1].len = (size_t) pemlen - 1;
		enc[2].what = "DER SubjectPublicKeyInfo", enc[2].key = spki, enc[2].len = (size_t) spkilen;
		enc[3].what = "DER PKCS#1", enc[3].key = pkcs1, enc[3].len = (size_t) pkcs1len;
		enc[4].what = "modulus bytes", enc[4].key = nbuf, enc[4].len = (size_t) BN_bn2bin(bn, nbuf);
		enc[5].what = "JWK text", enc[5].key = jtext, enc[5].len = strlen(jtext);
		/* an RSA JWK mistaken for an empty HMAC key (CVE-2026-44699 in libjwt 3) */
		enc[6].what = "empty secret", enc[6].key = "", enc[6].len = 0;

		for (int e = 0; e < 7; e++)
		{
			char		name[96];

			snprintf(name, sizeof(name), "HS256 keyed with the RSA key as %s", enc[e].what);
			expect(name, tok_hmac(hdr("HS256", kid), enc[e].key, enc[e].len), AG_JWT_NO_KEY);
			/* without a kid only oct keys are tried, and they do not match */
			snprintf(name, sizeof(name), "HS256 keyed with the RSA key as %s, no kid", enc[e].what);
			expect(name, tok_hmac(hdr("HS256", NULL), enc[e].key, enc[e].len), AG_JWT_BAD_SIGNATURE);
		}
		BIO_free(bio);
		OPENSSL_free(spki);
		OPENSSL_free(pkcs1);
		BN_free(bn);
		free(jtext);
		json_decref(jj);
	}
}

/* Replace the signature segment of t by the encoding of sig[0..n). */
static char *
with_sig(const char *t, const unsigned char *sig, size_t n)
{
	const char *dot = strrchr(t, '.');
	char	   *s64 = b64(sig, n);
	char	   *r = malloc((size_t) (dot - t) + strlen(s64) + 2);

	memcpy(r, t, (size_t) (dot - t) + 1);
	strcpy(r + (dot - t) + 1, s64);
	free(s64);
	return r;
}

static size_t
get_sig(const char *t, unsigned char *sig)
{
	const char *s = strrchr(t, '.') + 1;
	size_t		n = strlen(s);
	char	   *std = malloc(n + 4);
	int			len;
	size_t		pad = (4 - n % 4) % 4;

	for (size_t i = 0; i < n; i++)
		std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	memset(std + n, '=', pad);
	std[n + pad] = '\0';
	len = EVP_DecodeBlock(sig, (unsigned char *) std, (int) (n + pad));
	free(std);
	return (size_t) len - pad;
}

/* Find a token for alg whose signature starts with a zero byte. */
static char *
tok_sig_leading_zero(tkey *k, const char *alg, const char *kid)
{
	char		pay[512];
	unsigned char sig[2048];

	for (int i = 0; i < 100000; i++)
	{
		char	   *t;

		snprintf(pay, sizeof(pay), "{" BASE ",\"sub\":\"a\",\"jti\":\"%d\"}", i);
		t = tok(hdr(alg, kid), pay, k, alg);
		if (get_sig(t, sig) > 0 && sig[0] == 0)
			return t;
		free(t);
	}
	return NULL;
}

static void
test_signatures(void)
{
	unsigned char sig[2048];
	size_t		n;
	char	   *t,
			   *u;

	t = tok(hdr("RS256", "rsa1"), STD, &rsa1, "RS256");
	n = get_sig(t, sig);
	ok(n == 256, "RS256 sig length %zu", n);
	expect("truncated signature", with_sig(t, sig, n - 1), AG_JWT_BAD_SIGNATURE);
	expect("token cut by one character", strndup(t, strlen(t) - 1), AG_JWT_MALFORMED);	/* 4n+1 */
	expect("extended signature", with_sig(t, sig, n + 1), AG_JWT_BAD_SIGNATURE);
	u = strndup(t, (size_t) (strrchr(t, '.') - t) + 1);
	expect("empty signature", u, AG_JWT_MALFORMED);
	for (size_t bit = 0; bit < n * 8; bit += 331)
	{
		sig[bit / 8] ^= (unsigned char) (1 << (bit % 8));
		expect("bit-flipped RS256 signature", with_sig(t, sig, n), AG_JWT_BAD_SIGNATURE);
		sig[bit / 8] ^= (unsigned char) (1 << (bit % 8));
	}
	expect("unchanged signature", with_sig(t, sig, n), AG_JWT_OK);

	/* a signature borrowed from another token with the same key */
	u = tok(hdr("RS256", "rsa1"), "{" BASE ",\"sub\":\"root\"}", &rsa1, "RS256");
	n = get_sig(t, sig);
	expect("borrowed signature", with_sig(u, sig, n), AG_JWT_BAD_SIGNATURE);
	free(u);
	free(t);

	/* ES: bit flips, DER, zero, high S */
	{
		tkey	   *eks[] = {&ec256, &ec384, &ec521};
		const char *algs[] = {"ES256", "ES384", "ES512"};
		const char *kids[] = {"ec256", "ec384", "ec521"};

		for (int i = 0; i < 3; i++)
		{
			char	   *hh = b64s(hdr(algs[i], kids[i])),
					   *pp = b64s(STD),
					   *in = signing_input(hh, pp);
			unsigned char der[256];
			size_t		dlen = sign(eks[i], algs[i], in, strlen(in), der, 1);
			BIGNUM	   *order = BN_new(),
					   *s = BN_new();
			EC_GROUP   *g;
			int			coord;

			t = join3(in, "x");
			expect("ECDSA DER", with_sig(t, der, dlen), AG_JWT_BAD_SIGNATURE);
			free(t);
			t = tok_seg(hh, pp, eks[i], algs[i]);
			n = get_sig(t, sig);
			coord = (int) n / 2;
			sig[3] ^= 0x40;
			expect("bit-flipped ECDSA R", with_sig(t, sig, n), AG_JWT_BAD_SIGNATURE);
			sig[3] ^= 0x40;
			sig[n - 1] ^= 0x01;
			expect("bit-flipped ECDSA S", with_sig(t, sig, n), AG_JWT_BAD_SIGNATURE);
			sig[n - 1] ^= 0x01;
			expect("ECDSA short by one", with_sig(t, sig + 1, n - 1), AG_JWT_BAD_SIGNATURE);
			memset(sig + 0, 0, n);
			expect("ECDSA zero signature", with_sig(t, sig, n), AG_JWT_BAD_SIGNATURE);
			/* high S (n - s) is the same signature; JWS does not forbid it */
			n = get_sig(t, sig);
			g = EC_GROUP_new_by_curve_name(i == 0 ? NID_X9_62_prime256v1 : i == 1 ? NID_secp384r1 : NID_secp521r1);
			BN_copy(order, EC_GROUP_get0_order(g));
			BN_bin2bn(sig + coord, coord, s);
			BN_sub(s, order, s);
			BN_bn2binpad(s, sig + coord, coord);
			expect("ECDSA high S", with_sig(t, sig, n), AG_JWT_OK);
			EC_GROUP_free(g);
			BN_free(order);
			BN_free(s);
			free(t);
			free(in);
			free(hh);
			free(pp);
		}
	}

	/* Ed25519 and HMAC flips */
	t = tok(hdr("EdDSA", "ed1"), STD, &ed1, "EdDSA");
	n = get_sig(t, sig);
	sig[10] ^= 4;
	expect("bit-flipped EdDSA", with_sig(t, sig, n), AG_JWT_BAD_SIGNATURE);
	free(t);
	t = tok(hdr("HS256", "hs1"), STD, &hs32, "HS256");
	n = get_sig(t, sig);
	sig[31] ^= 1;
	expect("bit-flipped HS256", with_sig(t, sig, n), AG_JWT_BAD_SIGNATURE);
	expect("truncated HS256", with_sig(t, sig, 16), AG_JWT_BAD_SIGNATURE);
	free(t);

	/* a leading zero byte is part of the signature; stripping it is refused */
	{
		const char *algs[] = {"PS256", "RS256"};
		tkey	   *keys[] = {&rsa2, &rsa1};
		const char *kids[] = {"rsa2", "rsa1"};

		for (int i = 0; i < 2; i++)
		{
			t = tok_sig_leading_zero(keys[i], algs[i], kids[i]);
			ok(t != NULL, "found %s signature with leading zero", algs[i]);
			if (t == NULL)
				continue;
			n = get_sig(t, sig);
			expect("signature with leading zero", strdup(t), AG_JWT_OK);
			expect("signature with leading zero stripped", with_sig(t, sig + 1, n - 1), AG_JWT_BAD_SIGNATURE);
			free(t);
		}
	}
}

/* Verify the raw bytes t[0..len) and expect want. */
static void
expect_raw(const char *name, const char *t, size_t len, ag_jwt_status want)
{
	ag_jwt_result res;
	char		err[AG_JWT_ERRLEN];
	ag_jwt_status st = verify_len(t, len, &res, err);

	ok(st == want, "%s: got %s (%s), want %s", name, ag_jwt_status_name(st), err, ag_jwt_status_name(want));
	ag_jwt_result_free(&res);
}

/* t with the character at pos replaced by c (or inserted if ins). */
static char *
edit(const char *t, size_t pos, char c, int ins)
{
	size_t		len = strlen(t);
	char	   *r = malloc(len + 2);

	memcpy(r, t, pos);
	r[pos] = c;
	strcpy(r + pos + 1, t + pos + (ins ? 0 : 1));
	return r;
}

static void
test_encoding(void)
{
	char	   *t = tok(hdr("RS256", "rsa1"), STD, &rsa1, "RS256");
	size_t		len = strlen(t);
	size_t		d1 = (size_t) (strchr(t, '.') - t),
				d2 = (size_t) (strrchr(t, '.') - t);
	char		buf[AG_JWT_MAX_TOKEN + 64];
	char	   *p;

	expect_raw("baseline", t, len, AG_JWT_OK);
	expect_raw("empty token", "", 0, AG_JWT_MALFORMED);
	expect_raw("one dot", ".", 1, AG_JWT_MALFORMED);
	expect_raw("two dots", "..", 2, AG_JWT_MALFORMED);
	expect_raw("two segments", t, d2, AG_JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.", t);
	expect_raw("four segments, empty last", buf, strlen(buf), AG_JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.e30", t);
	expect_raw("four segments", buf, strlen(buf), AG_JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.e30.e30", t);
	expect_raw("five segments", buf, strlen(buf), AG_JWT_MALFORMED);
	snprintf(buf, sizeof(buf), ".%s", t);
	expect_raw("leading dot", buf, strlen(buf), AG_JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%.*s.%s", (int) d1, t, t + d2 + 1);
	expect_raw("empty payload via missing segment", buf, strlen(buf), AG_JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%.*s..%s", (int) d1, t, t + d2 + 1);
	expect_raw("empty payload", buf, strlen(buf), AG_JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s", t + d1);
	expect_raw("empty header", buf, strlen(buf), AG_JWT_MALFORMED);

	/* NUL */
	memcpy(buf, t, len);
	buf[len] = '\0';
	expect_raw("trailing NUL counted", buf, len + 1, AG_JWT_MALFORMED);
	buf[d1 + 3] = '\0';
	expect_raw("NUL inside", buf, len, AG_JWT_MALFORMED);

	/* whitespace, padding, alphabet */
	expect("space inside signature", edit(t, d2 + 5, ' ', 1), AG_JWT_MALFORMED);
	expect("newline at end", edit(t, len, '\n', 1), AG_JWT_MALFORMED);
	expect("CR at end", edit(t, len, '\r', 1), AG_JWT_MALFORMED);
	expect("space before dot", edit(t, d1, ' ', 1), AG_JWT_MALFORMED);
	expect("tab in header", edit(t, 2, '\t', 1), AG_JWT_MALFORMED);
	expect("padding on signature", edit(t, len, '=', 1), AG_JWT_MALFORMED);
	{
		char	   *u = edit(t, len, '=', 1);
		char	   *v = edit(u, len + 1, '=', 1);

		expect("double padding on signature", v, AG_JWT_MALFORMED);
		free(u);
	}
	expect("padding on header", edit(t, d1, '=', 1), AG_JWT_MALFORMED);
	for (size_t i = d2 + 1; i < len; i++)
		if (t[i] == '-' || t[i] == '_')
		{
			expect("standard alphabet in signature", edit(t, i, t[i] == '-' ? '+' : '/', 0), AG_JWT_MALFORMED);
			break;
		}
	expect("'+' in header", edit(t, 4, '+', 0), AG_JWT_MALFORMED);
	expect("'/' in payload", edit(t, d1 + 4, '/', 0), AG_JWT_BAD_SIGNATURE);
	expect("'!' in signature", edit(t, d2 + 7, '!', 0), AG_JWT_MALFORMED);
	expect("high byte in signature", edit(t, d2 + 7, (char) 0xc3, 0), AG_JWT_MALFORMED);

	/*
	 * Non-canonical trailing bits: an RSA-2048 signature is 342 characters
	 * (2 spare bits).  Setting them gives a different string for the same
	 * bytes.
	 */
	p = strdup(t);
	ok((len - d2 - 1) % 4 == 2, "RS256 signature length mod 4 is 2");
	{
		static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		size_t		last = len - 1;
		int			v = (int) (strchr(alpha, p[last]) - alpha);

		p[last] = alpha[v | 1];
		expect("non-canonical signature bits", p, AG_JWT_MALFORMED);
	}
	/* a header whose encoding has spare bits, signed as such */
	{
		/* a length that is not a multiple of 3 leaves spare bits */
		const char *h = strlen("{\"alg\":\"HS256\",\"kid\":\"hs1\"}") % 3 ?
			"{\"alg\":\"HS256\",\"kid\":\"hs1\"}" : "{\"alg\":\"HS256\",\"kid\":\"hs1\",\"x\":12}";
		char	   *h64 = b64s(h),
				   *p64 = b64s(STD);
		size_t		hl = strlen(h64);
		static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

		ok(hl % 4 != 0, "header encoding has spare bits");
		expect("canonical header", tok_seg(h64, p64, &hs32, "HS256"), AG_JWT_OK);
		h64[hl - 1] = alpha[(strchr(alpha, h64[hl - 1]) - alpha) | 1];
		expect("non-canonical header bits, validly signed", tok_seg(h64, p64, &hs32, "HS256"), AG_JWT_MALFORMED);
		free(h64);
		free(p64);
		/* and the payload: STD has spare bits too, or add a byte until it does */
		h64 = b64s(h);
		p64 = b64s(STD " ");
		if (strlen(p64) % 4 == 0)
		{
			free(p64);
			p64 = b64s(STD "  ");
		}
		hl = strlen(p64);
		expect("canonical payload", tok_seg(h64, p64, &hs32, "HS256"), AG_JWT_OK);
		p64[hl - 1] = alpha[(strchr(alpha, p64[hl - 1]) - alpha) | 1];
		expect("non-canonical payload bits, validly signed", tok_seg(h64, p64, &hs32, "HS256"), AG_JWT_MALFORMED);
		free(p64);
		p64 = b64s(STD);
		{
			char	   *padded = malloc(strlen(p64) + 4);

			sprintf(padded, "%s=", p64);
			expect("padded payload, validly signed", tok_seg(h64, padded, &hs32, "HS256"), AG_JWT_MALFORMED);
			free(padded);
		}
		free(h64);
		free(p64);
	}

	/* the signature is checked before the payload is even decoded */
	{
		char	   *h64 = b64s(hdr("RS256", "rsa1"));

		snprintf(buf, sizeof(buf), "%s.!!not-base64!!.%s", h64, t + d2 + 1);
		expect_raw("garbage payload, foreign signature", buf, strlen(buf), AG_JWT_BAD_SIGNATURE);
		free(h64);
	}
	free(t);

	/*
	 * size: a valid token of exactly 16384 bytes passes, 16385 does not.
	 * Encoded lengths move in steps of 1 or 2, so a few header lengths are
	 * tried until one lands exactly.
	 */
	for (size_t target = AG_JWT_MAX_TOKEN; target <= AG_JWT_MAX_TOKEN + 1; target++)
	{
		char	   *pay = malloc(target);
		char	   *tt = NULL;

		for (int hv = 0; hv < 4 && tt == NULL; hv++)
		{
			char		h[64];
			char	   *h64;

			snprintf(h, sizeof(h), "{\"alg\":\"HS256\",\"kid\":\"hs1\",\"x\":\"%.*s\"}", hv, "xxx");
			h64 = b64s(h);
			for (size_t padlen = (target - 200) * 3 / 4 - 120; padlen < target; padlen++)
			{
				char	   *p64;

				snprintf(pay, target, "{" BASE ",\"sub\":\"a\",\"pad\":\"%0*d\"}", (int) padlen, 0);
				p64 = b64s(pay);
				tt = tok_seg(h64, p64, &hs32, "HS256");
				free(p64);
				if (strlen(tt) == target)
					break;
				free(tt);
				tt = NULL;
				if (strlen(h64) + 4 * padlen / 3 > target + 8)
					break;
			}
			free(h64);
		}
		ok(tt != NULL, "built a token of %zu bytes", target);
		if (tt)
			expect(target == AG_JWT_MAX_TOKEN ? "token of 16384 bytes" : "token of 16385 bytes",
				   tt, target == AG_JWT_MAX_TOKEN ? AG_JWT_OK : AG_JWT_MALFORMED);
		free(pay);
	}
	memset(buf, 'a', AG_JWT_MAX_TOKEN + 1);
	expect_raw("16385 bytes of junk", buf, AG_JWT_MAX_TOKEN + 1, AG_JWT_MALFORMED);
}

static void
expect_jwks(const char *name, const char *json, int want_ok)
{
	char		err[AG_JWT_ERRLEN] = "";
	ag_keyset  *k = ag_keyset_parse(json, strlen(json), err, sizeof(err));

	ok((k != NULL) == want_ok, "jwks %s: %s (%s)", name, k ? "loaded" : "refused", err);
	ok(k != NULL || err[0] != '\0', "jwks %s: refusal has a reason", name);
	ag_keyset_unref(k);
}

/* A JWK as text with one member replaced (value is raw JSON). */
static char *
jwks_with(json_t *k, const char *member, const char *value)
{
	json_t	   *v = value ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;

	if (value)
		json_object_set_new(k, member, v);
	else
		json_object_del(k, member);
	return jwks_of(k, NULL);
}

static char *
b64_bn(BIGNUM *bn)
{
	unsigned char buf[4096];
	int			n = BN_bn2bin(bn, buf);

	return b64(buf, (size_t) n);
}

static void
test_jwks(void)
{
	char	   *s;
	char		buf[4096];
	EVP_PKEY   *small = keygen("RSA", NULL, 1024);
	tkey		ts = {.pk = small};

	expect_jwks("valid rsa", s = jwks_of(jwk(&rsa1, "a", "RS256"), NULL), 1);
	free(s);
	expect_jwks("RSA 1024", s = jwks_of(jwk(&ts, "a", NULL), NULL), 0);
	free(s);
	EVP_PKEY_free(small);

	/* synthetic moduli and exponents */
	{
		BIGNUM	   *n = BN_new(),
				   *e = BN_new();
		char	   *n64,
				   *e64,
				   *nv;

		BN_rand(n, 2048, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD);
		n64 = b64_bn(n);
#define RSA_JWKS(nn, ee) (snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\",\"e\":\"%s\"}]}", nn, ee), buf)
		expect_jwks("e=65537 odd n", RSA_JWKS(n64, "AQAB"), 1);
		expect_jwks("e=1", RSA_JWKS(n64, "AQ"), 0);
		expect_jwks("e=3", RSA_JWKS(n64, "Aw"), 1);
		expect_jwks("e even", RSA_JWKS(n64, "AQAA"), 0);
		BN_set_word(e, 1);
		BN_lshift(e, e, 256);
		BN_add_word(e, 1);
		e64 = b64_bn(e);
		expect_jwks("e = 2^256 + 1", RSA_JWKS(n64, e64), 0);
		free(e64);
		BN_set_word(e, 1);
		BN_lshift(e, e, 255);
		BN_add_word(e, 1);
		e64 = b64_bn(e);
		expect_jwks("e = 2^255 + 1", RSA_JWKS(n64, e64), 1);
		free(e64);
		expect_jwks("e zero", RSA_JWKS(n64, "AA"), 0);
		expect_jwks("e empty", RSA_JWKS(n64, ""), 0);
		BN_clear_bit(n, 0);
		nv = b64_bn(n);
		expect_jwks("n even", RSA_JWKS(nv, "AQAB"), 0);
		free(nv);
		BN_rand(n, 2047, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD);
		nv = b64_bn(n);
		expect_jwks("n 2047 bits", RSA_JWKS(nv, "AQAB"), 0);
		free(nv);
		free(n64);
#undef RSA_JWKS
		BN_free(n);
		BN_free(e);
		{
			/* 16392-bit modulus: over the cap */
			BIGNUM	   *big = BN_new();
			char	   *b64n,
					   *doc;

			BN_rand(big, 16392, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD);
			b64n = b64_bn(big);
			doc = malloc(strlen(b64n) + 128);
			sprintf(doc, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", b64n);
			expect_jwks("n over 16384 bits", doc, 0);
			free(doc);
			free(b64n);
			BN_free(big);
		}
	}

	/* EC */
	{
		json_t	   *k = jwk(&ec256, "e", "ES256");
		char	   *y = strdup(json_string_value(json_object_get(k, "y")));
		char	   *x = strdup(json_string_value(json_object_get(k, "x")));

		expect_jwks("valid EC", s = jwks_of(json_deep_copy(k), NULL), 1);
		free(s);
		/* flip a bit of y: off the curve */
		y[10] = y[10] == 'A' ? 'B' : 'A';
		snprintf(buf, sizeof(buf), "\"%s\"", y);
		expect_jwks("EC off curve", s = jwks_with(json_deep_copy(k), "y", buf), 0);
		free(s);
		snprintf(buf, sizeof(buf), "\"%.42s\"", x);	/* 31 bytes */
		expect_jwks("EC short x", s = jwks_with(json_deep_copy(k), "x", buf), 0);
		free(s);
		expect_jwks("EC P-256 point as P-384", s = jwks_with(json_deep_copy(k), "crv", "\"P-384\""), 0);
		free(s);
		expect_jwks("EC alg/crv mismatch", s = jwks_with(json_deep_copy(k), "alg", "\"ES384\""), 0);
		free(s);
		expect_jwks("EC with RS256", s = jwks_with(json_deep_copy(k), "alg", "\"RS256\""), 0);
		free(s);
		expect_jwks("EC with EdDSA", s = jwks_with(json_deep_copy(k), "alg", "\"EdDSA\""), 0);
		free(s);
		expect_jwks("EC no y", s = jwks_with(json_deep_copy(k), "y", NULL), 0);
		free(s);
		expect_jwks("EC private d", s = jwks_with(json_deep_copy(k), "d", "\"AAAA\""), 0);
		free(s);
		/* a point of the wrong curve: all-zero coordinates */
		{
			json_t	   *z = json_deep_copy(k);

			json_object_set_new(z, "x", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
			json_object_set_new(z, "y", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
			expect_jwks("EC zero point", s = jwks_of(z, NULL), 0);
			free(s);
		}
		expect_jwks("EC secp256k1 skipped, alone", s = jwks_with(json_deep_copy(k), "crv", "\"secp256k1\""), 0);
		free(s);
		json_decref(k);
		free(x);
		free(y);
	}

	/* mismatches, oct, OKP */
	expect_jwks("RSA with ES256", s = jwks_of(jwk(&rsa1, "a", "ES256"), NULL), 0);
	free(s);
	expect_jwks("RSA with HS256", s = jwks_of(jwk(&rsa1, "a", "HS256"), NULL), 0);
	free(s);
	expect_jwks("RSA with none", s = jwks_of(jwk(&rsa1, "a", "none"), NULL), 0);
	free(s);
	expect_jwks("RSA with PS512", s = jwks_of(jwk(&rsa1, "a", "PS512"), NULL), 1);
	free(s);
	expect_jwks("Ed25519", s = jwks_of(jwk(&ed1, "a", "EdDSA"), NULL), 1);
	free(s);
	expect_jwks("Ed25519 with ES256", s = jwks_of(jwk(&ed1, "a", "ES256"), NULL), 0);
	free(s);
	expect_jwks("Ed448 skipped, alone", "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"AAAA\"}]}", 0);
	expect_jwks("Ed25519 short", "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}", 0);
	expect_jwks("oct 32", s = jwks_of(jwk(&hs32, "a", "HS256"), NULL), 1);
	free(s);
	expect_jwks("oct 32 as HS384", s = jwks_of(jwk(&hs32, "a", "HS384"), NULL), 0);
	free(s);
	{
		tkey		short_oct = {.seclen = 31};

		memset(short_oct.sec, 7, 31);
		expect_jwks("oct 31 bytes", s = jwks_of(jwk(&short_oct, "a", NULL), NULL), 0);
		free(s);
	}
	expect_jwks("oct empty", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"\"}]}", 0);

	/* set-level rules */
	expect_jwks("duplicate kid", s = jwks_of(jwk(&rsa1, "a", NULL), jwk(&ec256, "a", NULL), NULL), 0);
	free(s);
	expect_jwks("same key, two kids", s = jwks_of(jwk(&rsa1, "a", NULL), jwk(&rsa1, "b", NULL), NULL), 1);
	free(s);
	expect_jwks("two keys without kid", s = jwks_of(jwk(&rsa1, NULL, NULL), jwk(&ec256, NULL, NULL), NULL), 1);
	free(s);
	expect_jwks("duplicate member", "{\"keys\":[{\"kty\":\"oct\",\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);
	expect_jwks("duplicate keys", "{\"keys\":[],\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);
	expect_jwks("oct canonical", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 1);
	expect_jwks("oct non-canonical", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\"}]}", 0);
	expect_jwks("oct padded", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}", 0);
	expect_jwks("kid number", "{\"keys\":[{\"kty\":\"oct\",\"kid\":1,\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);
	expect_jwks("kid empty", "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);
	expect_jwks("kid with NUL", "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\\u0000b\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);
	expect_jwks("no kty", "{\"keys\":[{\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);
	expect_jwks("unknown kty alone", "{\"keys\":[{\"kty\":\"XYZ\"}]}", 0);
	expect_jwks("not JSON", "{\"keys\":[", 0);
	expect_jwks("empty", "", 0);
	expect_jwks("array", "[]", 0);
	expect_jwks("no keys", "{}", 0);
	expect_jwks("keys not array", "{\"keys\":{}}", 0);
	expect_jwks("empty keys", "{\"keys\":[]}", 0);
	expect_jwks("key not object", "{\"keys\":[1]}", 0);
	expect_jwks("use not string", "{\"keys\":[{\"kty\":\"oct\",\"use\":1,\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);
	expect_jwks("key_ops not array", "{\"keys\":[{\"kty\":\"oct\",\"key_ops\":\"verify\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", 0);

	/* skipped keys are counted and do not block the others */
	{
		char		err[AG_JWT_ERRLEN];
		ag_keyset  *k;
		json_t	   *enc = jwk(&rsa2, "enc1", NULL);
		json_t	   *ops = jwk(&ec256, "ops1", NULL);

		json_object_set_new(enc, "use", json_string("enc"));
		json_object_set_new(ops, "key_ops", json_pack("[s]", "encrypt"));
		s = jwks_of(jwk(&rsa1, "a", NULL), json_pack("{s:s}", "kty", "XYZ"), enc, ops,
					json_pack("{s:s,s:s,s:s}", "kty", "RSA", "alg", "RSA-OAEP", "n", "x"),
					jwk(&ec256, "b", NULL), NULL);
		k = ag_keyset_parse(s, strlen(s), err, sizeof(err));
		ok(k && ag_keyset_count(k) == 2 && ag_keyset_skipped(k) == 4, "skipped keys: %s", k ? "" : err);
		ok(k && ag_keyset_has_kid(k, "a") && ag_keyset_has_kid(k, "b") && !ag_keyset_has_kid(k, "enc1") &&
		   !ag_keyset_has_kid(k, "A"), "has_kid");
		/* refcount: a reference outlives the first unref */
		ok(ag_keyset_ref(k) == k, "ref returns keyset");
		ag_keyset_unref(k);
		ok(ag_keyset_count(k) == 2, "keyset alive after one unref");
		ag_keyset_unref(k);
		free(s);
	}
	{
		/* 65 keys */
		json_t	   *keys = json_array(),
				   *doc;

		for (int i = 0; i < AG_JWKS_MAX_KEYS + 1; i++)
			json_array_append_new(keys, jwk(&hs32, NULL, NULL));
		doc = json_pack("{s:o}", "keys", keys);
		s = json_dumps(doc, JSON_COMPACT);
		expect_jwks("65 keys", s, 0);
		free(s);
		json_decref(doc);
	}
	{
		char		err[AG_JWT_ERRLEN];

		ok(ag_keyset_load_file("/nonexistent/jwks.json", err, sizeof(err)) == NULL &&
		   strstr(err, "/nonexistent/jwks.json") != NULL, "load_file names the path: %s", err);
	}
}

/* Two threads verifying with one keyset. */
static void *
thread_verify(void *arg)
{
	char	   *t = arg;
	long		bad = 0;

	for (int i = 0; i < 200; i++)
	{
		ag_jwt_result res;
		char		err[AG_JWT_ERRLEN];

		if (ag_jwt_verify(ks, t, strlen(t), &policy, NOW, &res, err, sizeof(err)) != AG_JWT_OK)
			bad++;
		ag_jwt_result_free(&res);
	}
	return (void *) bad;
}

static void
test_threads(void)
{
	char	   *t1 = tok(hdr("ES256", "ec256"), STD, &ec256, "ES256");
	char	   *t2 = tok(hdr("RS256", "rsa1"), STD, &rsa1, "RS256");
	pthread_t	a,
				b;
	void	   *ra,
			   *rb;

	pthread_create(&a, NULL, thread_verify, t1);
	pthread_create(&b, NULL, thread_verify, t2);
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	ok(ra == NULL && rb == NULL, "concurrent verification");
	free(t1);
	free(t2);
}

static void
test_peek_kid(void)
{
	char	   *t = tok(hdr("RS256", "some-kid"), STD, &rsa1, "RS256");
	char		kid[128];

	ok(ag_jwt_peek_kid(t, strlen(t), kid, sizeof(kid)) == 1 && strcmp(kid, "some-kid") == 0, "peek kid");
	ok(ag_jwt_peek_kid(t, strlen(t), kid, 8) == 0, "peek kid too long for the buffer");
	free(t);
	t = tok(hdr("RS256", NULL), STD, &rsa1, "RS256");
	ok(ag_jwt_peek_kid(t, strlen(t), kid, sizeof(kid)) == 0, "peek kid: none");
	free(t);
	t = tok("{\"alg\":\"RS256\",\"kid\":7}", STD, &rsa1, "RS256");
	ok(ag_jwt_peek_kid(t, strlen(t), kid, sizeof(kid)) == 0, "peek kid: not a string");
	free(t);
	ok(ag_jwt_peek_kid("e30", 3, kid, sizeof(kid)) == 0, "peek kid: no dot");
	ok(ag_jwt_peek_kid("!!.e30.e30", 10, kid, sizeof(kid)) == 0, "peek kid: bad base64");
}

static void
test_policy_guards(void)
{
	char	   *t = tok(hdr("HS256", "hs1"), STD, &hs32, "HS256");
	ag_jwt_result res;
	char		err[AG_JWT_ERRLEN];
	ag_jwt_policy p = policy;

	p.issuer = NULL;
	ok(ag_jwt_verify(ks, t, strlen(t), &p, NOW, &res, err, sizeof(err)) != AG_JWT_OK, "no issuer configured");
	p = policy;
	p.audience = NULL;
	ok(ag_jwt_verify(ks, t, strlen(t), &p, NOW, &res, err, sizeof(err)) != AG_JWT_OK, "no audience configured");
	ok(ag_jwt_verify(NULL, t, strlen(t), &policy, NOW, &res, err, sizeof(err)) == AG_JWT_NO_KEY, "no keyset");
	p = policy;
	p.leeway = 0;
	ok(ag_jwt_verify(ks, t, strlen(t), &p, 1700000300, &res, err, sizeof(err)) == AG_JWT_EXPIRED, "exp == now expired without leeway");
	ok(ag_jwt_verify(ks, t, strlen(t), &p, 1700000299, &res, err, sizeof(err)) == AG_JWT_OK, "exp == now+1 valid without leeway");
	ag_jwt_result_free(&res);
	ok(strcmp(ag_jwt_status_name(AG_JWT_BAD_SIGNATURE), "bad signature") == 0, "status names");
	free(t);
}

int
main(void)
{
	char	   *doc;
	char		err[AG_JWT_ERRLEN];

	rsa1.pk = keygen("RSA", NULL, 2048);
	rsa2.pk = keygen("RSA", NULL, 3072);
	ec256.pk = keygen("EC", "P-256", 0);
	ec384.pk = keygen("EC", "P-384", 0);
	ec521.pk = keygen("EC", "P-521", 0);
	ed1.pk = keygen("ED25519", NULL, 0);
	attacker.pk = keygen("RSA", NULL, 2048);
	hs32.seclen = 32;
	hs64.seclen = 64;
	for (int i = 0; i < 64; i++)
	{
		hs32.sec[i] = (unsigned char) (i * 7 + 1);
		hs64.sec[i] = (unsigned char) (i * 13 + 5);
	}

	doc = jwks_of(jwk(&rsa1, "rsa1", "RS256"), jwk(&rsa2, "rsa2", NULL),
				  jwk(&ec256, "ec256", NULL), jwk(&ec384, "ec384", "ES384"),
				  jwk(&ec521, "ec521", NULL), jwk(&ed1, "ed1", "EdDSA"),
				  jwk(&hs32, "hs1", "HS256"), jwk(&hs64, "hs64", NULL), NULL);
	ks = ag_keyset_parse(doc, strlen(doc), err, sizeof(err));
	if (ks == NULL)
	{
		printf("FAIL: test keyset: %s\n", err);
		return 1;
	}
	free(doc);
	ok(ag_keyset_count(ks) == 8, "8 keys");

	test_b64url();
	test_valid_algorithms();
	test_claims();
	test_scope_claim();
	test_header();
	test_kids_and_keys();
	test_signatures();
	test_encoding();
	test_jwks();
	test_threads();
	test_peek_kid();
	test_policy_guards();

	ag_keyset_unref(ks);
	EVP_PKEY_free(rsa1.pk);
	EVP_PKEY_free(rsa2.pk);
	EVP_PKEY_free(ec256.pk);
	EVP_PKEY_free(ec384.pk);
	EVP_PKEY_free(ec521.pk);
	EVP_PKEY_free(ed1.pk);
	EVP_PKEY_free(attacker.pk);

	return ag_test_report();
}
