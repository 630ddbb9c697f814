/*
 * fuzz_token.c
 *	  libFuzzer target for the JWT verifier and the JWKS parser.
 *
 * The first input byte picks what the rest is fed to:
 *	 0: a token, to ag_jwt_verify, with a fixed keyset (RSA, EC, oct), and
 *		to the base64url decoder, which must only accept canonical input;
 *	 1: a JWKS document, to ag_keyset_parse;
 *	 2: "header NUL payload": both are encoded and HS256-signed here with
 *		the keyset's secret, so that arbitrary headers and payloads get past
 *		the signature and reach the header and claim checks.
 *
 * Every token is verified twice: with the default policy and with
 * scope_claim = "scp" (Okta's and Entra ID's claim), whose scopes must come
 * back in the claims as the standard "scope" string.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ag_jwt.h"
#include "../src/jwt_int.h"

/* 32 bytes of 'k' as an HS256 secret */
static const unsigned char secret[32] = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
static ag_keyset *ks;
static const ag_jwt_policy policies[2] = {
	{"https://idp.example.com", "agentgate", 60, NULL, NULL, NULL},
	{"https://idp.example.com", "agentgate", 60, NULL, NULL, "scp"},
};

static char *
b64_param(EVP_PKEY *pk, const char *name, int pad)
{
	BIGNUM	   *bn = NULL;
	unsigned char buf[512];
	int			n;
	char	   *s;

	EVP_PKEY_get_bn_param(pk, name, &bn);
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	BN_free(bn);
	s = malloc(AG_B64URL_ENCODED_LEN((size_t) n) + 1);
	ag_b64url_encode(buf, (size_t) n, s);
	return s;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY   *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
	EVP_PKEY   *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char	   *n = b64_param(rsa, "n", 0),
			   *x = b64_param(ec, "qx", 32),
			   *y = b64_param(ec, "qy", 32),
				k[64],
				doc[4096],
				err[AG_JWT_ERRLEN];

	ag_b64url_encode(secret, sizeof(secret), k);
	snprintf(doc, sizeof(doc),
			 "{\"keys\":["
			 "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"AQAB\"},"
			 "{\"kty\":\"RSA\",\"kid\":\"rsa2\",\"n\":\"%s\",\"e\":\"AQAB\"},"
			 "{\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
			 "{\"kty\":\"oct\",\"kid\":\"hs1\",\"k\":\"%s\"},"
			 "{\"kty\":\"oct\",\"k\":\"%s\"}]}", n, n, x, y, k, k);
	ks = ag_keyset_parse(doc, strlen(doc), err, sizeof(err));
	if (ks == NULL)
	{
		fprintf(stderr, "fuzz keyset: %s\n", err);
		abort();
	}
	free(n);
	free(x);
	free(y);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	return 0;
}

/* Do the claims carry res's scopes as one "scope" string, and only then? */
static int
scope_forwarded(const ag_jwt_result *res)
{
	json_t	   *claims = json_loads(res->claims_json, 0, NULL);
	json_t	   *scope = json_object_get(claims, "scope");
	const char *s = json_string_value(scope);
	int			good;

	if (res->nscopes == 0 || res->nscopes > AG_JWT_MAX_SCOPES)
		good = res->nscopes == 0 && scope == NULL;
	else
	{
		good = s != NULL;
		for (int i = 0; good && i < res->nscopes; i++)
		{
			size_t		n = strlen(res->scopes[i]);

			good = strncmp(s, res->scopes[i], n) == 0 &&
				s[n] == (i == res->nscopes - 1 ? '\0' : ' ');
			s += n + 1;
		}
	}
	json_decref(claims);
	return good;
}

static void
verify(const char *tok, size_t len)
{
	for (int p = 0; p < 2; p++)
	{
		ag_jwt_result res;
		char		err[AG_JWT_ERRLEN];
		ag_jwt_status st = ag_jwt_verify(ks, tok, len, &policies[p], 1700000000, &res, err, sizeof(err));

		/* a failure must leave nothing behind; a success must be complete */
		if (st != AG_JWT_OK && (res.claims_json || res.groups || res.identity[0] || res.scopes))
			abort();
		if (st == AG_JWT_OK && (res.claims_json == NULL || res.identity[0] == '\0' ||
								strlen(res.identity) > AG_JWT_MAX_IDENTITY ||
								!scope_forwarded(&res)))
			abort();
		ag_jwt_result_free(&res);
	}
}

/* Whatever decodes must re-encode to the very same string. */
static void
b64url_canonical(const char *s, size_t len)
{
	unsigned char *out = malloc(AG_B64URL_DECODED_MAX(len) + 1);
	size_t		n;

	if (ag_b64url_decode(s, len, out, AG_B64URL_DECODED_MAX(len), &n))
	{
		char	   *enc = malloc(AG_B64URL_ENCODED_LEN(n) + 1);

		if (ag_b64url_encode(out, n, enc) != len || memcmp(enc, s, len) != 0)
			abort();
		free(enc);
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 3)
	{
		case 0:
			{
				/* a copy of exact size, so ASan sees any over-read */
				char	   *tok = malloc(size - 1 ? size - 1 : 1);

				memcpy(tok, data + 1, size - 1);
				verify(tok, size - 1);
				b64url_canonical(tok, size - 1);
				{
					char		kid[128];

					if (ag_jwt_peek_kid(tok, size - 1, kid, sizeof(kid)) && strlen(kid) >= sizeof(kid))
						abort();
				}
				free(tok);
				break;
			}
		case 1:
			{
				char		err[AG_JWT_ERRLEN];
				char	   *doc = malloc(size - 1 ? size - 1 : 1);
				ag_keyset  *k;

				memcpy(doc, data + 1, size - 1);
				k = ag_keyset_parse(doc, size - 1, err, sizeof(err));
				if (k == NULL && err[0] == '\0')
					abort();
				ag_keyset_unref(k);
				free(doc);
				break;
			}
		case 2:
			{
				const uint8_t *h = data + 1,
						   *nul = memchr(h, 0, size - 1),
						   *p;
				size_t		hl,
							pl,
							o;
				char	   *tok;
				unsigned char mac[32];
				unsigned int maclen;

				if (nul == NULL)
					return 0;
				hl = (size_t) (nul - h);
				p = nul + 1;
				pl = size - 1 - hl - 1;
				tok = malloc(AG_B64URL_ENCODED_LEN(hl) + AG_B64URL_ENCODED_LEN(pl) + 48);
				o = ag_b64url_encode(h, hl, tok);
				tok[o++] = '.';
				o += ag_b64url_encode(p, pl, tok + o);
				HMAC(EVP_sha256(), secret, sizeof(secret), (unsigned char *) tok, o, mac, &maclen);
				tok[o++] = '.';
				o += ag_b64url_encode(mac, maclen, tok + o);
				verify(tok, o);
				free(tok);
				break;
			}
	}
	return 0;
}
