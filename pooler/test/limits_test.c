/*
 * limits_test.c
 *	  Unit tests for the proxy's admission bookkeeping: token buckets, the
 *	  per-peer rate table, per-identity and total connection counts, and
 *	  the marks revocation notices leave.
 */
#include "ag_limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ag_test.h"

static ag_peer_key
v4(const char *a)
{
	struct sockaddr_in in;
	ag_peer_key k;

	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	inet_pton(AF_INET, a, &in.sin_addr);
	ag_peer_key_from_sockaddr((struct sockaddr *) &in, sizeof(in), &k);
	return k;
}

static ag_peer_key
v6(const char *a)
{
	struct sockaddr_in6 in6;
	ag_peer_key k;

	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, a, &in6.sin6_addr);
	ag_peer_key_from_sockaddr((struct sockaddr *) &in6, sizeof(in6), &k);
	return k;
}

static void
test_bucket(void)
{
	ag_bucket	b = {0, 0};
	int			i;
	int			n = 0;

	/* a new bucket starts full: burst events, then none */
	for (i = 0; i < 100; i++)
		n += ag_bucket_take(&b, 1000.0, 10, 20);
	ok(n == 20, "burst of 20 allowed at once (got %d)", n);
	ok(!ag_bucket_take(&b, 1000.05, 10, 20), "0.05 s later: half a token, refused");
	ok(ag_bucket_take(&b, 1000.1, 10, 20), "0.1 s later: one token");
	ok(!ag_bucket_take(&b, 1000.1, 10, 20), "and only one");

	/* over a long run the rate holds: 10/s for 10 s is about 100 (+ burst) */
	memset(&b, 0, sizeof(b));
	n = 0;
	for (i = 0; i < 100000; i++)
		n += ag_bucket_take(&b, 2000.0 + i * 0.0001, 10, 20);
	ok(n >= 115 && n <= 121, "10 s of a flood at 10/s with burst 20 lets %d through", n);

	/* refill is capped at burst */
	memset(&b, 0, sizeof(b));
	(void) ag_bucket_take(&b, 1.0, 10, 5);
	n = 0;
	for (i = 0; i < 100; i++)
		n += ag_bucket_take(&b, 1000.0, 10, 5);
	ok(n == 5, "an idle bucket refills to burst only (got %d)", n);

	/* a clock that steps back neither refills nor breaks the bucket */
	memset(&b, 0, sizeof(b));
	for (i = 0; i < 5; i++)
		(void) ag_bucket_take(&b, 500.0, 10, 5);
	ok(!ag_bucket_take(&b, 400.0, 10, 5), "clock stepping back: no refill");
	ok(ag_bucket_take(&b, 500.2, 10, 5), "and the refill resumes afterwards");
}

static void
test_peer_keys(void)
{
	ag_peer_key a = v4("192.0.2.7");
	ag_peer_key b = v6("::ffff:192.0.2.7");
	ag_peer_key c = v6("2001:db8:1:2:aaaa::1");
	ag_peer_key d = v6("2001:db8:1:2:bbbb:cccc:dddd:eeee");
	ag_peer_key e = v6("2001:db8:1:3::1");
	ag_peer_key f = v4("192.0.2.8");

	ok(memcmp(&a, &b, sizeof(a)) == 0, "IPv4 and IPv4-mapped IPv6 share a key");
	ok(memcmp(&c, &d, sizeof(c)) == 0, "addresses in one IPv6 /64 share a key");
	ok(memcmp(&c, &e, sizeof(c)) != 0, "another /64 is another key");
	ok(memcmp(&a, &f, sizeof(a)) != 0, "another IPv4 address is another key");
}

static void
test_rate_table(void)
{
	ag_rate_table *t = ag_rate_table_new(64, 12345);
	ag_peer_key a = v4("10.0.0.1");
	ag_peer_key b = v4("10.0.0.2");
	ag_peer_key k;
	int			i;
	int			na = 0;
	int			nb = 0;
	char		addr[64];

	for (i = 0; i < 2000; i++)
		na += ag_rate_allow(t, &a, 100.0 + i * 0.0005, 10, 20);
	ok(na >= 20 && na <= 31, "2000 cancels in 1 s from one peer: %d allowed", na);
	for (i = 0; i < 5; i++)
		nb += ag_rate_allow(t, &b, 101.0, 10, 20);
	ok(nb == 5, "another peer is not affected (%d of 5)", nb);

	/* many peers: the table stays its size, the busy peer stays limited */
	for (i = 0; i < 10000; i++)
	{
		snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 250, i % 250);
		k = v4(addr);
		(void) ag_rate_allow(t, &k, 102.0, 10, 20);
		if (i % 100 == 0)
			(void) ag_rate_allow(t, &a, 102.0, 10, 20);
	}
	ok(1, "10000 peers through a 64-slot table");
	ag_rate_table_free(t);
}

static int	seen_alice,
			seen_bob,
			seen_other;

static void
collect(void *arg, const char *identity)
{
	if (strcmp(identity, "alice") == 0)
		seen_alice++;
	else if (strcmp(identity, "bob") == 0)
		seen_bob++;
	else
		seen_other++;
}

static void
test_ident(void)
{
	ag_ident_table *t = ag_ident_table_new(99);
	char		name[32];
	int			i;

	ok(ag_ident_acquire(t, "alice", 3, 5) == AG_IDENT_OK, "alice 1");
	ok(ag_ident_acquire(t, "alice", 3, 5) == AG_IDENT_OK, "alice 2");
	ok(ag_ident_acquire(t, "alice", 3, 5) == AG_IDENT_OK, "alice 3");
	ok(ag_ident_acquire(t, "alice", 3, 5) == AG_IDENT_OVER_IDENTITY, "alice 4: over the per-identity limit");
	ok(ag_ident_count(t, "alice") == 3, "a refused acquire counts nothing");
	ok(ag_ident_acquire(t, "bob", 3, 5) == AG_IDENT_OK, "bob 1");
	ok(ag_ident_acquire(t, "carol", 3, 5) == AG_IDENT_OK, "carol 1");
	ok(ag_ident_acquire(t, "dave", 3, 5) == AG_IDENT_OVER_TOTAL, "dave: over the total");
	ok(ag_ident_total(t) == 5 && ag_ident_distinct(t) == 3, "total 5, 3 identities");
	ag_ident_release(t, "alice");
	ok(ag_ident_acquire(t, "dave", 3, 5) == AG_IDENT_OK, "a released slot is usable by another identity");
	ok(ag_ident_acquire(t, "alice", 3, 5) == AG_IDENT_OVER_TOTAL, "alice: total reached again");
	ok(ag_ident_acquire(t, "Alice", 3, 6) == AG_IDENT_OK, "identities are compared exactly (Alice is not alice)");
	ok(ag_ident_count(t, "alice") == 2, "alice holds 2");

	/* marks: only identities with connections, once each per batch */
	ok(ag_ident_mark(t, "alice") == 1, "mark alice");
	ok(ag_ident_mark(t, "alice") == 0, "alice again: already marked");
	ok(ag_ident_mark(t, "nobody") == 0, "an identity without connections is not marked");
	for (i = 0; i < 10000; i++)
	{
		snprintf(name, sizeof(name), "forged%d", i);
		(void) ag_ident_mark(t, name);
	}
	ok(ag_ident_nmarked(t) == 1, "10000 notices for other names mark nothing");
	ok(ag_ident_mark(t, "bob") == 1, "mark bob");
	seen_alice = seen_bob = seen_other = 0;
	ok(ag_ident_take_marked(t, collect, NULL) == 2 && seen_alice == 1 && seen_bob == 1 &&
	   seen_other == 0, "one batch: alice and bob once each");
	ok(ag_ident_nmarked(t) == 0 && ag_ident_take_marked(t, collect, NULL) == 0, "the batch is empty after");
	ok(ag_ident_mark(t, "alice") == 1, "a later notice marks alice again");

	/* an identity whose last connection closes leaves the marked list */
	ag_ident_release(t, "bob");
	ok(ag_ident_mark(t, "bob") == 0, "bob gone: not marked");
	ag_ident_release(t, "alice");
	ag_ident_release(t, "alice");
	ok(ag_ident_count(t, "alice") == 0 && ag_ident_nmarked(t) == 0, "alice gone: unmarked");
	seen_alice = 0;
	ok(ag_ident_take_marked(t, collect, NULL) == 0 && seen_alice == 0, "nothing left to read");

	/* growth keeps every count */
	for (i = 0; i < 5000; i++)
	{
		snprintf(name, sizeof(name), "id%d", i);
		if (ag_ident_acquire(t, name, 2, 100000) != AG_IDENT_OK ||
			ag_ident_acquire(t, name, 2, 100000) != AG_IDENT_OK)
			break;
	}
	ok(i == 5000, "5000 identities with 2 connections each");
	for (i = 0; i < 5000; i += 7)
	{
		snprintf(name, sizeof(name), "id%d", i);
		if (ag_ident_count(t, name) != 2)
			break;
	}
	ok(i >= 5000, "counts survive the table's growth");
	for (i = 0; i < 5000; i++)
	{
		snprintf(name, sizeof(name), "id%d", i);
		ag_ident_release(t, name);
		ag_ident_release(t, name);
	}
	ok(ag_ident_total(t) == 3 && ag_ident_distinct(t) == 3,
	   "back to carol, dave and Alice (total %d)", ag_ident_total(t));
	ok(ag_ident_acquire(t, "zero", 0, 100) == AG_IDENT_OVER_IDENTITY, "per-identity limit 0 admits none");
	ag_ident_table_free(t);
}

int
main(void)
{
	test_bucket();
	test_peer_keys();
	test_rate_table();
	test_ident();
	return ag_test_report();
}
