/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Session stamps: a per-connection session id the proxy puts into
 *	  application_name, authenticated with an HMAC the agent cannot forge.
 *
 * Under transaction pooling only session_user tells backends' clients
 * apart; application_name is the one per-client value PgBouncer carries to
 * whichever backend serves the client, re-sending it with SET when it
 * assigns a server connection.  The proxy asks agentgate.session_stamp()
 * (over its admin connection) for a stamp bound to the agent's role:
 *
 *		ag1.<session id, 16 hex>.<HMAC-SHA256(key, "ag1.<sid>.<role>"), 16 hex>
 *
 * and sends "<client app> <stamp>" as application_name.  The key lives in
 * the superuser-only setting agentgate.session_key, so proxies need no
 * secret of their own and an agent cannot mint a stamp for itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hmac.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "agentgate.h"
#include "identity.h"

static char *session_key = NULL;

PG_FUNCTION_INFO_V1(agentgate_session_stamp);
PG_FUNCTION_INFO_V1(agentgate_session_id);

static void
hex_encode_lower(const uint8 *src, int len, char *dst)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < len; i++)
	{
		dst[2 * i] = hex[src[i] >> 4];
		dst[2 * i + 1] = hex[src[i] & 0x0f];
	}
	dst[2 * len] = '\0';
}

static void
require_session_key(void)
{
	if (session_key == NULL || strlen(session_key) < 32)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate.session_key is not set"),
				 errdetail("Session stamps need a secret of at least 32 characters."),
				 errhint("Set agentgate.session_key in postgresql.conf (for example to the output of \"openssl rand -hex 32\") and reload.")));
}

/* MAC of "ag1.<sid>.<role>" as 16 lower-case hex characters. */
static bool
stamp_mac(const char *sid, const char *role, char *out)
{
	pg_hmac_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	bool		ok;

	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		return false;
	ok = pg_hmac_init(ctx, (const uint8 *) session_key, strlen(session_key)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) AG_STAMP_PREFIX, strlen(AG_STAMP_PREFIX)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) sid, strlen(sid)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) ".", 1) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) role, strlen(role)) == 0 &&
		pg_hmac_final(ctx, digest, sizeof(digest)) == 0;
	pg_hmac_free(ctx);
	if (ok)
		hex_encode_lower(digest, AG_STAMP_MAC_BYTES, out);
	return ok;
}

/*
 * ag_stamp_verify checks the stamp at the end of appname (after its last
 * space, or the whole value) for role.  On success copies the session id
 * into sid_out (AG_STAMP_SID_HEX + 1 bytes) and returns true.
 */
bool
ag_stamp_verify(const char *appname, const char *role, char *sid_out)
{
	const char *stamp;
	const char *p;
	char		sid[AG_STAMP_SID_HEX + 1];
	char		mac[AG_STAMP_MAC_BYTES * 2 + 1];
	size_t		plen = strlen(AG_STAMP_PREFIX);

	if (appname == NULL || session_key == NULL || strlen(session_key) < 32)
		return false;
	stamp = strrchr(appname, ' ');
	stamp = stamp ? stamp + 1 : appname;
	if (strlen(stamp) != AG_STAMP_LEN || strncmp(stamp, AG_STAMP_PREFIX, plen) != 0)
		return false;
	p = stamp + plen;
	for (int i = 0; i < AG_STAMP_SID_HEX; i++)
	{
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	}
	if (p[AG_STAMP_SID_HEX] != '.')
		return false;
	memcpy(sid, p, AG_STAMP_SID_HEX);
	sid[AG_STAMP_SID_HEX] = '\0';
	if (!stamp_mac(sid, role, mac))
		return false;
	/* constant-time compare: the MAC is the only secret-dependent value */
	{
		const char *given = p + AG_STAMP_SID_HEX + 1;
		int			diff = 0;

		for (int i = 0; i < AG_STAMP_MAC_BYTES * 2; i++)
			diff |= given[i] ^ mac[i];
		if (diff != 0)
			return false;
	}
	if (sid_out)
		strlcpy(sid_out, sid, AG_STAMP_SID_HEX + 1);
	return true;
}

/*
 * agentgate.session_stamp(role name) returns a fresh stamp for role.
 * EXECUTE is granted to agentgate_proxy only.
 */
Datum
agentgate_session_stamp(PG_FUNCTION_ARGS)
{
	Name		role = PG_GETARG_NAME(0);
	uint8		raw[AG_STAMP_SID_HEX / 2];
	char		sid[AG_STAMP_SID_HEX + 1];
	char		mac[AG_STAMP_MAC_BYTES * 2 + 1];

	require_session_key();
	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session id")));
	hex_encode_lower(raw, sizeof(raw), sid);
	if (!stamp_mac(sid, NameStr(*role), mac))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the session stamp")));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s%s.%s", AG_STAMP_PREFIX, sid, mac)));
}

/*
 * agentgate.session_id() returns the verified session id of this session,
 * or NULL when application_name carries no valid stamp for session_user.
 */
Datum
agentgate_session_id(PG_FUNCTION_ARGS)
{
	char		sid[AG_STAMP_SID_HEX + 1];
	const char *app = GetConfigOption("application_name", true, false);
	char	   *role = GetUserNameFromId(GetSessionUserId(), true);

	if (role == NULL || !ag_stamp_verify(app, role, sid))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(sid));
}

void
ag_identity_init(void)
{
	DefineCustomStringVariable("agentgate.session_key",
							   "Secret that authenticates session stamps in application_name.",
							   "At least 32 characters; shared by nothing else.",
							   &session_key,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
}
