/*-------------------------------------------------------------------------
 *
 * limits.c
 *	  Token buckets, the per-peer rate table and the per-identity
 *	  connection counts (see ag_limits.h).  No I/O, no clock: the caller
 *	  passes the time, so the tests can drive it.
 *
 *-------------------------------------------------------------------------
 */
#include "ag_limits.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int
ag_bucket_take(ag_bucket *b, double now, double rate, double burst)
{
	if (b->stamp == 0)
	{
		b->tokens = burst;
		b->stamp = now;
	}
	else if (now > b->stamp)
	{
		b->tokens += (now - b->stamp) * rate;
		if (b->tokens > burst)
			b->tokens = burst;
		b->stamp = now;
	}
	/* a clock that steps back only delays the refill */
	if (b->tokens >= 1.0)
	{
		b->tokens -= 1.0;
		return 1;
	}
	return 0;
}

void
ag_peer_key_from_sockaddr(const struct sockaddr *sa, socklen_t len, ag_peer_key *key)
{
	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in))
	{
		const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

		key->b[10] = 0xff;
		key->b[11] = 0xff;
		memcpy(key->b + 12, &in->sin_addr, 4);
	}
	else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6))
	{
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (memcmp(in6->sin6_addr.s6_addr, mapped, 12) == 0)
			memcpy(key->b, in6->sin6_addr.s6_addr, 16);
		else
			memcpy(key->b, in6->sin6_addr.s6_addr, 8);	/* the /64 */
	}
}

/* FNV-1a over the bytes, started from a per-process seed. */
static uint64_t
hash_bytes(uint64_t seed, const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t	h = 0xcbf29ce484222325ULL ^ seed;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	/* final mix so that the low bits depend on every byte */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

#define RATE_WAYS 4

typedef struct rate_slot
{
	ag_peer_key key;
	ag_bucket	bucket;			/* stamp 0 = free slot */
	double		used;			/* last lookup, for LRU */
} rate_slot;

struct ag_rate_table
{
	uint64_t	seed;
	size_t		nsets;			/* a power of two */
	rate_slot  *slots;			/* nsets * RATE_WAYS */
};

ag_rate_table *
ag_rate_table_new(size_t slots, uint64_t seed)
{
	ag_rate_table *t = calloc(1, sizeof(*t));
	size_t		nsets = 1;

	if (t == NULL)
		return NULL;
	while (nsets * RATE_WAYS < slots)
		nsets <<= 1;
	t->nsets = nsets;
	t->seed = seed;
	t->slots = calloc(nsets * RATE_WAYS, sizeof(rate_slot));
	if (t->slots == NULL)
	{
		free(t);
		return NULL;
	}
	return t;
}

void
ag_rate_table_free(ag_rate_table *t)
{
	if (t == NULL)
		return;
	free(t->slots);
	free(t);
}

int
ag_rate_allow(ag_rate_table *t, const ag_peer_key *key, double now,
			  double rate, double burst)
{
	rate_slot  *set = t->slots +
		(hash_bytes(t->seed, key->b, sizeof(key->b)) & (t->nsets - 1)) * RATE_WAYS;
	rate_slot  *victim = NULL;
	int			i;

	for (i = 0; i < RATE_WAYS; i++)
	{
		rate_slot  *s = &set[i];

		if (s->bucket.stamp != 0 && memcmp(&s->key, key, sizeof(*key)) == 0)
		{
			s->used = now;
			return ag_bucket_take(&s->bucket, now, rate, burst);
		}
		if (victim == NULL || s->bucket.stamp == 0 ||
			(victim->bucket.stamp != 0 && s->used < victim->used))
			victim = s;
	}
	memset(victim, 0, sizeof(*victim));
	victim->key = *key;
	victim->used = now;
	return ag_bucket_take(&victim->bucket, now, rate, burst);
}

typedef struct ident_entry
{
	struct ident_entry *next;	/* hash chain */
	struct ident_entry *mprev;	/* list of marked entries */
	struct ident_entry *mnext;
	uint64_t	hash;
	int			count;
	int			marked;
	char		identity[];
} ident_entry;

struct ag_ident_table
{
	uint64_t	seed;
	size_t		nbuckets;		/* a power of two */
	ident_entry **buckets;
	int			distinct;
	int			total;
	int			nmarked;
	ident_entry *marked;
};

ag_ident_table *
ag_ident_table_new(uint64_t seed)
{
	ag_ident_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->seed = seed;
	t->nbuckets = 64;
	t->buckets = calloc(t->nbuckets, sizeof(ident_entry *));
	if (t->buckets == NULL)
	{
		free(t);
		return NULL;
	}
	return t;
}

void
ag_ident_table_free(ag_ident_table *t)
{
	size_t		i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nbuckets; i++)
	{
		ident_entry *e = t->buckets[i];

		while (e)
		{
			ident_entry *n = e->next;

			free(e);
			e = n;
		}
	}
	free(t->buckets);
	free(t);
}

static ident_entry *
lookup(const ag_ident_table *t, const char *identity, uint64_t h)
{
	ident_entry *e;

	for (e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->next)
		if (e->hash == h && strcmp(e->identity, identity) == 0)
			return e;
	return NULL;
}

static void
grow(ag_ident_table *t)
{
	size_t		n = t->nbuckets * 2;
	ident_entry **b = calloc(n, sizeof(ident_entry *));
	size_t		i;

	if (b == NULL)
		return;					/* longer chains, still correct */
	for (i = 0; i < t->nbuckets; i++)
	{
		ident_entry *e = t->buckets[i];

		while (e)
		{
			ident_entry *next = e->next;

			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static void
unmark(ag_ident_table *t, ident_entry *e)
{
	if (!e->marked)
		return;
	if (e->mprev)
		e->mprev->mnext = e->mnext;
	else
		t->marked = e->mnext;
	if (e->mnext)
		e->mnext->mprev = e->mprev;
	e->mprev = e->mnext = NULL;
	e->marked = 0;
	t->nmarked--;
}

ag_ident_result
ag_ident_acquire(ag_ident_table *t, const char *identity, int per_identity, int total)
{
	uint64_t	h = hash_bytes(t->seed, identity, strlen(identity));
	ident_entry *e = lookup(t, identity, h);
	size_t		len;

	if (t->total >= total)
		return AG_IDENT_OVER_TOTAL;
	if (e && e->count >= per_identity)
		return AG_IDENT_OVER_IDENTITY;
	if (e == NULL)
	{
		if (per_identity < 1)
			return AG_IDENT_OVER_IDENTITY;
		len = strlen(identity);
		e = calloc(1, sizeof(*e) + len + 1);
		if (e == NULL)
			return AG_IDENT_NOMEM;
		memcpy(e->identity, identity, len + 1);
		e->hash = h;
		e->next = t->buckets[h & (t->nbuckets - 1)];
		t->buckets[h & (t->nbuckets - 1)] = e;
		t->distinct++;
		if ((size_t) t->distinct > t->nbuckets)
			grow(t);
	}
	e->count++;
	t->total++;
	return AG_IDENT_OK;
}

void
ag_ident_release(ag_ident_table *t, const char *identity)
{
	uint64_t	h = hash_bytes(t->seed, identity, strlen(identity));
	ident_entry **pp;

	for (pp = &t->buckets[h & (t->nbuckets - 1)]; *pp; pp = &(*pp)->next)
	{
		ident_entry *e = *pp;

		if (e->hash != h || strcmp(e->identity, identity) != 0)
			continue;
		e->count--;
		t->total--;
		if (e->count <= 0)
		{
			unmark(t, e);
			*pp = e->next;
			t->distinct--;
			free(e);
		}
		return;
	}
}

int
ag_ident_count(const ag_ident_table *t, const char *identity)
{
	ident_entry *e = lookup(t, identity, hash_bytes(t->seed, identity, strlen(identity)));

	return e ? e->count : 0;
}

int
ag_ident_total(const ag_ident_table *t)
{
	return t->total;
}

int
ag_ident_distinct(const ag_ident_table *t)
{
	return t->distinct;
}

int
ag_ident_mark(ag_ident_table *t, const char *identity)
{
	ident_entry *e = lookup(t, identity, hash_bytes(t->seed, identity, strlen(identity)));

	if (e == NULL || e->marked)
		return 0;
	e->marked = 1;
	e->mprev = NULL;
	e->mnext = t->marked;
	if (t->marked)
		t->marked->mprev = e;
	t->marked = e;
	t->nmarked++;
	return 1;
}

int
ag_ident_nmarked(const ag_ident_table *t)
{
	return t->nmarked;
}

int
ag_ident_take_marked(ag_ident_table *t, void (*fn) (void *arg, const char *identity),
					 void *arg)
{
	int			n = 0;

	while (t->marked)
	{
		ident_entry *e = t->marked;

		unmark(t, e);
		fn(arg, e->identity);
		n++;
	}
	return n;
}
