/*-------------------------------------------------------------------------
 *
 * proxy_logincache.c
 *	  The proxy's side of the cache of verified tokens (tokcache.c): when
 *	  it may answer, and what empties it.
 *
 * A subagent that connects again with the token it just used skips the
 * signature check and agentgate.login(): within login_cache_seconds of
 * that token's last login() here, and before its exp, the connection gets
 * the role login() returned and one of the session stamps fetched with
 * it.  Every other check still runs for it: the connection limits, the
 * database check, PgBouncer's login, and the extension's checks at every
 * statement.
 *
 * What empties it, so that a cached answer is never one login() would
 * not give now:
 *	  - a revocation notice naming the identity drops its entries at once,
 *		before its status is even read (a forged notice costs a login);
 *	  - the listening admin connection lost (notices may be missed
 *		meanwhile; logins are refused until it is back anyway);
 *	  - a new keyset (a key rotated out must not keep its tokens alive),
 *		and a reload (issuer, audience, claims may have changed);
 *	  - another token of the same identity logged in (tokcache.c).
 * A login() that started before any of these stores nothing (epochs).
 *
 * What it does not see: a DBA's change to group_roles or to the role
 * itself without a revocation reaches cached logins after at most
 * login_cache_seconds.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <time.h>

static ag_tokcache *cache;
static int	cache_size;
static ag_keyset *cache_keys;	/* the keyset its tokens were verified with */

void
ag_logincache_reset(void)
{
	const ag_proxy_config *cfg = ag_proxy_g.cfg;

	if (cache && cache_size == cfg->login_cache_size)
		ag_tokcache_clear(cache);
	else
	{
		ag_tokcache_free(cache);
		cache = NULL;
		cache_size = 0;
		if (cfg->login_cache_seconds > 0)
		{
			cache = ag_tokcache_new(cfg->login_cache_size);
			if (cache == NULL)
				ag_log(AG_LOG_WARNING, NULL, "login cache disabled: out of memory");
			else
				cache_size = cfg->login_cache_size;
		}
	}
	if (cache_keys)
		ag_keyset_unref(cache_keys);
	cache_keys = NULL;
}

static int
enabled(void)
{
	return cache != NULL && ag_proxy_g.cfg->login_cache_seconds > 0;
}

int
ag_logincache_take(const char *token, size_t len, ag_login_key *key,
				   ag_tokcache_hit *hit)
{
	ag_keyset  *ks;

	key->valid = 0;
	if (!enabled() || ag_tokcache_digest(cache, token, len, key->digest) < 0)
		return 0;
	key->valid = 1;
	key->epoch = ag_tokcache_epoch(cache);

	/* tokens verified with another keyset are verified again */
	ks = ag_keysource_get(ag_proxy_g.keys);
	if (ks != cache_keys)
	{
		ag_tokcache_clear(cache);
		key->epoch = ag_tokcache_epoch(cache);
		if (cache_keys)
			ag_keyset_unref(cache_keys);
		cache_keys = ks;		/* keeps our reference: no pointer reuse */
		return 0;
	}
	if (ks)
		ag_keyset_unref(ks);
	if (ks == NULL || !ag_admin_ready())
		return 0;
	return ag_tokcache_take(cache, key->digest, (int64_t) time(NULL), hit);
}

void
ag_logincache_store(const ag_login_key *key, const char *identity, const char *role,
					int64_t exp, const ag_tokcache_stamp *stamps, int n)
{
	if (!enabled() || !key->valid || n <= 0)
		return;
	if (ag_tokcache_put(cache, key->digest, key->epoch, identity, role, exp,
						ag_proxy_g.cfg->login_cache_seconds, (int64_t) time(NULL),
						stamps, n) < 0)
		ag_log(AG_LOG_WARNING, NULL, "login cache: out of memory");
}

void
ag_logincache_revoked(const char *identity)
{
	if (cache)
		(void) ag_tokcache_drop_identity(cache, identity);
}

void
ag_logincache_clear(void)
{
	if (cache)
		ag_tokcache_clear(cache);
}

void
ag_logincache_free(void)
{
	ag_tokcache_free(cache);
	cache = NULL;
	cache_size = 0;
	if (cache_keys)
		ag_keyset_unref(cache_keys);
	cache_keys = NULL;
}
