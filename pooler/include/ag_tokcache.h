/*-------------------------------------------------------------------------
 *
 * ag_tokcache.h
 *	  A short cache of verified tokens and what agentgate.login() answered
 *	  for them, without I/O so that it can be unit tested.
 *
 * An entry is keyed by a keyed hash of the whole token (the token itself is
 * never kept) and holds the identity, the token's exp, the role login()
 * returned and a few session stamps fetched with that login, one per later
 * connection: every connection still gets a stamp of its own.  An entry is
 * served only before min(its store time + ttl, the token's exp), at most
 * once per stamp it holds; then the next connection with that token is
 * verified and logged in again.
 *
 * Invalidation is the owner's: ag_tokcache_drop_identity() when a
 * revocation notice names the identity, ag_tokcache_clear() when a notice
 * may have been missed or what verification depends on changed.  Both
 * advance an epoch; a login that started before may not store its answer
 * (ag_tokcache_put with an older epoch stores nothing), so a revocation
 * seen while a login() was in flight is never undone by its answer.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_TOKCACHE_H
#define AG_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ag_jwt.h"
#include "ag_pgproto.h"

#define AG_TOKCACHE_DIGEST	32
/* Session stamps fetched with one login() for the token's later connections. */
#define AG_TOKCACHE_STAMPS	16

typedef struct ag_tokcache ag_tokcache;

typedef struct ag_tokcache_stamp
{
	char		stamp[AG_PGPROTO_MAX_STAMP + 1];
	char		session[AG_PGPROTO_MAX_STAMP + 1];
} ag_tokcache_stamp;

/* What a hit gives one connection. */
typedef struct ag_tokcache_hit
{
	char		identity[AG_JWT_MAX_IDENTITY + 1];
	char		role[AG_PGPROTO_NAMELEN + 1];
	int64_t		exp;
	ag_tokcache_stamp stamp;	/* taken out of the entry: used once */
} ag_tokcache_hit;

/* At most max_entries tokens; NULL if out of memory or the RNG failed. */
extern ag_tokcache *ag_tokcache_new(int max_entries);
extern void ag_tokcache_free(ag_tokcache *c);

/* The token's key in this cache (keyed with a secret of this cache). */
extern int	ag_tokcache_digest(const ag_tokcache *c, const char *token, size_t len,
							   uint8_t out[AG_TOKCACHE_DIGEST]);

/*
 * 1: a live entry for the token; one of its stamps is taken into *hit.
 * 0: none (an entry past its time, or out of stamps, is removed).
 */
extern int	ag_tokcache_take(ag_tokcache *c, const uint8_t digest[AG_TOKCACHE_DIGEST],
							 int64_t now, ag_tokcache_hit *hit);

/*
 * Store a token's login: live until min(now + ttl, exp), with n stamps.
 * Replaces the identity's other entries (login() synced the role's
 * memberships to this token's claims).  Returns 1 if stored, 0 if not
 * (epoch moved on since the login started, no stamps, ttl <= 0, already
 * expired), -1 if out of memory.
 */
extern int	ag_tokcache_put(ag_tokcache *c, const uint8_t digest[AG_TOKCACHE_DIGEST],
							uint64_t epoch, const char *identity, const char *role,
							int64_t exp, int ttl, int64_t now,
							const ag_tokcache_stamp *stamps, int n);

/* Current epoch: read it when a login starts, pass it to put. */
extern uint64_t ag_tokcache_epoch(const ag_tokcache *c);

/* Remove the identity's entries; advances the epoch.  Returns how many. */
extern int	ag_tokcache_drop_identity(ag_tokcache *c, const char *identity);

/* Remove every entry; advances the epoch. */
extern void ag_tokcache_clear(ag_tokcache *c);

extern int	ag_tokcache_count(const ag_tokcache *c);

#endif							/* AG_TOKCACHE_H */
