/*-------------------------------------------------------------------------
 *
 * ag_limits.h
 *	  agentgate-proxy's admission bookkeeping, without I/O so that it can be
 *	  unit tested: token buckets, a per-peer rate table, and the count of
 *	  connections per identity (which also holds the identities a
 *	  revocation notice asked the proxy to re-check).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_LIMITS_H
#define AG_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * Token bucket: holds at most burst tokens, gains rate tokens per second,
 * and each event takes one.  A new bucket (stamp 0) starts full.
 */
typedef struct ag_bucket
{
	double		tokens;
	double		stamp;			/* seconds; 0 = never used */
} ag_bucket;

/* 1 and one token taken if the event is allowed at time now, else 0. */
extern int	ag_bucket_take(ag_bucket *b, double now, double rate, double burst);

/*
 * A peer as a rate limit sees it: an IPv4 address (in its IPv4-mapped IPv6
 * form, so that both spellings share a bucket) or an IPv6 /64, the smallest
 * block a single host is usually given.  Other families share one key.
 */
typedef struct ag_peer_key
{
	uint8_t		b[16];
} ag_peer_key;

extern void ag_peer_key_from_sockaddr(const struct sockaddr *sa, socklen_t len,
									  ag_peer_key *key);

/*
 * A fixed-size table of buckets by peer (4-way set associative; a peer not
 * in the table takes the least recently used way of its set and starts
 * with a full bucket).  Its memory never grows with the number of peers.
 */
typedef struct ag_rate_table ag_rate_table;

extern ag_rate_table *ag_rate_table_new(size_t slots, uint64_t seed);
extern void ag_rate_table_free(ag_rate_table *t);
extern int	ag_rate_allow(ag_rate_table *t, const ag_peer_key *key, double now,
						  double rate, double burst);

/*
 * Connections per identity.  An identity's entry exists while it holds at
 * least one connection.  The table also counts all connections, so both
 * limits are decided in one place.
 */
typedef struct ag_ident_table ag_ident_table;

typedef enum ag_ident_result
{
	AG_IDENT_OK,
	AG_IDENT_OVER_TOTAL,		/* total >= the total limit */
	AG_IDENT_OVER_IDENTITY,		/* this identity >= the per-identity limit */
	AG_IDENT_NOMEM
} ag_ident_result;

extern ag_ident_table *ag_ident_table_new(uint64_t seed);
extern void ag_ident_table_free(ag_ident_table *t);

/* Count one more connection for identity unless a limit is reached. */
extern ag_ident_result ag_ident_acquire(ag_ident_table *t, const char *identity,
										int per_identity, int total);

/* Give back one connection of identity (it must have been acquired). */
extern void ag_ident_release(ag_ident_table *t, const char *identity);

extern int	ag_ident_count(const ag_ident_table *t, const char *identity);
extern int	ag_ident_total(const ag_ident_table *t);
extern int	ag_ident_distinct(const ag_ident_table *t);

/*
 * Revocation notices.  ag_ident_mark records that identity's status must be
 * re-read: 1 if it was newly marked, 0 if it holds no connection (nothing to
 * close, so nothing to read) or is already marked.  ag_ident_take_marked
 * hands the marked identities to fn (once each) and unmarks them; it returns
 * how many.  An identity whose last connection closes is unmarked too.
 */
extern int	ag_ident_mark(ag_ident_table *t, const char *identity);
extern int	ag_ident_nmarked(const ag_ident_table *t);
extern int	ag_ident_take_marked(ag_ident_table *t,
								 void (*fn) (void *arg, const char *identity),
								 void *arg);

#endif							/* AG_LIMITS_H */
