/*-------------------------------------------------------------------------
 *
 * ag_jwt.h
 *	  JWT verification for agentgate: keysets (JWKS) and token policy.
 *
 * This is the contract between the token verifier (jwt.c, jwks.c,
 * b64url.c, keysource.c) and its users (the proxy, agentgate-token, the
 * tests and the fuzz targets).  Verification uses OpenSSL 3 EVP and jansson
 * only; the key decides the algorithm, never the token.
 *
 * Keysets are immutable once built and reference counted, so a reload or a
 * JWKS refresh swaps in a new one while verifications in flight keep the
 * old one alive.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_JWT_H
#define AG_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define AG_JWT_MAX_TOKEN		16384	/* bytes, whole token */
#define AG_JWT_MAX_IDENTITY		63		/* NAMEDATALEN - 1 */
#define AG_JWT_DEFAULT_LEEWAY	60		/* seconds */
#define AG_JWT_ERRLEN			256
#define AG_JWKS_MAX_BYTES		(1024 * 1024)	/* JWKS document size cap */
#define AG_JWKS_MAX_KEYS		64		/* JWKs per document */
#define AG_JWT_MAX_GROUPS		256		/* entries of the groups claim */
#define AG_JWT_MAX_CHAIN		8		/* identities in a delegation chain:
										 * the actors of "act", nested, and
										 * the principal ("sub") */
#define AG_JWT_MAX_SCOPES		32		/* entries of the scope claim */

typedef struct ag_keyset ag_keyset;

/* Parse a JWKS document; NULL with a reason in err on any bad key. */
extern ag_keyset *ag_keyset_parse(const char *json, size_t len,
								  char *err, size_t errlen);
extern ag_keyset *ag_keyset_load_file(const char *path,
									  char *err, size_t errlen);
extern ag_keyset *ag_keyset_ref(ag_keyset *ks);
extern void ag_keyset_unref(ag_keyset *ks);
extern int	ag_keyset_count(const ag_keyset *ks);
extern int	ag_keyset_has_kid(const ag_keyset *ks, const char *kid);
/* JWKs that were ignored at load (unknown kty/crv/alg, "use" not "sig"). */
extern int	ag_keyset_skipped(const ag_keyset *ks);

/* What a token must satisfy besides its signature. */
typedef struct ag_jwt_policy
{
	const char *issuer;			/* required, exact match */
	const char *audience;		/* required; aud string or array must hold it */
	int			leeway;			/* seconds; AG_JWT_DEFAULT_LEEWAY */
	const char *identity_claim; /* NULL means "sub" */
	const char *groups_claim;	/* NULL means "groups" */
	const char *scope_claim;	/* NULL means "scope"; another name may
								 * hold a string or an array (jwt.c) */
} ag_jwt_policy;

/* What a verified token says. */
typedef struct ag_jwt_result
{
	char		identity[AG_JWT_MAX_IDENTITY + 1];
	char	  **groups;			/* ngroups strings, malloc'd */
	int			ngroups;
	int64_t		exp;			/* seconds since the epoch */
	char		kid[128];		/* kid of the key that verified it, or "" */
	char		alg[8];
	char	   *claims_json;	/* the payload, re-serialised compact JSON */

	/*
	 * Delegation (RFC 8693 "act"): chain[0] is the current actor (act.sub),
	 * each next entry the actor it acts for (act.act.sub, ...), and the
	 * last one the principal ("sub").  nchain is 0 for a token without
	 * "act"; otherwise 2 to AG_JWT_MAX_CHAIN.
	 */
	char	  **chain;
	int			nchain;
	/*
	 * The scope claim's entries: "scope" split at spaces (RFC 8693 / RFC
	 * 6749 syntax), or the entries of the policy's scope_claim; claims_json
	 * then carries them as the standard "scope" string.
	 */
	char	  **scopes;
	int			nscopes;
} ag_jwt_result;

/* Return codes of ag_jwt_verify (0 is success). */
typedef enum ag_jwt_status
{
	AG_JWT_OK = 0,
	AG_JWT_MALFORMED,			/* size, segments, base64url, JSON */
	AG_JWT_BAD_HEADER,			/* alg, typ, crit, kid */
	AG_JWT_NO_KEY,				/* no key fits kid/alg */
	AG_JWT_BAD_SIGNATURE,
	AG_JWT_EXPIRED,
	AG_JWT_NOT_YET_VALID,		/* nbf, or iat in the future */
	AG_JWT_BAD_CLAIMS			/* iss, aud, identity, groups, types */
} ag_jwt_status;

extern const char *ag_jwt_status_name(ag_jwt_status st);

/*
 * Verify token (exactly len bytes; a NUL inside is an error) against ks and
 * policy at time now.  On success fills *out (free with ag_jwt_result_free);
 * on failure writes a one-line reason to err and leaves *out empty.
 */
extern ag_jwt_status ag_jwt_verify(const ag_keyset *ks,
								   const char *token, size_t len,
								   const ag_jwt_policy *policy, time_t now,
								   ag_jwt_result *out,
								   char *err, size_t errlen);
extern void ag_jwt_result_free(ag_jwt_result *res);

/*
 * The kid named in the (unverified) header of token, for asking the key
 * source to refetch after AG_JWT_NO_KEY.  Returns 1 and copies it into
 * kid (kidlen bytes with the NUL) if there is one that fits, else 0.
 */
extern int	ag_jwt_peek_kid(const char *token, size_t len, char *kid, size_t kidlen);

/*
 * Key sources: a JWKS file (re-read on ag_keysource_reload, e.g. on SIGHUP)
 * and/or a jwks_uri fetched over HTTPS, cached, refreshed every refresh_s
 * seconds and, rate limited, when a token names an unknown kid.  Fetching
 * happens on a background thread; ag_keysource_get never blocks on network.
 */
typedef struct ag_keysource ag_keysource;

typedef struct ag_keysource_config
{
	const char *jwks_file;		/* may be NULL */
	const char *jwks_uri;		/* may be NULL; https:// only */
	const char *ca_file;		/* CA bundle for jwks_uri; NULL = system */
	int			refresh_s;		/* periodic refresh of jwks_uri; <= 0: 300 */
	int			min_refetch_s;	/* rate limit for unknown-kid refetches;
								 * <= 0: 30 */
} ag_keysource_config;

extern ag_keysource *ag_keysource_new(const ag_keysource_config *cfg,
									  char *err, size_t errlen);
/* Current keyset with a reference the caller must drop; NULL if none yet. */
extern ag_keyset *ag_keysource_get(ag_keysource *src);
/* Re-read the file (and refetch the uri); keeps the old keys on error. */
extern int	ag_keysource_reload(ag_keysource *src, char *err, size_t errlen);
/*
 * A token named a kid we do not have (kid NULL: it named none and no key
 * fitted): ask for a rate-limited refetch.
 */
extern void ag_keysource_unknown_kid(ag_keysource *src, const char *kid);
extern void ag_keysource_free(ag_keysource *src);
/* Wait up to timeout_ms for a keyset to be available; 1 if there is one. */
extern int	ag_keysource_wait(ag_keysource *src, int timeout_ms);
/* The last fetch or reload error ("" if none), copied into buf. */
extern void ag_keysource_last_error(ag_keysource *src, char *buf, size_t len);

#endif							/* AG_JWT_H */
