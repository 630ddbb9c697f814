/*-------------------------------------------------------------------------
 *
 * token_main.c
 *	  agentgate-token: verify, mint and publish JWTs, and benchmark the
 *	  verifier.
 *
 *	  verify  reads one token from standard input and checks it with the
 *			  same code the proxy uses (exit 0 accepted, 1 rejected, 2 usage);
 *	  mint	  signs a token, with libjwt for HS/RS/ES (an independent signer
 *			  keeps the verifier's tests honest) and with OpenSSL directly
 *			  for PS* and EdDSA, which libjwt 1.10 cannot sign;
 *	  jwks	  prints the JWKS of a PEM public key or an HMAC secret file;
 *	  bench	  measures verifications per CPU-second.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "jwt_int.h"

#define EXIT_REJECT	1
#define EXIT_USAGE	2
#define SECRET_MAX	1024

static void usage(void) __attribute__((noreturn));
static void die(const char *fmt,...) __attribute__((noreturn, format(printf, 1, 2)));

static void
usage(void)
{
	fprintf(stderr,
			"usage:\n"
			"  agentgate-token verify --jwks FILE --issuer ISS --audience AUD [--leeway SECONDS]\n"
			"                         [--now EPOCH] [--identity-claim NAME] [--groups-claim NAME]\n"
			"                         [--scope-claim NAME]\n"
			"      reads one token on standard input (one trailing newline is stripped)\n"
			"  agentgate-token mint (--key PEMFILE | --secret-file FILE) --alg ALG [--kid KID]\n"
			"                       --sub S --iss I --aud A [--ttl SECONDS] [--groups g1,g2]\n"
			"                       [--act actor1,actor2,...] [--scope 'read write']\n"
			"                       [--scp s1,s2 ...]\n"
			"                       [--claim name=jsonvalue ...] [--now EPOCH]\n"
			"  agentgate-token jwks (--key PEMFILE | --secret-file FILE) --kid KID [--alg ALG]\n"
			"  agentgate-token bench [--seconds N]\n");
	exit(EXIT_USAGE);
}

static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "agentgate-token: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(EXIT_USAGE);
}

static int64_t
parse_int(const char *s, const char *what, int64_t min, int64_t max)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
		die("%s must be an integer from %" PRId64 " to %" PRId64 ": \"%s\"", what, min, max, s);
	return v;
}

/* Whole file, at most max bytes; *len gets its size. */
static unsigned char *
read_file(const char *path, size_t max, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *buf;

	if (f == NULL)
		die("cannot open \"%s\": %s", path, strerror(errno));
	buf = malloc(max + 1);
	*len = fread(buf, 1, max + 1, f);
	fclose(f);
	if (*len > max)
		die("\"%s\" is larger than %zu bytes", path, max);
	buf[*len] = '\0';
	return buf;
}

static EVP_PKEY *
read_pem_key(const char *path, bool want_private)
{
	FILE	   *f = fopen(path, "r");
	EVP_PKEY   *pk = NULL;

	if (f == NULL)
		die("cannot open \"%s\": %s", path, strerror(errno));
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (pk == NULL && !want_private)
	{
		rewind(f);
		ERR_clear_error();
		pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	}
	fclose(f);
	if (pk == NULL)
		die("\"%s\" holds no %s PEM key", path, want_private ? "private" : "usable");
	return pk;
}

/* ---- verify ---- */

static int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{"jwks", required_argument, NULL, 'j'},
		{"issuer", required_argument, NULL, 'i'},
		{"audience", required_argument, NULL, 'a'},
		{"leeway", required_argument, NULL, 'l'},
		{"now", required_argument, NULL, 'n'},
		{"identity-claim", required_argument, NULL, 'c'},
		{"groups-claim", required_argument, NULL, 'g'},
		{"scope-claim", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0}
	};
	const char *jwks = NULL;
	ag_jwt_policy pol = {NULL, NULL, AG_JWT_DEFAULT_LEEWAY, NULL, NULL, NULL};
	time_t		now = time(NULL);
	char		err[AG_JWT_ERRLEN];
	char	   *buf;
	size_t		len;
	ag_keyset  *ks;
	ag_jwt_result res;
	ag_jwt_status st;
	int			c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'j':
				jwks = optarg;
				break;
			case 'i':
				pol.issuer = optarg;
				break;
			case 'a':
				pol.audience = optarg;
				break;
			case 'l':
				pol.leeway = (int) parse_int(optarg, "--leeway", 0, 86400);
				break;
			case 'n':
				now = (time_t) parse_int(optarg, "--now", 0, INT64_MAX / 2);
				break;
			case 'c':
				pol.identity_claim = optarg;
				break;
			case 'g':
				pol.groups_claim = optarg;
				break;
			case 'o':
				pol.scope_claim = optarg;
				break;
			default:
				usage();
		}
	}
	if (optind != argc || jwks == NULL || pol.issuer == NULL || pol.audience == NULL)
		usage();
	if ((ks = ag_keyset_load_file(jwks, err, sizeof(err))) == NULL)
		die("%s", err);

	/*
	 * Exactly the bytes given, less one trailing newline: a second newline,
	 * a CR or a NUL stay and make the token invalid.  Read one byte past
	 * the limit (plus the newline) to know it was exceeded.
	 */
	buf = malloc(AG_JWT_MAX_TOKEN + 3);
	len = fread(buf, 1, AG_JWT_MAX_TOKEN + 2, stdin);
	if (len > 0 && buf[len - 1] == '\n')
		len--;

	st = ag_jwt_verify(ks, buf, len, &pol, now, &res, err, sizeof(err));
	free(buf);
	ag_keyset_unref(ks);
	if (st != AG_JWT_OK)
	{
		fprintf(stderr, "rejected (%s): %s\n", ag_jwt_status_name(st), err);
		return EXIT_REJECT;
	}
	{
		json_t	   *groups = json_array();
		json_t	   *out;
		char	   *s;

		for (int i = 0; i < res.ngroups; i++)
			json_array_append_new(groups, json_string(res.groups[i]));
		out = json_pack("{s:s,s:o,s:I,s:o,s:s}",
						"identity", res.identity, "groups", groups,
						"exp", (json_int_t) res.exp,
						"kid", res.kid[0] ? json_string(res.kid) : json_null(),
						"alg", res.alg);
		/* delegated tokens only, so that other output stays as it was */
		if (res.nchain > 0)
		{
			json_t	   *chain = json_array();

			for (int i = 0; i < res.nchain; i++)
				json_array_append_new(chain, json_string(res.chain[i]));
			json_object_set_new(out, "chain", chain);
		}
		if (res.nscopes > 0)
		{
			json_t	   *scopes = json_array();

			for (int i = 0; i < res.nscopes; i++)
				json_array_append_new(scopes, json_string(res.scopes[i]));
			json_object_set_new(out, "scopes", scopes);
		}
		s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(out);
	}
	ag_jwt_result_free(&res);
	return 0;
}

/* ---- signing with OpenSSL (PS*, EdDSA, and the benchmark) ---- */

/*
 * header.payload.signature over the given JSON texts.  Used for the
 * algorithms libjwt 1.10 lacks, and by the benchmark.
 */
static char *
openssl_sign(EVP_PKEY *pk, const unsigned char *secret, size_t secretlen,
			 const char *alg, const char *hdr, const char *payload)
{
	const ag_alg *a = ag_alg_lookup(alg);
	size_t		hl = strlen(hdr),
				pl = strlen(payload);
	size_t		inlen = AG_B64URL_ENCODED_LEN(hl) + 1 + AG_B64URL_ENCODED_LEN(pl);
	char	   *tok = malloc(inlen + 1 + AG_B64URL_ENCODED_LEN(2048) + 1);
	unsigned char sig[2048];
	size_t		siglen = sizeof(sig);
	size_t		o;

	if (a == NULL)
		die("unknown alg \"%s\"", alg);
	o = ag_b64url_encode((const unsigned char *) hdr, hl, tok);
	tok[o++] = '.';
	o += ag_b64url_encode((const unsigned char *) payload, pl, tok + o);

	if (a->fam == AG_FAM_HS)
	{
		unsigned int n = 0;

		if (secret == NULL)
			die("%s needs --secret-file", alg);
		HMAC(ag_jwt_md(a->mdidx), secret, (int) secretlen, (unsigned char *) tok, o, sig, &n);
		siglen = n;
	}
	else
	{
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_PKEY_CTX *pctx = NULL;
		bool		fits = pk != NULL &&
			((a->fam == AG_FAM_RS || a->fam == AG_FAM_PS) ? EVP_PKEY_is_a(pk, "RSA") :
			 a->fam == AG_FAM_ED ? EVP_PKEY_is_a(pk, "ED25519") :
			 EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == (a->crv == AG_CRV_P256 ? 256 : a->crv == AG_CRV_P384 ? 384 : 521));

		if (!fits)
			die("the key does not fit alg %s", alg);
		if (EVP_DigestSignInit(ctx, &pctx, ag_jwt_md(a->mdidx), NULL, pk) != 1 ||
			(a->fam == AG_FAM_PS &&
			 (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
			  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0)) ||
			EVP_DigestSign(ctx, sig, &siglen, (unsigned char *) tok, o) != 1)
			die("signing with %s failed", alg);
		EVP_MD_CTX_free(ctx);
		if (a->fam == AG_FAM_ES)
		{
			/* DER to the JWS form, R||S of fixed width */
			const unsigned char *p = sig;
			ECDSA_SIG  *es = d2i_ECDSA_SIG(NULL, &p, (long) siglen);
			int			coord = (EVP_PKEY_get_bits(pk) + 7) / 8;

			BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, coord);
			BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + coord, coord);
			ECDSA_SIG_free(es);
			siglen = 2 * (size_t) coord;
		}
	}
	tok[o++] = '.';
	ag_b64url_encode(sig, siglen, tok + o);
	return tok;
}

/* ---- mint ---- */

static int
cmd_mint(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"secret-file", required_argument, NULL, 'S'},
		{"alg", required_argument, NULL, 'A'},
		{"kid", required_argument, NULL, 'K'},
		{"sub", required_argument, NULL, 's'},
		{"iss", required_argument, NULL, 'i'},
		{"aud", required_argument, NULL, 'a'},
		{"ttl", required_argument, NULL, 't'},
		{"groups", required_argument, NULL, 'g'},
		{"act", required_argument, NULL, 'x'},
		{"scope", required_argument, NULL, 'o'},
		{"scp", required_argument, NULL, 'p'},
		{"claim", required_argument, NULL, 'c'},
		{"now", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0}
	};
	const char *keyfile = NULL,
			   *secretfile = NULL,
			   *algname = NULL,
			   *kid = NULL,
			   *sub = NULL,
			   *iss = NULL,
			   *aud = NULL,
			   *groups = NULL,
			   *act = NULL,
			   *scope = NULL;
	json_t	   *scp = NULL;
	int64_t		ttl = 300,
				now = (int64_t) time(NULL);
	json_t	   *claims = json_object(),
			   *extra = json_object();
	const ag_alg *a;
	unsigned char *key;
	size_t		keylen;
	char	   *payload,
			   *token;
	int			c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'k':
				keyfile = optarg;
				break;
			case 'S':
				secretfile = optarg;
				break;
			case 'A':
				algname = optarg;
				break;
			case 'K':
				kid = optarg;
				break;
			case 's':
				sub = optarg;
				break;
			case 'i':
				iss = optarg;
				break;
			case 'a':
				aud = optarg;
				break;
			case 't':
				ttl = parse_int(optarg, "--ttl", -315360000, 315360000);
				break;
			case 'g':
				groups = optarg;
				break;
			case 'x':
				act = optarg;
				break;
			case 'o':
				scope = optarg;
				break;
			case 'p':
				{
					/*
					 * --scp builds Okta's array-valued "scp" claim; it may be
					 * given more than once and each value may be a comma
					 * list.  Empty entries are kept, so that tests can mint
					 * tokens the proxy must refuse.
					 */
					char	   *p = optarg;

					if (scp == NULL)
						scp = json_array();
					for (;;)
					{
						char	   *comma = strchr(p, ',');
						size_t		n = comma ? (size_t) (comma - p) : strlen(p);

						json_array_append_new(scp, json_stringn(p, n));
						if (comma == NULL)
							break;
						p = comma + 1;
					}
					break;
				}
			case 'n':
				now = parse_int(optarg, "--now", 0, INT64_MAX / 4);
				break;
			case 'c':
				{
					char	   *eq = strchr(optarg, '=');
					json_t	   *v;
					json_error_t jerr;

					if (eq == NULL || eq == optarg)
						die("--claim wants name=jsonvalue");
					*eq = '\0';
					if ((v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr)) == NULL)
						die("--claim %s: value is not JSON: %s", optarg, jerr.text);
					json_object_set_new(extra, optarg, v);
					break;
				}
			default:
				usage();
		}
	}
	if (optind != argc || algname == NULL || sub == NULL || iss == NULL || aud == NULL ||
		(keyfile == NULL) == (secretfile == NULL))
		usage();
	if ((a = ag_alg_lookup(algname)) == NULL)
		die("unsupported alg \"%s\"", algname);
	if ((a->fam == AG_FAM_HS) != (secretfile != NULL))
		die("HS* algorithms take --secret-file, the others --key");

	json_object_set_new(claims, "iss", json_string(iss));
	json_object_set_new(claims, "sub", json_string(sub));
	json_object_set_new(claims, "aud", json_string(aud));
	json_object_set_new(claims, "iat", json_integer(now));
	json_object_set_new(claims, "exp", json_integer(now + ttl));
	if (groups)
	{
		json_t	   *arr = json_array();
		char	   *dup = strdup(groups),
				   *save = NULL;

		for (char *g = strtok_r(dup, ",", &save); g; g = strtok_r(NULL, ",", &save))
			json_array_append_new(arr, json_string(g));
		json_object_set_new(claims, "groups", arr);
		free(dup);
	}
	if (act)
	{
		/*
		 * --act names the current actor first, then the actor it acts for,
		 * and so on: "subagent-7,ci-pipeline" becomes
		 * {"sub":"subagent-7","act":{"sub":"ci-pipeline"}} (RFC 8693 4.1).
		 */
		char	   *dup = strdup(act),
				   *save = NULL;
		json_t	   *outer = NULL,
				   *inner = NULL;

		for (char *x = strtok_r(dup, ",", &save); x; x = strtok_r(NULL, ",", &save))
		{
			json_t	   *lvl = json_object();

			json_object_set_new(lvl, "sub", json_string(x));
			if (inner)
				json_object_set_new(inner, "act", lvl);
			else
				outer = lvl;
			inner = lvl;
		}
		free(dup);
		if (outer == NULL)
			die("--act wants one or more comma-separated identities");
		json_object_set_new(claims, "act", outer);
	}
	if (scope)
		json_object_set_new(claims, "scope", json_string(scope));
	if (scp)
		json_object_set_new(claims, "scp", scp);
	json_object_update(claims, extra);	/* --claim wins, for crafting tests */
	json_decref(extra);
	payload = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(claims);

	if (secretfile)
	{
		/* the secret is the file's bytes, exactly */
		key = read_file(secretfile, SECRET_MAX, &keylen);
		if (keylen < 32)
			die("the secret must be at least 32 bytes (it has %zu)", keylen);
	}
	else
		key = read_file(keyfile, 64 * 1024, &keylen);

	if (a->fam == AG_FAM_PS || a->fam == AG_FAM_ED)
	{
		/* OpenSSL path: libjwt 1.10 has neither RSASSA-PSS nor EdDSA */
		EVP_PKEY   *pk = read_pem_key(keyfile, true);
		json_t	   *h = json_pack("{s:s,s:s}", "alg", a->name, "typ", "JWT");
		char	   *hs;

		if (kid)
			json_object_set_new(h, "kid", json_string(kid));
		hs = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
		token = openssl_sign(pk, NULL, 0, a->name, hs, payload);
		free(hs);
		json_decref(h);
		EVP_PKEY_free(pk);
	}
	else
	{
		/* libjwt path: HS*, RS*, ES* */
		jwt_t	   *jwt = NULL;
		char	   *t;

		if (jwt_new(&jwt) != 0 ||
			jwt_add_grants_json(jwt, payload) != 0 ||
			(kid && jwt_add_header(jwt, "kid", kid) != 0) ||
			jwt_set_alg(jwt, jwt_str_alg(a->name), key, (int) keylen) != 0 ||
			(t = jwt_encode_str(jwt)) == NULL)
			die("libjwt could not sign with %s (does the key fit the alg?)", a->name);
		token = strdup(t);
		free(t);				/* libjwt 1.10 allocates with malloc */
		jwt_free(jwt);
	}
	OPENSSL_cleanse(key, keylen);
	free(key);
	free(payload);
	printf("%s\n", token);
	free(token);
	return 0;
}

/* ---- jwks ---- */

static char *
bn_param_b64(EVP_PKEY *pk, const char *param, int pad)
{
	BIGNUM	   *bn = NULL;
	unsigned char buf[2048];	/* 16384-bit modulus */
	int			n;
	char	   *s;

	if (!EVP_PKEY_get_bn_param(pk, param, &bn))
		die("cannot read %s from the key", param);
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	BN_free(bn);
	if (n <= 0)
		die("cannot encode %s", param);
	s = malloc(AG_B64URL_ENCODED_LEN((size_t) n) + 1);
	ag_b64url_encode(buf, (size_t) n, s);
	return s;
}

static int
cmd_jwks(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"secret-file", required_argument, NULL, 'S'},
		{"kid", required_argument, NULL, 'K'},
		{"alg", required_argument, NULL, 'A'},
		{NULL, 0, NULL, 0}
	};
	const char *keyfile = NULL,
			   *secretfile = NULL,
			   *kid = NULL,
			   *alg = NULL;
	json_t	   *k = json_object(),
			   *doc;
	char	   *s,
			   *a = NULL,
			   *b = NULL;
	char		err[AG_JWT_ERRLEN];
	ag_keyset  *check;
	int			c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'k':
				keyfile = optarg;
				break;
			case 'S':
				secretfile = optarg;
				break;
			case 'K':
				kid = optarg;
				break;
			case 'A':
				alg = optarg;
				break;
			default:
				usage();
		}
	}
	if (optind != argc || kid == NULL || (keyfile == NULL) == (secretfile == NULL))
		usage();

	if (secretfile)
	{
		size_t		len;
		unsigned char *sec = read_file(secretfile, SECRET_MAX, &len);

		a = malloc(AG_B64URL_ENCODED_LEN(len) + 1);
		ag_b64url_encode(sec, len, a);
		OPENSSL_cleanse(sec, len);
		free(sec);
		json_object_set_new(k, "kty", json_string("oct"));
		json_object_set_new(k, "k", json_string(a));
	}
	else
	{
		EVP_PKEY   *pk = read_pem_key(keyfile, false);

		if (EVP_PKEY_is_a(pk, "RSA"))
		{
			json_object_set_new(k, "kty", json_string("RSA"));
			json_object_set_new(k, "n", json_string(a = bn_param_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0)));
			json_object_set_new(k, "e", json_string(b = bn_param_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0)));
		}
		else if (EVP_PKEY_is_a(pk, "EC"))
		{
			int			bits = EVP_PKEY_get_bits(pk);

			if (bits != 256 && bits != 384 && bits != 521)
				die("EC keys must be on P-256, P-384 or P-521");
			json_object_set_new(k, "kty", json_string("EC"));
			json_object_set_new(k, "crv", json_string(bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521"));
			json_object_set_new(k, "x", json_string(a = bn_param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_X, (bits + 7) / 8)));
			json_object_set_new(k, "y", json_string(b = bn_param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_Y, (bits + 7) / 8)));
		}
		else if (EVP_PKEY_is_a(pk, "ED25519"))
		{
			unsigned char raw[32];
			size_t		rawlen = sizeof(raw);

			EVP_PKEY_get_raw_public_key(pk, raw, &rawlen);
			a = malloc(AG_B64URL_ENCODED_LEN(rawlen) + 1);
			ag_b64url_encode(raw, rawlen, a);
			json_object_set_new(k, "kty", json_string("OKP"));
			json_object_set_new(k, "crv", json_string("Ed25519"));
			json_object_set_new(k, "x", json_string(a));
		}
		else
			die("unsupported key type (RSA, EC P-256/384/521 and Ed25519 are)");
		EVP_PKEY_free(pk);
	}
	json_object_set_new(k, "kid", json_string(kid));
	json_object_set_new(k, "use", json_string("sig"));
	if (alg)
		json_object_set_new(k, "alg", json_string(alg));
	doc = json_pack("{s:[o]}", "keys", k);
	s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	/* never print a JWKS the verifier would refuse */
	if ((check = ag_keyset_parse(s, strlen(s), err, sizeof(err))) == NULL || ag_keyset_count(check) != 1)
		die("%s", check ? "the key would be skipped (unsupported alg?)" : err);
	ag_keyset_unref(check);
	printf("%s\n", s);
	free(s);
	free(a);
	free(b);
	json_decref(doc);
	return 0;
}

/* ---- bench ---- */

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Calls per CPU-second of fn over about secs of thread CPU time. */
static double
rate(bool (*fn) (void *), void *arg, double secs)
{
	double		t0 = cpu_now(),
				t;
	long		n = 0;

	do
	{
		for (int i = 0; i < 50; i++)
			if (!fn(arg))
				die("benchmark call failed");
		n += 50;
	} while ((t = cpu_now() - t0) < secs);
	return (double) n / t;
}

typedef struct bench_case
{
	const char *alg;
	EVP_PKEY   *pk;
	char	   *token;
	ag_keyset  *ks;
	/* raw signature check of the same input */
	const unsigned char *msg;
	size_t		msglen;
	unsigned char sig[1024];
	size_t		siglen;
	/* libjwt, where it can */
	char	   *pem;
	size_t		pemlen;
} bench_case;

static const ag_jwt_policy bench_policy = {"https://idp.example.com", "agentgate", 60, NULL, NULL, NULL};

static bool
bench_ours(void *arg)
{
	bench_case *bc = arg;
	ag_jwt_result res;
	char		err[AG_JWT_ERRLEN];
	bool		ok = ag_jwt_verify(bc->ks, bc->token, strlen(bc->token), &bench_policy,
								   1700000000, &res, err, sizeof(err)) == AG_JWT_OK;

	ag_jwt_result_free(&res);
	return ok;
}

static bool
bench_raw(void *arg)
{
	bench_case *bc = arg;
	const ag_alg *a = ag_alg_lookup(bc->alg);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx;
	bool		ok;

	if (a->fam == AG_FAM_HS)
	{
		unsigned char mac[64];
		unsigned int n;

		EVP_MD_CTX_free(ctx);
		return HMAC(ag_jwt_md(a->mdidx), bc->sig, 32, bc->msg, bc->msglen, mac, &n) != NULL;
	}
	EVP_DigestVerifyInit(ctx, &pctx, ag_jwt_md(a->mdidx), NULL, bc->pk);
	if (a->fam == AG_FAM_PS)
	{
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
	}
	ok = EVP_DigestVerify(ctx, bc->sig, bc->siglen, bc->msg, bc->msglen) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

static bool
bench_libjwt(void *arg)
{
	bench_case *bc = arg;
	jwt_t	   *jwt = NULL;
	bool		ok = jwt_decode(&jwt, bc->token, (unsigned char *) bc->pem, (int) bc->pemlen) == 0;

	jwt_free(jwt);
	return ok;
}

static int
cmd_bench(int argc, char **argv)
{
	static const char *algs[] = {"RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"};
	static const unsigned char secret[32] = "0123456789abcdef0123456789abcdef";
	double		secs = 1.0;
	EVP_PKEY   *rsa,
			   *p256,
			   *p384,
			   *ed;

	if (argc == 3 && strcmp(argv[1], "--seconds") == 0)
		secs = (double) parse_int(argv[2], "--seconds", 1, 600);
	else if (argc != 1)
		usage();

	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
	p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	printf("JWT verification, per CPU-second of one thread (%.0f s each)\n", secs);
	printf("%-6s %12s %10s %14s %8s %14s %8s\n",
		   "alg", "ours/s", "us/verify", "raw crypto/s", "ours/raw", "libjwt 1.10/s", "ours/lib");
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
	{
		bench_case bc = {.alg = algs[i]};
		const ag_alg *a = ag_alg_lookup(algs[i]);
		char		hdr[128],
					jwks[4096],
					err[AG_JWT_ERRLEN];
		const char *payload = "{\"iss\":\"https://idp.example.com\",\"sub\":\"agent-7\",\"aud\":\"agentgate\","
			"\"iat\":1700000000,\"exp\":1700000300,\"groups\":[\"analysts\",\"ops\"],"
			"\"email\":\"agent-7@example.com\",\"scope\":\"db:read db:write\"}";
		double		ours,
					raw,
					lib = 0;
		char	   *dot;

		bc.pk = a->fam == AG_FAM_RS || a->fam == AG_FAM_PS ? rsa :
			a->fam == AG_FAM_ED ? ed : a->fam == AG_FAM_HS ? NULL :
			a->crv == AG_CRV_P256 ? p256 : p384;
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"k1\"}", algs[i]);
		bc.token = openssl_sign(bc.pk, secret, sizeof(secret), algs[i], hdr, payload);

		/* a one-key JWKS through the same code as the jwks command */
		if (bc.pk == NULL)
			snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}");
		else if (EVP_PKEY_is_a(bc.pk, "RSA"))
		{
			char	   *n = bn_param_b64(bc.pk, OSSL_PKEY_PARAM_RSA_N, 0);

			snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n);
			free(n);
		}
		else if (EVP_PKEY_is_a(bc.pk, "EC"))
		{
			int			coord = (EVP_PKEY_get_bits(bc.pk) + 7) / 8;
			char	   *x = bn_param_b64(bc.pk, OSSL_PKEY_PARAM_EC_PUB_X, coord),
					   *y = bn_param_b64(bc.pk, OSSL_PKEY_PARAM_EC_PUB_Y, coord);

			snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}]}",
					 coord == 32 ? "P-256" : "P-384", x, y);
			free(x);
			free(y);
		}
		else
		{
			unsigned char rawk[32];
			size_t		rl = sizeof(rawk);
			char		x[64];

			EVP_PKEY_get_raw_public_key(bc.pk, rawk, &rl);
			ag_b64url_encode(rawk, rl, x);
			snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"OKP\",\"kid\":\"k1\",\"crv\":\"Ed25519\",\"x\":\"%s\"}]}", x);
		}
		if ((bc.ks = ag_keyset_parse(jwks, strlen(jwks), err, sizeof(err))) == NULL)
			die("bench keyset: %s", err);
		if (!bench_ours(&bc))
			die("bench token for %s does not verify", algs[i]);

		/* the raw check: same message and signature (DER for ECDSA) */
		dot = strrchr(bc.token, '.');
		bc.msg = (const unsigned char *) bc.token;
		bc.msglen = (size_t) (dot - bc.token);
		ag_b64url_decode(dot + 1, strlen(dot + 1), bc.sig, sizeof(bc.sig), &bc.siglen);
		if (a->fam == AG_FAM_ES)
		{
			ECDSA_SIG  *es = ECDSA_SIG_new();
			unsigned char *der = NULL;
			int			dl;

			ECDSA_SIG_set0(es, BN_bin2bn(bc.sig, (int) bc.siglen / 2, NULL),
						   BN_bin2bn(bc.sig + bc.siglen / 2, (int) bc.siglen / 2, NULL));
			dl = i2d_ECDSA_SIG(es, &der);
			memcpy(bc.sig, der, (size_t) dl);
			bc.siglen = (size_t) dl;
			OPENSSL_free(der);
			ECDSA_SIG_free(es);
		}
		if (a->fam == AG_FAM_HS)
			memcpy(bc.sig, secret, 32);

		ours = rate(bench_ours, &bc, secs);
		raw = rate(bench_raw, &bc, secs);
		if (a->fam == AG_FAM_RS || a->fam == AG_FAM_ES || a->fam == AG_FAM_HS)
		{
			if (bc.pk)
			{
				BIO		   *bio = BIO_new(BIO_s_mem());
				char	   *p;

				PEM_write_bio_PUBKEY(bio, bc.pk);
				bc.pemlen = (size_t) BIO_get_mem_data(bio, &p);
				bc.pem = malloc(bc.pemlen + 1);
				memcpy(bc.pem, p, bc.pemlen);
				bc.pem[bc.pemlen] = '\0';
				BIO_free(bio);
			}
			else
			{
				bc.pem = malloc(sizeof(secret));
				memcpy(bc.pem, secret, sizeof(secret));
				bc.pemlen = sizeof(secret);
			}
			if (bench_libjwt(&bc))
				lib = rate(bench_libjwt, &bc, secs);
			free(bc.pem);
		}
		printf("%-6s %12.0f %10.1f %14.0f %8.2f ", algs[i], ours, 1e6 / ours, raw, ours / raw);
		if (lib > 0)
			printf("%14.0f %8.1f\n", lib, ours / lib);
		else
			printf("%14s %8s\n", "n/a", "-");
		ag_keyset_unref(bc.ks);
		free(bc.token);
	}
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "mint") == 0)
		return cmd_mint(argc - 1, argv + 1);
	if (strcmp(argv[1], "jwks") == 0)
		return cmd_jwks(argc - 1, argv + 1);
	if (strcmp(argv[1], "bench") == 0)
		return cmd_bench(argc - 1, argv + 1);
	usage();
}
