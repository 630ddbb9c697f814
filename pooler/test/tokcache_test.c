/*
 * tokcache_test.c
 *	  Unit tests for the cache of verified tokens and login() answers:
 *	  hits use each stamp once, ttl and exp end an entry (an expired token
 *	  is never served), revocation and clear remove entries and keep an
 *	  earlier login from storing its answer, another token of the identity
 *	  replaces it, the size bound, digests keyed per cache.
 */
#include "ag_tokcache.h"

#include <stdio.h>
#include <string.h>

#include "ag_test.h"

static ag_tokcache_stamp stamps[AG_TOKCACHE_STAMPS];

static void
make_stamps(int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		snprintf(stamps[i].session, sizeof(stamps[i].session), "%016x", i + 1);
		snprintf(stamps[i].stamp, sizeof(stamps[i].stamp), "ag1.%016x.mac", i + 1);
	}
}

static void
digest(ag_tokcache *c, const char *tok, uint8_t *d)
{
	ok(ag_tokcache_digest(c, tok, strlen(tok), d) == 0, "digest of %s", tok);
}

static void
test_hits(void)
{
	ag_tokcache *c = ag_tokcache_new(8);
	uint8_t		d[AG_TOKCACHE_DIGEST];
	uint8_t		d2[AG_TOKCACHE_DIGEST];
	ag_tokcache_hit h;
	char		seen[AG_TOKCACHE_STAMPS][AG_PGPROTO_MAX_STAMP + 1];
	int			i;
	int			j;
	int			dup = 0;

	make_stamps(4);
	digest(c, "token-a", d);
	digest(c, "token-b", d2);
	ok(memcmp(d, d2, sizeof(d)) != 0, "two tokens, two digests");
	ok(ag_tokcache_take(c, d, 1000, &h) == 0, "empty cache: miss");
	ok(ag_tokcache_put(c, d, ag_tokcache_epoch(c), "alice", "agent_alice", 2000, 10, 1000,
					   stamps, 4) == 1, "stored");
	ok(ag_tokcache_count(c) == 1, "one entry");
	ok(ag_tokcache_take(c, d2, 1000, &h) == 0, "another token: miss");
	for (i = 0; i < 4; i++)
	{
		ok(ag_tokcache_take(c, d, 1001, &h) == 1, "hit %d", i);
		ok(strcmp(h.identity, "alice") == 0 && strcmp(h.role, "agent_alice") == 0 &&
		   h.exp == 2000, "hit %d: identity, role, exp", i);
		snprintf(seen[i], sizeof(seen[i]), "%s", h.stamp.stamp);
		ok(strstr(h.stamp.stamp, h.stamp.session) != NULL, "hit %d: stamp and its session id", i);
	}
	for (i = 0; i < 4; i++)
		for (j = i + 1; j < 4; j++)
			dup += strcmp(seen[i], seen[j]) == 0;
	ok(dup == 0, "each stamp served once");
	ok(ag_tokcache_take(c, d, 1001, &h) == 0, "out of stamps: miss");
	ok(ag_tokcache_count(c) == 0, "and the entry is gone");
	ag_tokcache_free(c);
}

static void
test_time(void)
{
	ag_tokcache *c = ag_tokcache_new(8);
	uint8_t		d[AG_TOKCACHE_DIGEST];
	ag_tokcache_hit h;

	make_stamps(8);
	digest(c, "token-t", d);

	/* ttl ends it */
	ag_tokcache_put(c, d, ag_tokcache_epoch(c), "tom", "agent_tom", 5000, 10, 1000, stamps, 8);
	ok(ag_tokcache_take(c, d, 1009, &h) == 1, "within ttl: hit");
	ok(ag_tokcache_take(c, d, 1010, &h) == 0, "at ttl: miss");
	ok(ag_tokcache_count(c) == 0, "past ttl: removed");

	/* exp ends it before the ttl: an expired token is never served */
	ag_tokcache_put(c, d, ag_tokcache_epoch(c), "tom", "agent_tom", 1005, 60, 1000, stamps, 8);
	ok(ag_tokcache_take(c, d, 1004, &h) == 1, "before exp: hit");
	ok(ag_tokcache_take(c, d, 1005, &h) == 0, "at exp: miss");
	ok(ag_tokcache_put(c, d, ag_tokcache_epoch(c), "tom", "agent_tom", 1005, 60, 1005,
					   stamps, 8) == 0, "an expired token is not stored");
	ok(ag_tokcache_put(c, d, ag_tokcache_epoch(c), "tom", "agent_tom", 1005, 60, 2000,
					   stamps, 8) == 0, "nor one long expired");
	ok(ag_tokcache_take(c, d, 999, &h) == 0, "nothing stored: miss");
	ok(ag_tokcache_put(c, d, ag_tokcache_epoch(c), "tom", "agent_tom", 5000, 0, 1000,
					   stamps, 8) == 0, "ttl 0: not stored");
	ok(ag_tokcache_put(c, d, ag_tokcache_epoch(c), "tom", "agent_tom", 5000, 10, 1000,
					   stamps, 0) == 0, "no stamps: not stored");
	ag_tokcache_free(c);
}

static void
test_revocation(void)
{
	ag_tokcache *c = ag_tokcache_new(8);
	uint8_t		da[AG_TOKCACHE_DIGEST];
	uint8_t		db[AG_TOKCACHE_DIGEST];
	ag_tokcache_hit h;
	uint64_t	e;

	make_stamps(8);
	digest(c, "token-carol", da);
	digest(c, "token-dave", db);
	ag_tokcache_put(c, da, ag_tokcache_epoch(c), "carol", "agent_carol", 5000, 10, 1000, stamps, 8);
	ag_tokcache_put(c, db, ag_tokcache_epoch(c), "dave", "agent_dave", 5000, 10, 1000, stamps, 8);
	ok(ag_tokcache_drop_identity(c, "carol") == 1, "revocation drops carol's entry");
	ok(ag_tokcache_take(c, da, 1001, &h) == 0, "carol: miss at once");
	ok(ag_tokcache_take(c, db, 1001, &h) == 1, "dave: still a hit");
	ok(ag_tokcache_drop_identity(c, "nobody") == 0, "an identity without entries: none dropped");

	/* a login that started before a notice does not store its answer */
	e = ag_tokcache_epoch(c);
	ag_tokcache_drop_identity(c, "carol");
	ok(ag_tokcache_put(c, da, e, "carol", "agent_carol", 5000, 10, 1000, stamps, 8) == 0,
	   "a login older than the notice: not stored");
	ok(ag_tokcache_take(c, da, 1001, &h) == 0, "carol: still a miss");
	e = ag_tokcache_epoch(c);
	ag_tokcache_clear(c);
	ok(ag_tokcache_count(c) == 0, "clear removes every entry");
	ok(ag_tokcache_put(c, da, e, "carol", "agent_carol", 5000, 10, 1000, stamps, 8) == 0,
	   "a login older than a clear: not stored");
	ok(ag_tokcache_put(c, da, ag_tokcache_epoch(c), "carol", "agent_carol", 5000, 10, 1000,
					   stamps, 8) == 1, "a login after them: stored");
	ag_tokcache_free(c);
}

static void
test_identity_and_size(void)
{
	ag_tokcache *c = ag_tokcache_new(3);
	ag_tokcache *other = ag_tokcache_new(3);
	uint8_t		d[6][AG_TOKCACHE_DIGEST];
	uint8_t		od[AG_TOKCACHE_DIGEST];
	ag_tokcache_hit h;
	char		tok[32];
	char		who[32];
	int			i;

	make_stamps(8);
	for (i = 0; i < 6; i++)
	{
		snprintf(tok, sizeof(tok), "token-%d", i);
		digest(c, tok, d[i]);
	}
	digest(other, "token-0", od);
	ok(memcmp(od, d[0], sizeof(od)) != 0, "digests are keyed per cache");

	/* another token of the same identity replaces the first */
	ag_tokcache_put(c, d[0], ag_tokcache_epoch(c), "erin", "agent_erin", 5000, 10, 1000, stamps, 8);
	ag_tokcache_put(c, d[1], ag_tokcache_epoch(c), "erin", "agent_erin", 5000, 10, 1000, stamps, 8);
	ok(ag_tokcache_take(c, d[0], 1001, &h) == 0, "the identity's older token: miss");
	ok(ag_tokcache_take(c, d[1], 1001, &h) == 1, "its latest token: hit");

	/* size bound: the oldest stored goes first */
	ag_tokcache_clear(c);
	for (i = 0; i < 5; i++)
	{
		snprintf(who, sizeof(who), "id%d", i);
		ag_tokcache_put(c, d[i], ag_tokcache_epoch(c), who, "r", 5000, 10, 1000, stamps, 8);
	}
	ok(ag_tokcache_count(c) == 3, "at most 3 entries (%d)", ag_tokcache_count(c));
	ok(ag_tokcache_take(c, d[0], 1001, &h) == 0 && ag_tokcache_take(c, d[1], 1001, &h) == 0,
	   "the two oldest were evicted");
	ok(ag_tokcache_take(c, d[4], 1001, &h) == 1 && strcmp(h.identity, "id4") == 0,
	   "the newest is there");

	/* storing the same token again replaces its entry */
	ag_tokcache_put(c, d[4], ag_tokcache_epoch(c), "id4", "r2", 5000, 10, 1000, stamps, 2);
	ok(ag_tokcache_take(c, d[4], 1001, &h) == 1 && strcmp(h.role, "r2") == 0, "replaced");
	ok(ag_tokcache_take(c, d[4], 1001, &h) == 1, "with its 2 stamps");
	ok(ag_tokcache_take(c, d[4], 1001, &h) == 0, "and no more");
	ag_tokcache_free(c);
	ag_tokcache_free(other);
}

int
main(void)
{
	test_hits();
	test_time();
	test_revocation();
	test_identity_and_size();
	return ag_test_report();
}
