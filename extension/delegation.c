/*-------------------------------------------------------------------------
 *
 * delegation.c
 *	  Delegation chains and scopes of agent sessions, and the cluster-wide
 *	  list of revoked identities.
 *
 * A delegated token (RFC 8693) names the identity that connects (its
 * current actor, act.sub) and everyone it acts for: earlier actors and, last,
 * the principal (sub).  The proxy verifies the token and hands its claims to
 * agentgate.session_stamp(role, claims), which keeps the chain and the
 * token's scopes here, in shared memory, under the new session id, and
 * binds them into the stamp's MAC (identity.c).  So the chain travels with
 * the verified stamp: a backend of any database that sees the stamp looks
 * the session id up here and accepts the stamp only if its MAC covers
 * exactly this entry.  Nothing an agent can set names a chain.  After a
 * server restart the entries are gone and delegated stamps no longer
 * verify: their clients must log in again (fail closed).
 *
 * Revocation.  Revoking an identity must stop every session whose chain
 * holds it, including principals that never log in and have no role in
 * this cluster, so a role's NOLOGIN flag cannot carry it.  The list of
 * revoked (and suspended) identities is the table agentgate.revoked_
 * identities; a trigger on it queues each change, and the change reaches a
 * shared-memory hash when the transaction commits, with a counter bumped
 * so that every session rechecks its chain at its next statement.  At
 * start, a background worker loads the table of agentgate.audit_database;
 * until it has, delegated sessions are refused, and so they are when a
 * revocation did not fit in the hash (agentgate.max_revoked_identities).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/parallel.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "agentgate.h"
#include "audit.h"
#include "delegation.h"
#include "identity.h"

/*
 * agentgate.max_delegated_sessions: live delegated sessions the server
 * keeps (about 1 KiB of shared memory each).  A full table first drops
 * entries whose token expired an hour ago; when none has, the login is
 * refused.
 */
static int	max_delegated_sessions = 1000;

/*
 * agentgate.max_revoked_identities: identities the revocation list holds
 * in shared memory (about 100 bytes each).
 */
static int	max_revoked_identities = 1000;

/* kept past its token's exp, so that the proxy's exp_grace fits */
#define AG_DELEG_KEEP_USECS		(3600 * USECS_PER_SEC)

typedef struct AgDelegShared
{
	LWLock	   *lock;
	/* bumped by every change of the revoked list; 0 until it is loaded */
	pg_atomic_uint64 revoked_gen;
	bool		revoked_loaded;
	bool		revoked_overflow;	/* a revocation did not fit */
} AgDelegShared;

typedef struct AgRevokedEntry
{
	char		identity[NAMEDATALEN];	/* key */
} AgRevokedEntry;

static AgDelegShared *shared = NULL;
static HTAB *sessions = NULL;
static HTAB *revoked = NULL;

static bool revoked_list_load(void);

PG_FUNCTION_INFO_V1(agentgate_revoked_identities_sync);
PG_FUNCTION_INFO_V1(agentgate_delegated_sessions);

/* ---------- shared memory ---------- */

void
ag_delegation_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(AgDelegShared)));
	RequestAddinShmemSpace(hash_estimate_size(max_delegated_sessions, sizeof(AgDelegation)));
	RequestAddinShmemSpace(hash_estimate_size(max_revoked_identities, sizeof(AgRevokedEntry)));
	RequestNamedLWLockTranche("agentgate_delegation", 1);
}

void
ag_delegation_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("agentgate delegation", sizeof(AgDelegShared), &found);
	if (!found)
	{
		shared->lock = &(GetNamedLWLockTranche("agentgate_delegation"))->lock;
		pg_atomic_init_u64(&shared->revoked_gen, 0);
		shared->revoked_loaded = false;
		shared->revoked_overflow = false;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(AgDelegation);
	sessions = ShmemInitHash("agentgate delegated sessions",
							 max_delegated_sessions, max_delegated_sessions,
							 &info, HASH_ELEM | HASH_BLOBS);
	memset(&info, 0, sizeof(info));
	info.keysize = NAMEDATALEN;
	info.entrysize = sizeof(AgRevokedEntry);
	revoked = ShmemInitHash("agentgate revoked identities",
							max_revoked_identities, max_revoked_identities,
							&info, HASH_ELEM | HASH_STRINGS);
	LWLockRelease(AddinShmemInitLock);
}

/* ---------- delegations ---------- */

static bool
sid_parse(const char *sid, uint64 *out)
{
	uint64		v = 0;

	if (sid == NULL || strlen(sid) != 16)
		return false;
	for (int i = 0; i < 16; i++)
	{
		char		c = sid[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint64) (c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint64) (c - 'a' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

bool
ag_delegation_find(const char *sid, AgDelegation *out)
{
	uint64		key;
	AgDelegation *e;

	if (shared == NULL || !sid_parse(sid, &key))
		return false;
	LWLockAcquire(shared->lock, LW_SHARED);
	e = hash_search(sessions, &key, HASH_FIND, NULL);
	if (e)
		memcpy(out, e, sizeof(AgDelegation));
	LWLockRelease(shared->lock);
	return e != NULL;
}

int
ag_delegation_binding(const AgDelegation *d, char *buf, int buflen)
{
	int			n = snprintf(buf, buflen, "\n%d.%d\n", d->nchain, d->nscopes);

	if (n < 0 || n + d->len > buflen)
		return -1;
	memcpy(buf + n, d->names, d->len);
	return n + d->len;
}

const char *
ag_delegation_name(const AgDelegation *d, int i)
{
	const char *p = d->names;

	if (i < 0 || i >= d->nchain + d->nscopes)
		return NULL;
	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

/* A name as the token verifier allows it: 1..63 bytes, no control chars. */
static void
name_check(const char *what, const char *s)
{
	size_t		len = strlen(s);

	if (len == 0 || len >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s in a delegated token", what),
				 errdetail("Each must be 1 to %d bytes long.", NAMEDATALEN - 1)));
	for (size_t i = 0; i < len; i++)
		if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s in a delegated token", what),
					 errdetail("It contains a control character.")));
}

/* Append the elements of a text[] (NULL: none) to d->names. */
static int
names_add(AgDelegation *d, ArrayType *arr, const char *what, int max)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (arr == NULL)
		return 0;
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s list must be one-dimensional", what)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many entries in a delegated token's %s list", what),
				 errdetail("It has %d; at most %d are allowed.", n, max)));
	for (int i = 0; i < n; i++)
	{
		char	   *s;
		int			len;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the %s list of a delegated token holds a null", what)));
		s = TextDatumGetCString(elems[i]);
		name_check(what, s);
		len = strlen(s) + 1;
		if (d->len + len > AG_DELEG_NAMES_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the delegation chain and scopes of a token are too long"),
					 errdetail("Together they may take at most %d bytes.", AG_DELEG_NAMES_LEN)));
		memcpy(d->names + d->len, s, len);
		d->len += len;
	}
	return n;
}

/* Is identity on the revoked list?  Caller holds the lock. */
static bool
is_revoked_locked(const char *identity)
{
	char		key[NAMEDATALEN];

	strlcpy(key, identity, sizeof(key));
	return hash_search(revoked, key, HASH_FIND, NULL) != NULL;
}

/*
 * The revoked identity of d's chain, or NULL; ERROR when the list cannot
 * be trusted (not loaded yet, or a revocation did not fit).
 */
static const char *
chain_revoked(const AgDelegation *d)
{
	const char *hit = NULL;
	bool		loaded,
				overflow;

	LWLockAcquire(shared->lock, LW_SHARED);
	loaded = shared->revoked_loaded;
	overflow = shared->revoked_overflow;
	for (int i = 0; loaded && !overflow && hit == NULL && i < d->nchain; i++)
		if (is_revoked_locked(ag_delegation_name(d, i)))
			hit = ag_delegation_name(d, i);
	LWLockRelease(shared->lock);

	if (!loaded)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("the list of revoked identities is not loaded yet"),
				 errdetail("Delegated sessions wait until the server has read agentgate.revoked_identities from agentgate.audit_database."),
				 errhint("Make sure the agentgate extension exists in agentgate.audit_database, then retry.")));
	if (overflow)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the list of revoked identities is full"),
				 errdetail("A revocation did not fit in agentgate.max_revoked_identities (%d), so no delegated session can be trusted.",
						   max_revoked_identities),
				 errhint("Raise agentgate.max_revoked_identities and restart the server.")));
	return hit;
}

/*
 * Make the delegation of a new session id: validate the lists and refuse
 * a chain that holds a revoked identity.  Returns false when there is
 * nothing to bind (no chain, no scopes).
 */
bool
ag_delegation_make(ArrayType *chain, ArrayType *scopes, TimestampTz expires,
				   AgDelegation *d)
{
	const char *hit;

	memset(d, 0, sizeof(AgDelegation));
	d->expires = expires;
	d->nchain = names_add(d, chain, "delegation chain", AG_DELEG_MAX_CHAIN);
	if (d->nchain == 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a delegation chain needs an actor and a principal")));
	d->nscopes = names_add(d, scopes, "scope", AG_DELEG_MAX_SCOPES);
	if (d->nchain == 0 && d->nscopes == 0)
		return false;
	for (int i = 0; i < d->nchain + d->nscopes; i++)
		for (int j = i + 1; j < (i < d->nchain ? d->nchain : d->nchain + d->nscopes); j++)
			if (strcmp(ag_delegation_name(d, i), ag_delegation_name(d, j)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("a delegated token names \"%s\" twice", ag_delegation_name(d, i))));
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate's shared memory is not available")));
	/*
	 * Logins usually run in the audit database (the proxy's admin
	 * database): there a login need not wait for the loader.
	 */
	if (d->nchain > 0 && !shared->revoked_loaded &&
		MyDatabaseId == ag_audit_database_oid())
		(void) revoked_list_load();
	if (d->nchain > 0 && (hit = chain_revoked(d)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("identity \"%s\" of the delegation chain has been revoked", hit),
				 errhint("Ask a database administrator to resume the identity.")));
	return true;
}

/* Keep d under its session id (set by the caller); ERROR when full. */
void
ag_delegation_store(AgDelegation *d)
{
	AgDelegation *e;
	bool		found;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	/* bounded by the setting, not by the server's spare shared memory */
	if (hash_get_num_entries(sessions) >= max_delegated_sessions)
	{
		HASH_SEQ_STATUS it;
		AgDelegation *old;
		TimestampTz cutoff = GetCurrentTimestamp() - AG_DELEG_KEEP_USECS;

		hash_seq_init(&it, sessions);
		while ((old = hash_seq_search(&it)) != NULL)
			if (old->expires < cutoff)
				hash_search(sessions, &old->sid, HASH_REMOVE, NULL);
	}
	e = hash_get_num_entries(sessions) < max_delegated_sessions ?
		hash_search(sessions, &d->sid, HASH_ENTER_NULL, &found) : NULL;
	if (e != NULL)
		memcpy(e, d, sizeof(AgDelegation));
	LWLockRelease(shared->lock);
	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many delegated sessions"),
				 errdetail("agentgate.max_delegated_sessions (%d) sessions with a delegation chain or scopes are live.",
						   max_delegated_sessions),
				 errhint("Raise agentgate.max_delegated_sessions and restart the server.")));
}

/*
 * The check at every statement of a delegated session: each identity of its
 * chain must be off the revoked list.  The list's counter says whether
 * anything changed since this session's chain was last found clean.
 */
void
ag_delegation_check(const AgDelegation *d)
{
	static uint64 clean_sid = 0;
	static uint64 clean_gen = 0;
	uint64		gen;
	const char *hit;

	if (d == NULL || d->nchain == 0)
		return;
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate's shared memory is not available")));
	gen = pg_atomic_read_u64(&shared->revoked_gen);
	if (gen != 0 && gen == clean_gen && d->sid == clean_sid)
		return;
	if ((hit = chain_revoked(d)) != NULL)
	{
		StringInfoData chain;

		initStringInfo(&chain);
		for (int i = 0; i < d->nchain; i++)
			appendStringInfo(&chain, "%s%s", i ? " for " : "", ag_delegation_name(d, i));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("an identity this session acts for has been revoked"),
				 errdetail("Identity \"%s\" of the session's delegation chain (%s) is revoked or suspended.",
						   hit, chain.data),
				 errhint("Ask a database administrator to resume the identity, then log in again through the agentgate proxy.")));
	}
	clean_gen = gen;
	clean_sid = d->sid;
}

/*
 * agentgate.delegated_sessions(): the live delegations, for the view of
 * the same name.  Superusers only (EXECUTE is revoked from PUBLIC).
 */
Datum
agentgate_delegated_sessions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS it;
	AgDelegation *e;

	InitMaterializedSRF(fcinfo, 0);
	if (shared == NULL)
		return (Datum) 0;
	LWLockAcquire(shared->lock, LW_SHARED);
	hash_seq_init(&it, sessions);
	while ((e = hash_seq_search(&it)) != NULL)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		Datum		names[AG_DELEG_MAX_CHAIN + AG_DELEG_MAX_SCOPES];

		values[0] = CStringGetTextDatum(psprintf("%016llx", (unsigned long long) e->sid));
		for (int i = 0; i < e->nchain + e->nscopes; i++)
			names[i] = CStringGetTextDatum(ag_delegation_name(e, i));
		if (e->nchain > 0)
			values[1] = PointerGetDatum(construct_array(names, e->nchain, TEXTOID, -1, false, TYPALIGN_INT));
		else
			nulls[1] = true;
		if (e->nscopes > 0)
			values[2] = PointerGetDatum(construct_array(names + e->nchain, e->nscopes, TEXTOID, -1, false, TYPALIGN_INT));
		else
			nulls[2] = true;
		values[3] = TimestampTzGetDatum(e->expires);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(shared->lock);
	return (Datum) 0;
}

/* ---------- the revoked list ---------- */

/*
 * Put identity on the revoked list (lock held exclusively).  Shared hash
 * tables grow into the server's spare shared memory, which other parts
 * need: the setting is the bound, and past it the list is marked as not to
 * be trusted, which refuses every delegated session.
 */
static void
revoked_add_locked(const char *identity)
{
	char		key[NAMEDATALEN];

	strlcpy(key, identity, sizeof(key));
	if (hash_search(revoked, key, HASH_FIND, NULL) != NULL)
		return;
	if (hash_get_num_entries(revoked) >= max_revoked_identities ||
		hash_search(revoked, key, HASH_ENTER_NULL, NULL) == NULL)
		shared->revoked_overflow = true;
}

/*
 * Changes of agentgate.revoked_identities, queued by the trigger and
 * applied to shared memory when the transaction commits.
 */
typedef struct PendingChange
{
	char		identity[NAMEDATALEN];	/* "" with clear: TRUNCATE */
	bool		add;
	bool		clear;
	SubTransactionId subid;
} PendingChange;

static List *pending_changes = NIL;

static void
queue_change(const char *identity, bool add, bool clear)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	PendingChange *p = palloc0(sizeof(PendingChange));

	strlcpy(p->identity, identity, sizeof(p->identity));
	p->add = add;
	p->clear = clear;
	p->subid = GetCurrentSubTransactionId();
	pending_changes = lappend(pending_changes, p);
	MemoryContextSwitchTo(old);
}

/*
 * Apply the queued changes.  Runs after the commit is durable and must not
 * fail: a revocation that does not fit marks the list untrustworthy, which
 * refuses every delegated session (fail closed).
 */
static void
apply_changes(void)
{
	ListCell   *lc;

	if (shared == NULL || pending_changes == NIL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	foreach(lc, pending_changes)
	{
		PendingChange *p = lfirst(lc);

		if (p->clear)
		{
			HASH_SEQ_STATUS it;
			AgRevokedEntry *e;

			hash_seq_init(&it, revoked);
			while ((e = hash_seq_search(&it)) != NULL)
				hash_search(revoked, e->identity, HASH_REMOVE, NULL);
		}
		else if (p->add)
			revoked_add_locked(p->identity);
		else
			hash_search(revoked, p->identity, HASH_REMOVE, NULL);
	}
	if (shared->revoked_loaded)
		pg_atomic_fetch_add_u64(&shared->revoked_gen, 1);
	LWLockRelease(shared->lock);
}

static void
delegation_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (pending_changes != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that changed agentgate.revoked_identities")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			apply_changes();
			pending_changes = NIL;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pending_changes = NIL;
			break;
		default:
			break;
	}
}

static void
delegation_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_changes)
		{
			PendingChange *p = lfirst(lc);

			if (p->subid == mySubid)
				pending_changes = foreach_delete_current(pending_changes, lc);
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_changes)
		{
			PendingChange *p = lfirst(lc);

			if (p->subid == mySubid)
				p->subid = parentSubid;
		}
	}
}

/*
 * Trigger on agentgate.revoked_identities (row level for INSERT, UPDATE and
 * DELETE; statement level for TRUNCATE).
 */
Datum
agentgate_revoked_identities_sync(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	bool		isnull;
	Datum		d;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("revoked_identities_sync() must be called as a trigger")));
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		queue_change("", false, true);
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		d = heap_getattr(td->tg_trigtuple, 1, td->tg_relation->rd_att, &isnull);
		if (!isnull)
			queue_change(TextDatumGetCString(d), false, false);
	}
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		HeapTuple	t = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

		d = heap_getattr(t, 1, td->tg_relation->rd_att, &isnull);
		if (!isnull)
			queue_change(TextDatumGetCString(d), true, false);
	}
	return PointerGetDatum(NULL);
}

/*
 * Read agentgate.revoked_identities of this database (the audit database)
 * into shared memory, in the caller's transaction.  False when the table
 * is not there (the extension does not exist here yet).
 */
static bool
revoked_list_load(void)
{
	bool		done = false;
	bool		mine = false;
	uint64		n = 0;

	SPI_connect();
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
					" ON n.oid = c.relnamespace"
					" WHERE n.nspname = '" AG_SCHEMA "' AND c.relname = 'revoked_identities'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1 &&
		SPI_execute("SELECT identity FROM " AG_SCHEMA ".revoked_identities",
					true, 0) == SPI_OK_SELECT)
	{
		char	  **ids = palloc0(sizeof(char *) * (SPI_processed + 1));

		/* the values first: no catalog access while holding the lock */
		for (uint64 i = 0; i < SPI_processed; i++)
			ids[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		n = SPI_processed;
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		if (!shared->revoked_loaded)
		{
			for (uint64 i = 0; i < n; i++)
				if (ids[i] != NULL)
					revoked_add_locked(ids[i]);
			shared->revoked_loaded = true;
			pg_atomic_fetch_add_u64(&shared->revoked_gen, 1);
			mine = true;		/* not another process first */
		}
		LWLockRelease(shared->lock);
		if (mine)
			ereport(LOG,
					(errmsg("agentgate: loaded %llu revoked identities from database \"%s\"",
							(unsigned long long) n, get_database_name(MyDatabaseId))));
		done = true;
	}
	SPI_finish();
	return done;
}

/*
 * The loader: a background worker in agentgate.audit_database reads the
 * table once after start, then exits.  While the extension does not exist
 * there yet it waits and looks again.  Afterwards it stays idle.
 */
void
agentgate_revoked_loader_main(Datum arg)
{
	const char *dbname = GetConfigOption("agentgate.audit_database", false, false);

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("agentgate revocation list");

	for (;;)
	{
		bool		done;

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		done = revoked_list_load();
		PopActiveSnapshot();
		CommitTransactionCommand();

		/*
		 * Loaded: stay, idle, so that after a crash of another backend (the
		 * postmaster then resets shared memory) this worker is started
		 * again and reloads the list.  A worker that exited 0 would not be.
		 */
		(void) WaitLatch(MyLatch,
						 done ? WL_LATCH_SET | WL_EXIT_ON_PM_DEATH :
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		while (done)
		{
			CHECK_FOR_INTERRUPTS();
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}

void
ag_delegation_init(void)
{
	BackgroundWorker w;

	DefineCustomIntVariable("agentgate.max_delegated_sessions",
							"Live sessions with a delegation chain or scopes the server keeps.",
							"Each takes about 1 KiB of shared memory; a login that finds no room is refused.",
							&max_delegated_sessions,
							1000, 16, 1000000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("agentgate.max_revoked_identities",
							"Revoked or suspended identities the revocation list holds in shared memory.",
							"When a revocation does not fit, every delegated session is refused.",
							&max_revoked_identities,
							1000, 16, 1000000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);

	RegisterXactCallback(delegation_xact_callback, NULL);
	RegisterSubXactCallback(delegation_subxact_callback, NULL);

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "agentgate");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "agentgate_revoked_loader_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "agentgate revocation list loader");
	snprintf(w.bgw_type, BGW_MAXLEN, "agentgate revocation list loader");
	RegisterBackgroundWorker(&w);
}

/* ---------- scopes: group memberships outside the scope are not in effect ---------- */

/*
 * The roles through which a scoped session may use privileges besides its
 * own role's direct grants: the roles agentgate.group_roles maps from the
 * groups the scope names (and that the session's role holds), and the
 * role's other direct memberships that no group mapping made (for example
 * agentgate_agent, or a DBA's own grant).  Group-mapped roles outside the
 * scope are left out, and so is everything reached only through them.
 */
static List *
scope_entry_roles(Oid su, const AgDelegation *d)
{
	List	   *mapped = NIL;
	List	   *entries = NIL;
	Oid			relid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	CatCList   *members;

	relid = get_relname_relid("group_roles", get_namespace_oid(AG_SCHEMA, true));
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("agentgate.group_roles is missing"),
				 errdetail("A scoped session's privileges cannot be narrowed without it.")));
	rel = table_open(relid, AccessShareLock);
	scan = table_beginscan(rel, GetLatestSnapshot(), 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		n1,
					n2;
		Datum		g = heap_getattr(tup, 1, RelationGetDescr(rel), &n1);
		Datum		r = heap_getattr(tup, 2, RelationGetDescr(rel), &n2);
		Oid			role;
		char	   *group;

		if (n1 || n2)
			continue;
		role = get_role_oid(NameStr(*DatumGetName(r)), true);
		if (!OidIsValid(role))
			continue;
		mapped = list_append_unique_oid(mapped, role);
		group = TextDatumGetCString(g);
		for (int i = d->nchain; i < d->nchain + d->nscopes; i++)
			if (strcmp(group, ag_delegation_name(d, i)) == 0 && is_member_of_role(su, role))
				entries = list_append_unique_oid(entries, role);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	members = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(su));
	for (int i = 0; i < members->n_members; i++)
	{
		Form_pg_auth_members m = (Form_pg_auth_members) GETSTRUCT(&members->members[i]->tuple);

		if (!list_member_oid(mapped, m->roleid))
			entries = list_append_unique_oid(entries, m->roleid);
	}
	ReleaseSysCacheList(members);
	return entries;
}

/* Rights of acl held by su directly or through PUBLIC, or through entries. */
static AclMode
scope_acl_mask(Acl *acl, Oid owner, Oid su, List *entries, AclMode want)
{
	AclMode		got = 0;
	AclItem    *items = ACL_DAT(acl);
	ListCell   *lc;

	for (int i = 0; i < ACL_NUM(acl); i++)
		if (items[i].ai_grantee == su || items[i].ai_grantee == ACL_ID_PUBLIC)
			got |= ACLITEM_GET_RIGHTS(items[i]);
	foreach(lc, entries)
		got |= aclmask(acl, lfirst_oid(lc), owner, want, ACLMASK_ALL);
	return got & want;
}

/* Do the column rights make up for what the table's rights lack? */
static bool
scope_columns_ok(Oid relid, Oid owner, int natts, Bitmapset *cols, AclMode priv,
				 Oid su, List *entries)
{
	int			k = -1;

	/*
	 * No column named (SELECT count(*)): like PostgreSQL, any column with
	 * the right will do.
	 */
	if (bms_is_empty(cols))
	{
		for (AttrNumber a = 1; a <= natts; a++)
			if (scope_columns_ok(relid, owner, natts,
								 bms_make_singleton(a - FirstLowInvalidHeapAttributeNumber),
								 priv, su, entries))
				return true;
		return false;
	}
	while ((k = bms_next_member(cols, k)) >= 0)
	{
		AttrNumber	att = k + FirstLowInvalidHeapAttributeNumber;
		HeapTuple	t;
		Datum		d;
		bool		isnull;
		bool		ok = false;

		if (att == InvalidAttrNumber)
			return false;		/* a whole-row reference */
		t = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(att));
		if (!HeapTupleIsValid(t))
			return false;
		d = SysCacheGetAttr(ATTNUM, t, Anum_pg_attribute_attacl, &isnull);
		if (!isnull)
			ok = scope_acl_mask(DatumGetAclP(d), owner, su, entries, priv) == priv;
		ReleaseSysCache(t);
		if (!ok)
			return false;
	}
	return true;
}

/*
 * ExecutorCheckPerms, after PostgreSQL's own check passed: a session whose
 * token carries a scope may use a relation only with rights its role holds
 * directly, through PUBLIC, or through the roles scope_entry_roles()
 * returns.  Relations checked as another role (a view's owner, a SECURITY
 * DEFINER function's) are that role's business; a role reached by SET ROLE
 * must itself be reached through those roles.
 */
void
ag_delegation_check_perms(List *rangeTable)
{
	const AgDelegation *d;
	Oid			su;
	List	   *entries = NIL;
	bool		have_entries = false;
	ListCell   *lc;

	if (!IsTransactionState() || IsParallelWorker() || !ag_session_is_governed())
		return;
	d = ag_session_delegation();
	if (d == NULL || d->nscopes == 0)
		return;
	su = ag_session_role();

	foreach(lc, rangeTable)
	{
		RangeTblEntry *rte = lfirst(lc);
		Oid			userid;
		HeapTuple	t;
		Form_pg_class cls;
		Datum		acld;
		bool		isnull;
		Acl		   *acl;
		AclMode		got,
					missing;
		bool		ok;

		if (rte->rtekind != RTE_RELATION || rte->requiredPerms == 0)
			continue;
		userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
		if (!have_entries)
		{
			entries = scope_entry_roles(su, d);
			have_entries = true;
		}
		if (userid != su)
		{
			ListCell   *e;
			bool		reached = false;

			if (!has_privs_of_role(su, userid))
				continue;		/* a view's or a definer's owner */
			foreach(e, entries)
				if (has_privs_of_role(lfirst_oid(e), userid))
					reached = true;
			if (!reached)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("role \"%s\" is outside this session's scope",
								GetUserNameFromId(userid, false)),
						 errdetail("The session's token narrows it to the groups its scope names; this role is reached only through others."),
						 errhint("Use a token whose scope names the group mapped to this role, or RESET ROLE.")));
			continue;
		}

		t = SearchSysCache1(RELOID, ObjectIdGetDatum(rte->relid));
		if (!HeapTupleIsValid(t))
			continue;			/* dropped meanwhile: PostgreSQL reports it */
		cls = (Form_pg_class) GETSTRUCT(t);
		acld = SysCacheGetAttr(RELOID, t, Anum_pg_class_relacl, &isnull);
		acl = isnull ? acldefault(cls->relkind == RELKIND_SEQUENCE ? OBJECT_SEQUENCE : OBJECT_TABLE,
								  cls->relowner) : DatumGetAclP(acld);
		got = scope_acl_mask(acl, cls->relowner, su, entries, rte->requiredPerms);
		missing = rte->requiredPerms & ~got;
		ok = missing == 0;
		if (!ok && (missing & ~(ACL_SELECT | ACL_INSERT | ACL_UPDATE)) == 0)
			ok = (!(missing & ACL_SELECT) ||
				  scope_columns_ok(rte->relid, cls->relowner, cls->relnatts, rte->selectedCols, ACL_SELECT, su, entries)) &&
				(!(missing & ACL_INSERT) ||
				 scope_columns_ok(rte->relid, cls->relowner, cls->relnatts, rte->insertedCols, ACL_INSERT, su, entries)) &&
				(!(missing & ACL_UPDATE) ||
				 scope_columns_ok(rte->relid, cls->relowner, cls->relnatts, rte->updatedCols, ACL_UPDATE, su, entries));
		ReleaseSysCache(t);
		if (!ok)
		{
			StringInfoData scopes;

			initStringInfo(&scopes);
			for (int i = d->nchain; i < d->nchain + d->nscopes; i++)
				appendStringInfo(&scopes, "%s%s", i > d->nchain ? " " : "", ag_delegation_name(d, i));
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s outside this session's scope",
							get_rel_name(rte->relid)),
					 errdetail("The session's token has scope \"%s\"; the privilege comes only through group roles outside it.",
							   scopes.data),
					 errhint("Use a token whose scope names the group that grants it, or grant the privilege to a group in the scope.")));
		}
	}
}
