/*-------------------------------------------------------------------------
 *
 * tokcache.c
 *	  The cache of verified tokens and their login() answers (see
 *	  ag_tokcache.h for what it promises).
 *
 * A chained hash table on the token's digest, with every entry also on
 * one list from the most to the least recently stored, the end a full
 * table gives up first.  The digest is SHA-256 over a random per-cache
 * secret and the token: what an entry's key says about the token is
 * nothing without the secret, and nobody can choose tokens that crowd one
 * bucket.  Entries hold no token and no claims; their stamps are wiped
 * when they go.
 *
 * Removing an identity's entries walks the list: revocations and full
 * logins are rare next to cached ones, and the table is small.
 *
 *-------------------------------------------------------------------------
 */
#include "ag_tokcache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

typedef struct tc_entry
{
	struct tc_entry *hnext;		/* bucket chain */
	struct tc_entry *newer;		/* store order */
	struct tc_entry *older;
	uint8_t		digest[AG_TOKCACHE_DIGEST];
	char		identity[AG_JWT_MAX_IDENTITY + 1];
	char		role[AG_PGPROTO_NAMELEN + 1];
	int64_t		exp;
	int64_t		until;			/* min(stored + ttl, exp) */
	int			nstamps;		/* left, taken from the end */
	ag_tokcache_stamp stamps[AG_TOKCACHE_STAMPS];
} tc_entry;

struct ag_tokcache
{
	tc_entry  **buckets;
	size_t		nbuckets;		/* a power of two */
	int			count;
	int			max_entries;
	uint64_t	epoch;
	tc_entry   *newest;
	tc_entry   *oldest;
	uint8_t		secret[32];
};

ag_tokcache *
ag_tokcache_new(int max_entries)
{
	ag_tokcache *c;
	size_t		n = 16;

	if (max_entries < 1)
		max_entries = 1;
	while (n < (size_t) max_entries)
		n <<= 1;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->buckets = calloc(n, sizeof(tc_entry *));
	if (c->buckets == NULL || RAND_priv_bytes(c->secret, sizeof(c->secret)) != 1)
	{
		free(c->buckets);
		free(c);
		return NULL;
	}
	c->nbuckets = n;
	c->max_entries = max_entries;
	c->epoch = 1;
	return c;
}

int
ag_tokcache_digest(const ag_tokcache *c, const char *token, size_t len,
				   uint8_t out[AG_TOKCACHE_DIGEST])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int			ok;

	if (md == NULL)
		return -1;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		EVP_DigestUpdate(md, c->secret, sizeof(c->secret)) == 1 &&
		EVP_DigestUpdate(md, token, len) == 1 &&
		EVP_DigestFinal_ex(md, out, &n) == 1 && n == AG_TOKCACHE_DIGEST;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

static size_t
bucket_of(const ag_tokcache *c, const uint8_t *digest)
{
	uint64_t	h;

	memcpy(&h, digest, sizeof(h));
	return (size_t) (h & (c->nbuckets - 1));
}

static tc_entry *
find(const ag_tokcache *c, const uint8_t *digest)
{
	tc_entry   *e;

	for (e = c->buckets[bucket_of(c, digest)]; e; e = e->hnext)
		if (CRYPTO_memcmp(e->digest, digest, AG_TOKCACHE_DIGEST) == 0)
			return e;
	return NULL;
}

static void
unlink_entry(ag_tokcache *c, tc_entry *e)
{
	tc_entry  **pp = &c->buckets[bucket_of(c, e->digest)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	c->count--;
	OPENSSL_cleanse(e, sizeof(*e));
	free(e);
}

void
ag_tokcache_free(ag_tokcache *c)
{
	if (c == NULL)
		return;
	while (c->oldest)
		unlink_entry(c, c->oldest);
	OPENSSL_cleanse(c->secret, sizeof(c->secret));
	free(c->buckets);
	free(c);
}

int
ag_tokcache_take(ag_tokcache *c, const uint8_t digest[AG_TOKCACHE_DIGEST],
				 int64_t now, ag_tokcache_hit *hit)
{
	tc_entry   *e = find(c, digest);

	if (e == NULL)
		return 0;
	/* an expired token is never served: exp is the hard end */
	if (now >= e->until || now >= e->exp || e->nstamps <= 0)
	{
		unlink_entry(c, e);
		return 0;
	}
	memset(hit, 0, sizeof(*hit));
	memcpy(hit->identity, e->identity, sizeof(hit->identity));
	memcpy(hit->role, e->role, sizeof(hit->role));
	hit->exp = e->exp;
	e->nstamps--;
	hit->stamp = e->stamps[e->nstamps];
	OPENSSL_cleanse(&e->stamps[e->nstamps], sizeof(e->stamps[0]));
	if (e->nstamps == 0)
		unlink_entry(c, e);
	return 1;
}

static int
drop_identity(ag_tokcache *c, const char *identity)
{
	tc_entry   *e;
	tc_entry   *older;
	int			n = 0;

	for (e = c->newest; e; e = older)
	{
		older = e->older;
		if (strcmp(e->identity, identity) == 0)
		{
			unlink_entry(c, e);
			n++;
		}
	}
	return n;
}

int
ag_tokcache_put(ag_tokcache *c, const uint8_t digest[AG_TOKCACHE_DIGEST],
				uint64_t epoch, const char *identity, const char *role,
				int64_t exp, int ttl, int64_t now,
				const ag_tokcache_stamp *stamps, int n)
{
	tc_entry   *e;
	size_t		b;

	if (epoch != c->epoch || n <= 0 || ttl <= 0 || now >= exp ||
		strlen(identity) > AG_JWT_MAX_IDENTITY || strlen(role) > AG_PGPROTO_NAMELEN)
		return 0;
	if (n > AG_TOKCACHE_STAMPS)
		n = AG_TOKCACHE_STAMPS;

	/*
	 * login() has just synced the role's memberships to this token's
	 * claims: another token of the identity (other groups) may not skip
	 * its own login() any more.
	 */
	(void) drop_identity(c, identity);
	if ((e = find(c, digest)) != NULL)
		unlink_entry(c, e);
	while (c->count >= c->max_entries && c->oldest)
		unlink_entry(c, c->oldest);

	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -1;
	memcpy(e->digest, digest, AG_TOKCACHE_DIGEST);
	strcpy(e->identity, identity);
	strcpy(e->role, role);
	e->exp = exp;
	e->until = now + ttl < exp ? now + ttl : exp;
	memcpy(e->stamps, stamps, sizeof(e->stamps[0]) * (size_t) n);
	e->nstamps = n;

	b = bucket_of(c, digest);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->count++;
	return 1;
}

uint64_t
ag_tokcache_epoch(const ag_tokcache *c)
{
	return c->epoch;
}

int
ag_tokcache_drop_identity(ag_tokcache *c, const char *identity)
{
	c->epoch++;
	return drop_identity(c, identity);
}

void
ag_tokcache_clear(ag_tokcache *c)
{
	c->epoch++;
	while (c->oldest)
		unlink_entry(c, c->oldest);
}

int
ag_tokcache_count(const ag_tokcache *c)
{
	return c->count;
}
