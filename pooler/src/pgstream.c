/*-------------------------------------------------------------------------
 *
 * pgstream.c
 *	  The protocol of one relayed connection in both directions, and the
 *	  client's named prepared statements (see ag_pgstream.h for the why).
 *
 * Client direction, per message: the header (type + int32 length) is
 * checked first; then the message is streamed, dropped, or gathered as
 * far as needed to decide (one byte of a Parse, the names of a Bind, all
 * of a named Parse, a Describe or a Close), rewritten, and the rest
 * streamed.
 *
 * Server direction, per message: matched against the head of the queue
 * of expected answers; passed, dropped (the ParseComplete of a Parse the
 * proxy added), or replaced (the syntax error that stands for an error of
 * the proxy's).  ReadyForQuery's status byte and CommandComplete's tag
 * are read; so is the first Authentication message.
 *
 *-------------------------------------------------------------------------
 */
#include "ag_pgstream.h"
#include "ag_pgproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- ag_buf */

int
ag_buf_add(ag_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (b->off > 0 && b->off + b->len + n > b->cap)
	{
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 16 * 1024;
		uint8_t    *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

void
ag_buf_consume(ag_buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
	{
		b->off = 0;
		/* a burst's memory is not kept for the life of the connection */
		if (b->cap > 256 * 1024)
		{
			free(b->data);
			b->data = NULL;
			b->cap = 0;
		}
	}
}

void
ag_buf_free(ag_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

size_t
ag_buf_trim(ag_buf *b)
{
	size_t		cap = b->cap;

	if (b->len != 0 || b->data == NULL)
		return 0;
	ag_buf_free(b);
	return cap;
}

/* ------------------------------------------------------------ the state */

/* PostgreSQL compares statement names on their first NAMEDATALEN - 1 bytes. */
#define KEYLEN				63
/* A CommandComplete longer than this is not one the proxy looks at. */
#define MAX_TAG				64
#define STAMP_CAP			128 /* a session stamp, NUL included */
#define PS_CAP				256 /* a ParameterStatus checked for the stamp */
#define APP_CAP				64	/* the client's application_name, NUL included */
/* Queries up to this long are read for DISCARD ALL / DEALLOCATE ALL. */
#define MAX_CLEAR_QUERY		256

/* The text of the Parse that stands for an error of the proxy's. */
static const char fail_query[] = "agentgate-proxy refused this protocol message";

typedef struct stmt
{
	struct stmt *next;			/* hash chain */
	uint64_t	seq;			/* entry that made it */
	size_t		keylen;
	size_t		bodylen;		/* Parse body after the name */
	uint8_t		data[];			/* key, NUL, body */
} stmt;

typedef enum qkind
{
	Q_LOGIN,					/* until the first ReadyForQuery */
	Q_SIMPLE,					/* Query: until ReadyForQuery */
	Q_SIMPLE_CLEARS,			/* the same, and may be DISCARD/DEALLOCATE ALL */
	Q_SYNC,
	Q_PARSE,					/* ParseComplete passes */
	Q_PARSE_NAMED,				/* ParseComplete passes; st was added */
	Q_PARSE_DROP,				/* ParseComplete of the proxy's Parse */
	Q_BIND,
	Q_DESC_STMT,				/* ParameterDescription, RowDescription/NoData */
	Q_DESC_PORTAL,
	Q_EXECUTE,
	Q_CLOSE,
	Q_SYNTH_CLOSE,				/* CloseComplete of ours; st was removed */
	Q_SYNTH_DEALLOC,			/* SQL DEALLOCATE of a kept name: answered
								 * here; st was removed */
	Q_SYNTH_EXEC_DEALLOC,		/* the same through the extended protocol:
								 * CommandComplete of its Execute */
	Q_SYNTH_MSG,				/* msg, an answer of ours */
	Q_FAIL,						/* the server's error replaced by msg */
	Q_CARRIER_PARSE,			/* the carrier's ParseComplete: dropped */
	Q_CARRIER_BIND,				/* its BindComplete: dropped */
	Q_CARRIER_EXEC				/* its CommandComplete: dropped */
} qkind;

typedef struct qentry
{
	qkind		kind;
	int			changer;		/* may change the statement table */
	uint64_t	seq;
	stmt	   *st;
	uint8_t    *msg;
	size_t		msglen;
} qentry;

typedef enum
{
	C_HEADER, C_GATHER, C_STREAM, C_DISCARD
} cstate;

typedef enum
{
	S_HEADER, S_GATHER, S_PASS, S_DROP
} sstate;

typedef enum
{
	A_NONE, A_POP, A_ERROR, A_FAIL, A_CARRIER_ERROR
} saction;

struct ag_pgstream
{
	ag_pgs_limits lim;

	/* client direction */
	cstate		cst;
	uint8_t		chdr[5];
	int			chdrlen;
	uint32_t	cleft;			/* body bytes of this message not yet read */
	int			cphase;
	uint8_t    *g;				/* gathered body bytes */
	size_t		glen;
	size_t		gcap;
	size_t		gneed;
	int			skipping;		/* the server ignores messages until Sync */
	int			unnamed_ours;	/* the unnamed statement is the proxy's */

	/*
	 * The client's unnamed statement is "DEALLOCATE name" of a kept
	 * statement (as psycopg sends it), answered here; so is the unnamed
	 * portal bound to it.
	 */
	int			dealloc_unnamed;
	int			dealloc_portal;
	uint8_t		dealloc_name[KEYLEN];
	size_t		dealloc_namelen;

	/* server direction */
	sstate		sst;
	uint8_t		shdr[5];
	int			shdrlen;
	uint32_t	sleft;
	uint8_t		sg[PS_CAP];		/* a tag, or a ParameterStatus */
	size_t		sglen;
	size_t		sgneed;
	saction		sact;
	int			authed;
	int			spoke;
	uint64_t	readies;		/* ReadyForQuery messages seen */
	uint32_t	auth_request;
	uint8_t		status;			/* of the last ReadyForQuery */

	/*
	 * The client's session stamp: a ParameterStatus for application_name
	 * that does not end with it means the client set another session's
	 * stamp (see ag_pgs_set_stamp).
	 */
	char		stamp[STAMP_CAP];

	/*
	 * Shared pool: the carrier's three messages, the client's own
	 * application_name, whether the client is inside an extended group
	 * (a message other than Query since its last Sync), whether the
	 * window's carrier is still to go (before the next message bound for
	 * the server), and whether a carrier sent before a Query is not
	 * answered yet (the client's next message waits).
	 */
	int			shared;
	uint8_t    *carrier;
	size_t		carrier_len;
	char		app[APP_CAP];
	int			in_group;
	int			carrier_due;
	int			carrier_query;
	int			sync_owed;		/* the proxy's Sync waits for the end of the
								 * client's Query, still being streamed */

	/* PgBouncer's BackendKeyData for this client */
	uint8_t		cancel_key[8];
	int			have_key;

	/* expected answers: a ring */
	qentry	   *q;
	size_t		qhead;
	size_t		qcount;
	size_t		qcap;
	uint64_t	seq;

	/*
	 * Entries that may still change the statement table (a Parse undone
	 * by an error, a Close, a DISCARD ALL), in all and in the batch the
	 * client has not closed with Sync yet.  The proxy decides a message
	 * that reads the table only when none is left in an earlier batch:
	 * until the server has answered those, their outcome is not known
	 * (inside one batch it does not matter: after an error the server
	 * skips the rest of the batch anyway).
	 */
	size_t		changers;
	size_t		open_changers;
	int			stalled;

	/* named statements: a chained hash */
	stmt	  **buckets;
	size_t		nbuckets;
	int			nstmts;
	size_t		stmt_bytes;

	/* why the stream ended */
	const char *f_sqlstate;
	const char *f_msg;
	const char *f_detail;
	const char *f_hint;
};

ag_pgstream *
ag_pgs_new(const ag_pgs_limits *lim)
{
	ag_pgstream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->lim = *lim;
	s->status = 'I';
	s->nbuckets = 16;
	s->buckets = calloc(s->nbuckets, sizeof(stmt *));
	s->qcap = 16;
	s->q = calloc(s->qcap, sizeof(qentry));
	if (s->buckets == NULL || s->q == NULL)
	{
		ag_pgs_free(s);
		return NULL;
	}
	/* the login's answers end with its ReadyForQuery */
	s->q[0].kind = Q_LOGIN;
	s->qcount = 1;
	return s;
}

static void
entry_release(qentry *e)
{
	if (e->kind == Q_SYNTH_CLOSE || e->kind == Q_SYNTH_DEALLOC || e->kind == Q_SYNTH_EXEC_DEALLOC)
		free(e->st);
	free(e->msg);
	e->st = NULL;
	e->msg = NULL;
}

void
ag_pgs_free(ag_pgstream *s)
{
	size_t		i;

	if (s == NULL)
		return;
	if (s->q)
		for (i = 0; i < s->qcount; i++)
			entry_release(&s->q[(s->qhead + i) % s->qcap]);
	if (s->buckets)
		for (i = 0; i < s->nbuckets; i++)
		{
			stmt	   *st = s->buckets[i];

			while (st)
			{
				stmt	   *next = st->next;

				free(st);
				st = next;
			}
		}
	free(s->buckets);
	free(s->q);
	free(s->g);
	free(s->carrier);
	free(s);
}

static ag_pgs_status
fatal(ag_pgstream *s, const char *sqlstate, const char *msg, const char *detail,
	  const char *hint)
{
	s->f_sqlstate = sqlstate;
	s->f_msg = msg;
	s->f_detail = detail;
	s->f_hint = hint;
	return AG_PGS_FATAL;
}

void
ag_pgs_fatal(const ag_pgstream *s, const char **sqlstate, const char **msg,
			 const char **detail, const char **hint)
{
	*sqlstate = s->f_sqlstate ? s->f_sqlstate : "08P01";
	*msg = s->f_msg ? s->f_msg : "protocol error";
	*detail = s->f_detail;
	*hint = s->f_hint;
}

int
ag_pgs_client_at_boundary(const ag_pgstream *s)
{
	return s->sst != S_PASS;
}

int
ag_pgs_server_spoke(const ag_pgstream *s)
{
	return s->spoke;
}

int
ag_pgs_ready_seen(const ag_pgstream *s)
{
	return s->readies > 0;
}

int
ag_pgs_set_stamp(ag_pgstream *s, const char *stamp)
{
	if (stamp == NULL || stamp[0] == '\0')
	{
		s->stamp[0] = '\0';
		return 0;
	}
	if (strlen(stamp) >= sizeof(s->stamp))
		return -1;
	strcpy(s->stamp, stamp);
	return 0;
}

/*
 * Does a ParameterStatus body (name NUL value NUL) keep the client's stamp?
 * Only application_name is looked at; its value must be the stamp, or end
 * with a space and the stamp (the extension keeps the stamp on a plain
 * value the client sets).
 */
static int
param_status_keeps_stamp(const ag_pgstream *s, const uint8_t *b, size_t len)
{
	static const char name[] = "application_name";
	const char *value;
	size_t		vlen,
				sl;

	if (len < sizeof(name) + 1 || memcmp(b, name, sizeof(name)) != 0)
		return 1;				/* another parameter */
	value = (const char *) b + sizeof(name);
	if (b[len - 1] != '\0')
		return 0;				/* malformed: fail closed */
	vlen = strlen(value);
	sl = strlen(s->stamp);
	if (vlen < sl || memcmp(value + vlen - sl, s->stamp, sl) != 0)
		return 0;
	return vlen == sl || value[vlen - sl - 1] == ' ';
}

/* Append a big-endian int16 / int32 and bytes to a message being built. */
static uint8_t *
put_bytes(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

static uint8_t *
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) (v >> 8);
	p[1] = (uint8_t) v;
	return p + 2;
}

static uint8_t *
put32(uint8_t *p, uint32_t v)
{
	ag_pg_put32(p, v);
	return p + 4;
}

int
ag_pgs_set_shared(ag_pgstream *s, const char *role, const char *stamp,
				  const char *client_app)
{
	static const char query[] = AG_PGS_CARRIER_QUERY;
	size_t		rl,
				sl;
	size_t		plen,
				blen,
				elen;
	uint8_t    *c,
			   *p;

	if (role == NULL || stamp == NULL)
		return -1;
	rl = strlen(role);
	sl = strlen(stamp);
	if (rl == 0 || rl > KEYLEN || sl == 0 || sl >= STAMP_CAP ||
		(client_app && strlen(client_app) >= sizeof(s->app)))
		return -1;
	/* Parse: "" query int16(0); Bind: "" "" 0 formats, 2 params, 0 results */
	plen = 4 + 1 + sizeof(query) + 2;
	blen = 4 + 1 + 1 + 2 + 2 + 4 + rl + 4 + sl + 2;
	elen = 4 + 1 + 4;
	c = malloc(3 + plen + blen + elen);
	if (c == NULL)
		return -1;
	p = c;
	*p++ = 'P';
	p = put32(p, (uint32_t) plen);
	*p++ = 0;
	p = put_bytes(p, query, sizeof(query));
	p = put16(p, 0);
	*p++ = 'B';
	p = put32(p, (uint32_t) blen);
	*p++ = 0;
	*p++ = 0;
	p = put16(p, 0);
	p = put16(p, 2);
	p = put32(p, (uint32_t) rl);
	p = put_bytes(p, role, rl);
	p = put32(p, (uint32_t) sl);
	p = put_bytes(p, stamp, sl);
	p = put16(p, 0);
	*p++ = 'E';
	p = put32(p, (uint32_t) elen);
	*p++ = 0;
	p = put32(p, 0);
	free(s->carrier);
	s->carrier = c;
	s->carrier_len = (size_t) (p - c);
	snprintf(s->app, sizeof(s->app), "%s", client_app ? client_app : "");
	s->stamp[0] = '\0';			/* no stamp in application_name to check */
	s->shared = 1;
	return 0;
}

int
ag_pgs_cancel_key(const ag_pgstream *s, uint8_t key[8])
{
	if (!s->have_key)
		return 0;
	memcpy(key, s->cancel_key, 8);
	return 1;
}

static int
is_synth(qkind k)
{
	return k == Q_SYNTH_CLOSE || k == Q_SYNTH_DEALLOC || k == Q_SYNTH_EXEC_DEALLOC ||
		k == Q_SYNTH_MSG;
}

int
ag_pgs_outstanding(const ag_pgstream *s)
{
	size_t		i;

	/* answers of the proxy's own wait only for their turn */
	for (i = 0; i < s->qcount; i++)
	{
		qkind		k = s->q[(s->qhead + i) % s->qcap].kind;

		if (k != Q_LOGIN && !is_synth(k))
			return 1;
	}
	return 0;
}

int
ag_pgs_idle(const ag_pgstream *s)
{
	return s->qcount == 0 && s->status == 'I' && !s->skipping &&
		s->cst == C_HEADER && s->chdrlen == 0 &&
		s->sst == S_HEADER && s->shdrlen == 0;
}

size_t
ag_pgs_pending(const ag_pgstream *s)
{
	return s->qcount;
}

uint32_t
ag_pgs_auth_request(const ag_pgstream *s)
{
	return s->auth_request;
}

int
ag_pgs_statements(const ag_pgstream *s, size_t *bytes)
{
	if (bytes)
		*bytes = s->stmt_bytes;
	return s->nstmts;
}

/* ------------------------------------------------------ statement table */

static size_t
key_len(const uint8_t *name, size_t len)
{
	return len < KEYLEN ? len : KEYLEN;
}

static uint64_t
key_hash(const uint8_t *key, size_t len)
{
	uint64_t	h = 1469598103934665603ULL;
	size_t		i;

	for (i = 0; i < len; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return h;
}

static stmt **
stmt_slot(ag_pgstream *s, const uint8_t *key, size_t keylen)
{
	stmt	  **p = &s->buckets[key_hash(key, keylen) & (s->nbuckets - 1)];

	while (*p && ((*p)->keylen != keylen || memcmp((*p)->data, key, keylen) != 0))
		p = &(*p)->next;
	return p;
}

static stmt *
stmt_find(ag_pgstream *s, const uint8_t *name, size_t len)
{
	return *stmt_slot(s, name, key_len(name, len));
}

static size_t
stmt_size(const stmt *st)
{
	return st->keylen + st->bodylen;
}

/* Link st in (its key is not there); the table grows as it fills. */
static void
stmt_insert(ag_pgstream *s, stmt *st)
{
	stmt	  **slot;

	if ((size_t) s->nstmts >= s->nbuckets)
	{
		size_t		nb = s->nbuckets * 2;
		stmt	  **b = calloc(nb, sizeof(stmt *));

		if (b != NULL)
		{
			size_t		i;

			for (i = 0; i < s->nbuckets; i++)
			{
				stmt	   *x = s->buckets[i];

				while (x)
				{
					stmt	   *next = x->next;
					size_t		h = key_hash(x->data, x->keylen) & (nb - 1);

					x->next = b[h];
					b[h] = x;
					x = next;
				}
			}
			free(s->buckets);
			s->buckets = b;
			s->nbuckets = nb;
		}
	}
	slot = stmt_slot(s, st->data, st->keylen);
	st->next = NULL;
	*slot = st;
	s->nstmts++;
	s->stmt_bytes += stmt_size(st);
}

/* Unlink the statement of that key; returns it (the caller frees it). */
static stmt *
stmt_unlink(ag_pgstream *s, const uint8_t *key, size_t keylen)
{
	stmt	  **slot = stmt_slot(s, key, keylen);
	stmt	   *st = *slot;

	if (st)
	{
		*slot = st->next;
		st->next = NULL;
		s->nstmts--;
		s->stmt_bytes -= stmt_size(st);
	}
	return st;
}

/* DISCARD ALL / DEALLOCATE ALL: the statements made before entry seq. */
static void
stmt_clear_before(ag_pgstream *s, uint64_t seq)
{
	size_t		i;

	for (i = 0; i < s->nbuckets; i++)
	{
		stmt	  **p = &s->buckets[i];

		while (*p)
		{
			stmt	   *st = *p;

			if (st->seq < seq)
			{
				*p = st->next;
				s->nstmts--;
				s->stmt_bytes -= stmt_size(st);
				free(st);
			}
			else
				p = &st->next;
		}
	}
}

/* ---------------------------------------------------------------- queue */

static qentry *
q_head(ag_pgstream *s)
{
	return s->qcount ? &s->q[s->qhead] : NULL;
}

static qentry *
q_at(ag_pgstream *s, size_t i)
{
	return &s->q[(s->qhead + i) % s->qcap];
}

static int
q_push(ag_pgstream *s, qkind kind, stmt *st, uint8_t *msg, size_t msglen)
{
	qentry	   *e;

	if (s->qcount == s->qcap)
	{
		size_t		cap = s->qcap * 2;
		qentry	   *q = malloc(cap * sizeof(qentry));
		size_t		i;

		if (q == NULL)
			return -1;
		for (i = 0; i < s->qcount; i++)
			q[i] = *q_at(s, i);
		free(s->q);
		s->q = q;
		s->qcap = cap;
		s->qhead = 0;
	}
	e = q_at(s, s->qcount);
	e->kind = kind;
	e->changer = kind == Q_PARSE_NAMED || kind == Q_SYNTH_CLOSE ||
		kind == Q_SYNTH_DEALLOC || kind == Q_SYNTH_EXEC_DEALLOC || kind == Q_SIMPLE_CLEARS;
	if (e->changer)
	{
		s->changers++;
		s->open_changers++;
	}
	/* a Sync ends a batch; so does a Query, which is one on its own */
	if (kind == Q_SYNC || kind == Q_SIMPLE || kind == Q_SIMPLE_CLEARS || kind == Q_SYNTH_DEALLOC)
		s->open_changers = 0;
	e->seq = ++s->seq;
	e->st = st;
	e->msg = msg;
	e->msglen = msglen;
	s->qcount++;
	return 0;
}

static void
q_pop(ag_pgstream *s)
{
	if (s->q[s->qhead].changer)
	{
		s->changers--;
		/* the open batch's are the newest */
		if (s->open_changers > s->changers)
			s->open_changers = s->changers;
	}
	entry_release(&s->q[s->qhead]);
	s->qhead = (s->qhead + 1) % s->qcap;
	s->qcount--;
}

/* Undo what a skipped entry did to the statement table. */
static void
q_undo(ag_pgstream *s, qentry *e)
{
	if (e->kind == Q_PARSE_NAMED && e->st)
	{
		stmt	   *st = stmt_unlink(s, e->st->data, e->st->keylen);

		free(st);				/* the same statement: nothing since replaced it */
		e->st = NULL;
	}
	else if ((e->kind == Q_SYNTH_CLOSE || e->kind == Q_SYNTH_DEALLOC ||
			  e->kind == Q_SYNTH_EXEC_DEALLOC) && e->st)
	{
		stmt_insert(s, e->st);
		e->st = NULL;
	}
}

/*
 * The server reported an error and skips the client's messages until
 * Sync: so are their entries, newest first undone.  When the client has
 * not sent that Sync yet, the proxy drops its messages until it does.
 */
static void
q_skip_to_sync(ag_pgstream *s)
{
	size_t		n = 0;
	size_t		i;

	while (n < s->qcount && q_at(s, n)->kind != Q_SYNC)
		n++;
	for (i = n; i > 0; i--)
		q_undo(s, q_at(s, i - 1));
	for (i = 0; i < n; i++)
		q_pop(s);
	if (s->qcount == 0)
		s->skipping = 1;
}

/* ------------------------------------------------------------ carrier */

/* The messages that begin a group: the window's carrier goes before one. */
static int
starts_group(uint8_t t)
{
	return t == 'Q' || t == 'P' || t == 'B' || t == 'D' || t == 'E' || t == 'C';
}

/*
 * A client message of type t begins (its header is in): does it open a
 * window that needs the carrier?  Only when nothing of the client's is
 * outstanding and the last ReadyForQuery said idle.  From here the
 * server's unnamed statement counts as the proxy's: the carrier's Parse
 * takes it, and a Bind of it must not bind the carrier's CALL.
 */
static void
window_check(ag_pgstream *s, uint8_t t)
{
	if (!s->shared)
		return;
	if (t == 'S')
	{
		s->in_group = 0;
		return;
	}
	if (!starts_group(t))
		return;
	if (!s->in_group && !s->skipping && s->status == 'I' && !ag_pgs_outstanding(s))
	{
		s->carrier_due = 1;
		s->unnamed_ours = 1;
	}
	if (t != 'Q')
		s->in_group = 1;
}

/*
 * A shared client's message of type t would begin a group while an
 * earlier request is unanswered (pipelining): it waits.  Sent on at once,
 * it could get no carrier (the state it will meet is not known: idle, or
 * inside a transaction block, or failed), and PgBouncer may hand it to
 * another server connection once the earlier answers are in.
 */
static int
window_waits(const ag_pgstream *s, uint8_t t)
{
	return s->shared && starts_group(t) && !s->in_group && !s->skipping &&
		ag_pgs_outstanding(s);
}

/* Insert n bytes at offset at of b's contents (p is not in b). */
static int
buf_insert(ag_buf *b, size_t at, const uint8_t *p, size_t n)
{
	size_t		tail = b->len - at;
	uint8_t    *base;

	if (ag_buf_add(b, p, n) < 0)
		return -1;
	base = b->data + b->off;
	memmove(base + at + n, base + at, tail);
	memcpy(base + at, p, n);
	return 0;
}

/*
 * A client message of type t has been handled as far as it goes now:
 * when it was the first of the window to send the server something (at
 * offset mark of to_server, its answers from queue position qmark on),
 * the carrier and its three answers go in before it.  A Query or Sync
 * that sent nothing (answered here) closes the window without one.
 */
static ag_pgs_status
carrier_place(ag_pgstream *s, uint8_t t, size_t mark, size_t qmark, ag_buf *to_server)
{
	static const qkind kinds[3] = {Q_CARRIER_PARSE, Q_CARRIER_BIND, Q_CARRIER_EXEC};
	qentry		moved[3];
	size_t		i;

	if (!s->carrier_due || s->cst == C_GATHER)
		return AG_PGS_OK;		/* not yet decided */
	if (starts_group(t) && to_server->len > mark)
	{
		for (i = 0; i < 3; i++)
			if (q_push(s, kinds[i], NULL, NULL, 0) < 0)
				return AG_PGS_NOMEM;
		if (buf_insert(to_server, mark, s->carrier, s->carrier_len) < 0)
			return AG_PGS_NOMEM;
		/* the three new entries move in front of the message's own */
		for (i = 0; i < 3; i++)
			moved[i] = *q_at(s, s->qcount - 3 + i);
		for (i = s->qcount - 1; i >= qmark + 3; i--)
			*q_at(s, i) = *q_at(s, i - 3);
		for (i = 0; i < 3; i++)
			*q_at(s, qmark + i) = moved[i];
		s->carrier_due = 0;
		s->carrier_query = t == 'Q';
	}
	if (t == 'Q' || t == 'S')
		s->carrier_due = 0;
	return AG_PGS_OK;
}

static const uint8_t sync_msg[5] = {'S', 0, 0, 0, 4};

/*
 * The server refused the carrier (ErrorResponse, passed to the client)
 * and skips messages until Sync.  The carrier's entries go; a Query
 * behind it gets the proxy's Sync, whose ReadyForQuery answers it; an
 * extended group is skipped to the client's own Sync.
 */
static ag_pgs_status
carrier_failed(ag_pgstream *s, ag_buf *to_server)
{
	qentry	   *e;

	while ((e = q_head(s)) != NULL &&
		   (e->kind == Q_CARRIER_PARSE || e->kind == Q_CARRIER_BIND || e->kind == Q_CARRIER_EXEC))
		q_pop(s);
	s->carrier_query = 0;
	if (e != NULL && (e->kind == Q_SIMPLE || e->kind == Q_SIMPLE_CLEARS))
	{
		/* not into the middle of the Query's own bytes */
		if (s->cst == C_STREAM)
		{
			s->sync_owed = 1;
			return AG_PGS_OK;
		}
		return ag_buf_add(to_server, sync_msg, 5) < 0 ? AG_PGS_NOMEM : AG_PGS_OK;
	}
	q_skip_to_sync(s);
	return AG_PGS_OK;
}

/* Our own answers at the head go out, between server messages only. */
static ag_pgs_status
emit_synth(ag_pgstream *s, ag_buf *to_client)
{
	static const uint8_t close_complete[5] = {'3', 0, 0, 0, 4};
	static const uint8_t dealloc[16] = {'C', 0, 0, 0, 15, 'D', 'E', 'A', 'L', 'L', 'O', 'C', 'A', 'T', 'E', 0};
	qentry	   *e;

	while (s->sst == S_HEADER && s->shdrlen == 0 && (e = q_head(s)) != NULL &&
		   (e->kind == Q_SYNTH_CLOSE || e->kind == Q_SYNTH_DEALLOC ||
			e->kind == Q_SYNTH_EXEC_DEALLOC || e->kind == Q_SYNTH_MSG))
	{
		if (e->kind == Q_SYNTH_CLOSE)
		{
			if (ag_buf_add(to_client, close_complete, 5) < 0)
				return AG_PGS_NOMEM;
		}
		else if (e->kind == Q_SYNTH_MSG)
		{
			if (ag_buf_add(to_client, e->msg, e->msglen) < 0)
				return AG_PGS_NOMEM;
		}
		else if (e->kind == Q_SYNTH_EXEC_DEALLOC)
		{
			if (ag_buf_add(to_client, dealloc, 16) < 0)
				return AG_PGS_NOMEM;
		}
		else
		{
			uint8_t		z[6] = {'Z', 0, 0, 0, 5, s->status};

			if (s->status == 'E')
			{
				/* in a failed transaction block the server refuses it */
				uint8_t		err[256];
				int			n = ag_pgproto_error(err, sizeof(err), "ERROR", "25P02",
												 "current transaction is aborted, commands ignored until end of transaction block",
												 NULL, NULL);

				if (n < 0 || ag_buf_add(to_client, err, (size_t) n) < 0)
					return AG_PGS_NOMEM;
				q_undo(s, e);
			}
			else if (ag_buf_add(to_client, dealloc, 16) < 0)
				return AG_PGS_NOMEM;
			if (ag_buf_add(to_client, z, 6) < 0)
				return AG_PGS_NOMEM;
		}
		q_pop(s);
	}
	return AG_PGS_OK;
}

/* ------------------------------------------------------ client messages */

static int
put_header(ag_buf *b, uint8_t type, uint32_t len)
{
	uint8_t		h[5];

	h[0] = type;
	ag_pg_put32(h + 1, len);
	return ag_buf_add(b, h, 5);
}

/* Parse("", stored text and types): the server's copy of st. */
static int
put_parse(ag_buf *b, const stmt *st)
{
	static const uint8_t nul = 0;

	return put_header(b, 'P', (uint32_t) (4 + 1 + st->bodylen)) < 0 ||
		ag_buf_add(b, &nul, 1) < 0 ||
		ag_buf_add(b, st->data + st->keylen + 1, st->bodylen) < 0 ? -1 : 0;
}

/*
 * An error found by the proxy: the server gets a Parse that fails, so
 * that it skips to Sync and aborts a transaction block as for its own
 * errors, and the client gets this error in the place of that one.  The
 * rest of the client's message is dropped.
 */
static ag_pgs_status
client_fail(ag_pgstream *s, ag_buf *to_server, const char *sqlstate,
			const char *msg, const char *detail, const char *hint)
{
	uint8_t    *err = malloc(1024);
	int			n;
	static const uint8_t tail[3] = {0, 0, 0};	/* query's NUL, no types */
	static const uint8_t nul = 0;

	if (err == NULL)
		return AG_PGS_NOMEM;
	n = ag_pgproto_error(err, 1024, "ERROR", sqlstate, msg, detail, hint);
	if (n < 0)
		n = ag_pgproto_error(err, 1024, "ERROR", sqlstate, msg, NULL, NULL);
	if (n > 0)
	{
		uint8_t    *fit = realloc(err, (size_t) n);	/* queued: keep it small */

		if (fit != NULL)
			err = fit;
	}
	if (n < 0 ||
		put_header(to_server, 'P', (uint32_t) (4 + 1 + strlen(fail_query) + 3)) < 0 ||
		ag_buf_add(to_server, &nul, 1) < 0 ||
		ag_buf_add(to_server, fail_query, strlen(fail_query)) < 0 ||
		ag_buf_add(to_server, tail, 3) < 0 ||
		q_push(s, Q_FAIL, NULL, err, (size_t) n) < 0)
	{
		free(err);
		return AG_PGS_NOMEM;
	}
	s->unnamed_ours = 1;
	s->dealloc_unnamed = 0;
	s->skipping = 1;
	s->cst = s->cleft ? C_DISCARD : C_HEADER;
	return AG_PGS_OK;
}

/* An answer of ours, in order with the server's. */
static ag_pgs_status
push_synth(ag_pgstream *s, const uint8_t *msg, size_t len)
{
	uint8_t    *m = malloc(len);

	if (m == NULL)
		return AG_PGS_NOMEM;
	memcpy(m, msg, len);
	if (q_push(s, Q_SYNTH_MSG, NULL, m, len) < 0)
	{
		free(m);
		return AG_PGS_NOMEM;
	}
	return AG_PGS_OK;
}

/* Name for an error message: printable, at most 63 bytes shown. */
static void
show_name(char *out, size_t outsize, const uint8_t *name, size_t len)
{
	size_t		i;
	size_t		n = 0;

	for (i = 0; i < len && i < KEYLEN && n + 1 < outsize; i++)
		out[n++] = (name[i] >= 0x20 && name[i] < 0x7f) ? (char) name[i] : '?';
	out[n] = '\0';
}

static ag_pgs_status
fail_unknown(ag_pgstream *s, ag_buf *to_server, const uint8_t *name, size_t len)
{
	char		shown[KEYLEN + 1];
	char		msg[KEYLEN + 64];

	if (len == 0)
		return client_fail(s, to_server, "26000", "unnamed prepared statement does not exist",
						   NULL, NULL);
	show_name(shown, sizeof(shown), name, len);
	snprintf(msg, sizeof(msg), "prepared statement \"%s\" does not exist", shown);
	return client_fail(s, to_server, "26000", msg, NULL, NULL);
}

/* Pass the header and gathered bytes, then stream the rest of the message. */
static ag_pgs_status
client_pass_gathered(ag_pgstream *s, ag_buf *to_server)
{
	if (ag_buf_add(to_server, s->chdr, 5) < 0 || ag_buf_add(to_server, s->g, s->glen) < 0)
		return AG_PGS_NOMEM;
	s->cst = s->cleft ? C_STREAM : C_HEADER;
	return AG_PGS_OK;
}

/* Parse with a name, gathered whole. */
static ag_pgs_status
client_named_parse(ag_pgstream *s, ag_buf *to_server)
{
	const uint8_t *b = s->g;
	size_t		len = s->glen;
	const uint8_t *nul1 = memchr(b, 0, len);
	const uint8_t *nul2 = nul1 ? memchr(nul1 + 1, 0, len - (size_t) (nul1 + 1 - b)) : NULL;
	size_t		namelen;
	size_t		rest;
	size_t		keylen;
	stmt	   *st;
	int			ntypes;

	if (nul2 == NULL || (rest = len - (size_t) (nul2 + 1 - b)) < 2 ||
		(ntypes = (b[nul2 + 1 - b] << 8) | b[nul2 + 2 - b]) > 32767 ||
		rest != 2 + 4 * (size_t) ntypes)
		return client_fail(s, to_server, "08P01", "invalid message format", NULL, NULL);
	namelen = (size_t) (nul1 - b);
	keylen = key_len(b, namelen);
	if (stmt_find(s, b, namelen) != NULL)
	{
		char		shown[KEYLEN + 1];
		char		msg[KEYLEN + 64];

		show_name(shown, sizeof(shown), b, namelen);
		snprintf(msg, sizeof(msg), "prepared statement \"%s\" already exists", shown);
		return client_fail(s, to_server, "42P05", msg, NULL, NULL);
	}
	if (s->nstmts >= s->lim.max_statements ||
		s->stmt_bytes + keylen + (len - namelen - 1) > s->lim.max_statement_bytes)
		return client_fail(s, to_server, "54000",
						   "too many prepared statements on this connection",
						   "agentgate-proxy keeps the named prepared statements of each connection, "
						   "up to max_prepared_statements and max_prepared_bytes.",
						   "Close (deallocate) statements the client no longer uses.");
	st = malloc(sizeof(stmt) + keylen + 1 + (len - namelen - 1));
	if (st == NULL)
		return AG_PGS_NOMEM;
	st->keylen = keylen;
	st->bodylen = len - namelen - 1;
	memcpy(st->data, b, keylen);
	st->data[keylen] = 0;
	memcpy(st->data + keylen + 1, nul1 + 1, st->bodylen);
	if (put_parse(to_server, st) < 0 || q_push(s, Q_PARSE_NAMED, st, NULL, 0) < 0)
	{
		free(st);
		return AG_PGS_NOMEM;
	}
	st->seq = s->seq;
	stmt_insert(s, st);
	s->unnamed_ours = 1;
	s->dealloc_unnamed = 0;
	s->cst = C_HEADER;
	return AG_PGS_OK;
}

static int	deallocate_name(const uint8_t *q, size_t len, uint8_t *out, size_t *outlen);

/*
 * A short unnamed Parse, gathered whole.  "DEALLOCATE name" of a kept
 * statement is answered here (the server does not have it) when nothing
 * is outstanding, so that the last ReadyForQuery says the transaction
 * is not failed; everything else passes.
 */
static ag_pgs_status
client_unnamed_parse(ag_pgstream *s, ag_buf *to_server)
{
	static const uint8_t parse_complete[5] = {'1', 0, 0, 0, 4};
	const uint8_t *text = s->g + 1;
	const uint8_t *nul = memchr(text, 0, s->glen - 1);
	uint8_t		name[KEYLEN];
	size_t		namelen;

	s->unnamed_ours = 0;
	s->dealloc_unnamed = 0;
	if (nul != NULL && s->qcount == 0 && s->status != 'E' &&
		deallocate_name(text, (size_t) (nul - text) + 1, name, &namelen) &&
		stmt_find(s, name, namelen) != NULL)
	{
		memcpy(s->dealloc_name, name, namelen);
		s->dealloc_namelen = namelen;
		s->dealloc_unnamed = 1;
		s->cst = C_HEADER;
		return push_synth(s, parse_complete, 5);
	}
	if (q_push(s, Q_PARSE, NULL, NULL, 0) < 0)
		return AG_PGS_NOMEM;
	return client_pass_gathered(s, to_server);
}

/* Bind: the portal and statement names are in s->g (or it is malformed). */
static ag_pgs_status
client_bind(ag_pgstream *s, ag_buf *to_server)
{
	const uint8_t *b = s->g;
	size_t		len = s->glen;
	const uint8_t *nul1 = len ? memchr(b, 0, len) : NULL;
	const uint8_t *nul2 = nul1 ? memchr(nul1 + 1, 0, len - (size_t) (nul1 + 1 - b)) : NULL;
	const uint8_t *name;
	size_t		namelen;
	stmt	   *st;
	static const uint8_t nul = 0;

	if (nul2 == NULL)
	{
		if (s->cleft > 0)
			return fatal(s, "08P01", "portal or statement name too long",
						 "agentgate-proxy reads names of at most 2047 bytes.", NULL);
		return client_fail(s, to_server, "08P01", "invalid message format", NULL, NULL);
	}
	name = nul1 + 1;
	namelen = (size_t) (nul2 - name);
	if (namelen == 0 && s->dealloc_unnamed)
	{
		static const uint8_t bind_complete[5] = {'2', 0, 0, 0, 4};
		ag_pgs_status st2;

		if (nul1 != b)
			return client_fail(s, to_server, "0A000",
							   "DEALLOCATE of a statement kept by agentgate-proxy must use the unnamed portal",
							   NULL, NULL);
		if ((st2 = push_synth(s, bind_complete, 5)) != AG_PGS_OK)
			return st2;
		s->dealloc_portal = 1;
		s->cst = s->cleft ? C_DISCARD : C_HEADER;
		return AG_PGS_OK;
	}
	if (nul1 == b)
		s->dealloc_portal = 0;	/* the unnamed portal is bound anew */
	if (namelen == 0)
	{
		if (s->unnamed_ours)
			return fail_unknown(s, to_server, name, 0);
		if (q_push(s, Q_BIND, NULL, NULL, 0) < 0)
			return AG_PGS_NOMEM;
		return client_pass_gathered(s, to_server);
	}
	st = stmt_find(s, name, namelen);
	if (st == NULL)
		return fail_unknown(s, to_server, name, namelen);
	/* Parse("", text) + Bind(portal, "", the rest as sent) */
	if (put_parse(to_server, st) < 0 || q_push(s, Q_PARSE_DROP, NULL, NULL, 0) < 0 ||
		put_header(to_server, 'B', ag_pg_get32(s->chdr + 1) - (uint32_t) namelen) < 0 ||
		ag_buf_add(to_server, b, (size_t) (nul1 - b) + 1) < 0 ||
		ag_buf_add(to_server, &nul, 1) < 0 ||
		ag_buf_add(to_server, nul2 + 1, len - (size_t) (nul2 + 1 - b)) < 0 ||
		q_push(s, Q_BIND, NULL, NULL, 0) < 0)
		return AG_PGS_NOMEM;
	s->unnamed_ours = 1;
	s->dealloc_unnamed = 0;
	s->cst = s->cleft ? C_STREAM : C_HEADER;
	return AG_PGS_OK;
}

/* Describe or Close, gathered whole. */
static ag_pgs_status
client_describe_close(ag_pgstream *s, ag_buf *to_server)
{
	const uint8_t *b = s->g;
	size_t		len = s->glen;
	int			describe = s->chdr[0] == 'D';
	const uint8_t *name;
	size_t		namelen;
	stmt	   *st;

	if (len < 2 || b[len - 1] != 0 || memchr(b + 1, 0, len - 1) != b + len - 1)
		return client_fail(s, to_server, "08P01", "invalid message format", NULL, NULL);
	name = b + 1;
	namelen = len - 2;
	if (namelen == 0 && describe &&
		((b[0] == 'P' && s->dealloc_portal) || (b[0] == 'S' && s->dealloc_unnamed)))
	{
		static const uint8_t no_params[7] = {'t', 0, 0, 0, 6, 0, 0};
		static const uint8_t no_data[5] = {'n', 0, 0, 0, 4};
		ag_pgs_status st2;

		if ((b[0] == 'S' && (st2 = push_synth(s, no_params, 7)) != AG_PGS_OK) ||
			(st2 = push_synth(s, no_data, 5)) != AG_PGS_OK)
			return st2;
		s->cst = C_HEADER;
		return AG_PGS_OK;
	}
	if (namelen == 0 && !describe)
	{
		if (b[0] == 'P')
			s->dealloc_portal = 0;
		else if (b[0] == 'S')
			s->dealloc_unnamed = 0;
	}
	if (b[0] != 'S')
	{
		/* a portal (or a kind the server will refuse): as it is */
		if (q_push(s, describe ? Q_DESC_PORTAL : Q_CLOSE, NULL, NULL, 0) < 0)
			return AG_PGS_NOMEM;
		return client_pass_gathered(s, to_server);
	}
	if (namelen == 0)
	{
		if (describe && s->unnamed_ours)
			return fail_unknown(s, to_server, name, 0);
		if (q_push(s, describe ? Q_DESC_STMT : Q_CLOSE, NULL, NULL, 0) < 0)
			return AG_PGS_NOMEM;
		return client_pass_gathered(s, to_server);
	}
	if (!describe)
	{
		/* closing a name that does not exist is not an error */
		st = stmt_unlink(s, name, key_len(name, namelen));
		if (q_push(s, Q_SYNTH_CLOSE, st, NULL, 0) < 0)
		{
			if (st)
				stmt_insert(s, st);
			return AG_PGS_NOMEM;
		}
		s->cst = C_HEADER;
		return AG_PGS_OK;
	}
	st = stmt_find(s, name, namelen);
	if (st == NULL)
		return fail_unknown(s, to_server, name, namelen);
	{
		static const uint8_t desc[7] = {'D', 0, 0, 0, 6, 'S', 0};

		if (put_parse(to_server, st) < 0 || q_push(s, Q_PARSE_DROP, NULL, NULL, 0) < 0 ||
			ag_buf_add(to_server, desc, 7) < 0 || q_push(s, Q_DESC_STMT, NULL, NULL, 0) < 0)
			return AG_PGS_NOMEM;
	}
	s->unnamed_ours = 1;
	s->dealloc_unnamed = 0;
	s->cst = C_HEADER;
	return AG_PGS_OK;
}

static ag_pgs_status
client_gather(ag_pgstream *s, size_t need)
{
	if (need > s->gcap)
	{
		uint8_t    *g = realloc(s->g, need);

		if (g == NULL)
			return AG_PGS_NOMEM;
		s->g = g;
		s->gcap = need;
	}
	s->gneed = need;
	s->cst = C_GATHER;
	return AG_PGS_OK;
}

/*
 * Whether a Query's text may deallocate statements (DISCARD ALL,
 * DEALLOCATE ALL): then the client's later batches wait for its answer.
 * Erring on the side of "may" only costs a wait.
 */
static int
may_clear(const uint8_t *q, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if ((i + 7 <= len && strncasecmp((const char *) q + i, "discard", 7) == 0) ||
			(i + 10 <= len && strncasecmp((const char *) q + i, "deallocate", 10) == 0))
			return 1;
	}
	return 0;
}

static int
is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * A Query that is exactly "DEALLOCATE [PREPARE] name" (an identifier,
 * folded to lower case, or a quoted one; a final semicolon allowed):
 * 1 with the name (its first 63 bytes) in out.  "ALL" is not a name.
 */
static int
deallocate_name(const uint8_t *q, size_t len, uint8_t *out, size_t *outlen)
{
	size_t		i = 0;
	size_t		n = 0;

	if (len == 0 || q[len - 1] != 0)
		return 0;
	len--;						/* the terminating NUL */
	while (i < len && is_space(q[i]))
		i++;
	if (len - i < 10 || strncasecmp((const char *) q + i, "deallocate", 10) != 0)
		return 0;
	i += 10;
	if (i >= len || !is_space(q[i]))
		return 0;
	while (i < len && is_space(q[i]))
		i++;
	if (len - i > 8 && strncasecmp((const char *) q + i, "prepare", 7) == 0 && is_space(q[i + 7]))
	{
		i += 7;
		while (i < len && is_space(q[i]))
			i++;
	}
	if (i < len && q[i] == '"')
	{
		for (i++; i < len; i++)
		{
			if (q[i] == '"')
			{
				if (i + 1 < len && q[i + 1] == '"')
					i++;
				else
					break;
			}
			if (n < KEYLEN)
				out[n++] = q[i];
		}
		if (i >= len || n == 0)
			return 0;
		i++;
	}
	else
	{
		size_t		start = i;

		while (i < len && (q[i] == '_' || q[i] == '$' || (q[i] >= '0' && q[i] <= '9') ||
						   (q[i] >= 'a' && q[i] <= 'z') || (q[i] >= 'A' && q[i] <= 'Z') ||
						   q[i] >= 0x80))
		{
			if (n < KEYLEN)
				out[n++] = (q[i] >= 'A' && q[i] <= 'Z') ? (uint8_t) (q[i] + 32) : q[i];
			i++;
		}
		if (i == start || (q[start] >= '0' && q[start] <= '9') || q[start] == '$' ||
			(n == 3 && memcmp(out, "all", 3) == 0))
			return 0;
	}
	while (i < len && is_space(q[i]))
		i++;
	if (i < len && q[i] == ';')
		i++;
	while (i < len && is_space(q[i]))
		i++;
	if (i != len)
		return 0;
	*outlen = n;
	return 1;
}

/* A whole header is in s->chdr: check it and decide what to do. */
static ag_pgs_status
client_header(ag_pgstream *s, ag_buf *to_server)
{
	uint8_t		t = s->chdr[0];
	uint32_t	mlen = ag_pg_get32(s->chdr + 1);
	qkind		k;

	s->chdrlen = 0;
	s->glen = 0;
	s->cphase = 0;
	if (t == 'F')
		return fatal(s, "42501", "fastpath function calls are not allowed",
					 "agentgate-proxy does not forward FunctionCall messages.",
					 "Call the function in a SELECT statement.");
	if (mlen < 4 || mlen > s->lim.max_message)
		return fatal(s, "08P01", "invalid message length", NULL, NULL);
	s->cleft = mlen - 4;

	/* after an error the server ignores everything up to Sync: so do we */
	if (s->skipping && t != 'S' && t != 'X')
	{
		s->cst = s->cleft ? C_DISCARD : C_HEADER;
		return AG_PGS_OK;
	}
	switch (t)
	{
		case 'P':
			if (s->cleft > 0)
				return client_gather(s, 1);
			k = Q_PARSE;
			break;
		case 'B':
			return client_gather(s, s->cleft < AG_PGS_MAX_NAME_FIELD ? s->cleft : AG_PGS_MAX_NAME_FIELD);
		case 'D':
		case 'C':
			if (s->cleft > AG_PGS_MAX_NAME_FIELD)
				return fatal(s, "08P01", "portal or statement name too long",
							 "agentgate-proxy reads names of at most 2047 bytes.", NULL);
			return client_gather(s, s->cleft);
		case 'Q':
			/* short enough to look for DISCARD ALL / DEALLOCATE ALL in */
			if (s->cleft > 0 && s->cleft <= MAX_CLEAR_QUERY)
				return client_gather(s, s->cleft);
			k = Q_SIMPLE;
			break;
		case 'E':
			if (s->dealloc_portal && s->cleft > 0 && s->cleft <= AG_PGS_MAX_NAME_FIELD)
				return client_gather(s, s->cleft);
			k = Q_EXECUTE;
			break;
		case 'S':
			s->skipping = 0;
			k = Q_SYNC;
			break;
		default:
			/* Flush, Terminate, COPY data and the rest: no answer of their own */
			if (ag_buf_add(to_server, s->chdr, 5) < 0)
				return AG_PGS_NOMEM;
			s->cst = s->cleft ? C_STREAM : C_HEADER;
			return AG_PGS_OK;
	}
	if (q_push(s, k, NULL, NULL, 0) < 0 || ag_buf_add(to_server, s->chdr, 5) < 0)
		return AG_PGS_NOMEM;
	s->cst = s->cleft ? C_STREAM : C_HEADER;
	return AG_PGS_OK;
}

/* s->g holds what was asked for. */
static ag_pgs_status
client_gathered(ag_pgstream *s, ag_buf *to_server)
{
	switch (s->chdr[0])
	{
		case 'P':
			if (s->cphase == 0)
			{
				size_t		body = s->glen + s->cleft;

				if (s->g[0] == 0)
				{
					/* short: read whole, it may be DEALLOCATE of a kept name */
					if (s->cleft > 0 && body <= MAX_CLEAR_QUERY + 8)
					{
						s->cphase = 2;
						return client_gather(s, body);
					}
					/* unnamed: the client's own again, and streamed */
					s->unnamed_ours = 0;
					s->dealloc_unnamed = 0;
					if (q_push(s, Q_PARSE, NULL, NULL, 0) < 0)
						return AG_PGS_NOMEM;
					return client_pass_gathered(s, to_server);
				}
				if (body > s->lim.max_statement_bytes)
					return client_fail(s, to_server, "54000",
									   "prepared statement too large to keep",
									   "agentgate-proxy keeps named prepared statements up to max_prepared_bytes per connection.",
									   "Use an unnamed statement for very long queries.");
				s->cphase = 1;
				return client_gather(s, body);
			}
			if (s->cphase == 2)
				return client_unnamed_parse(s, to_server);
			return client_named_parse(s, to_server);
		case 'E':
			/* Execute of the unnamed portal bound to a DEALLOCATE of ours */
			if (s->glen > 0 && s->g[0] == 0 && s->dealloc_portal)
			{
				stmt	   *st = stmt_unlink(s, s->dealloc_name, s->dealloc_namelen);

				s->dealloc_portal = 0;
				if (st == NULL)
					return fail_unknown(s, to_server, s->dealloc_name, s->dealloc_namelen);
				if (q_push(s, Q_SYNTH_EXEC_DEALLOC, st, NULL, 0) < 0)
				{
					stmt_insert(s, st);
					return AG_PGS_NOMEM;
				}
				s->cst = C_HEADER;
				return AG_PGS_OK;
			}
			if (q_push(s, Q_EXECUTE, NULL, NULL, 0) < 0)
				return AG_PGS_NOMEM;
			return client_pass_gathered(s, to_server);
		case 'B':
			return client_bind(s, to_server);
		case 'Q':
			{
				uint8_t		name[KEYLEN + 1];
				size_t		namelen;
				stmt	   *st;

				/* DEALLOCATE of a statement the proxy keeps: answered here */
				if (deallocate_name(s->g, s->glen, name, &namelen) &&
					(st = stmt_unlink(s, name, namelen)) != NULL)
				{
					if (q_push(s, Q_SYNTH_DEALLOC, st, NULL, 0) < 0)
					{
						stmt_insert(s, st);
						return AG_PGS_NOMEM;
					}
					s->cst = C_HEADER;
					return AG_PGS_OK;
				}
				if (q_push(s, may_clear(s->g, s->glen) ? Q_SIMPLE_CLEARS : Q_SIMPLE, NULL, NULL, 0) < 0)
					return AG_PGS_NOMEM;
				return client_pass_gathered(s, to_server);
			}
		default:
			return client_describe_close(s, to_server);
	}
}

int
ag_pgs_client_stalled(const ag_pgstream *s)
{
	return s->stalled;
}

ag_pgs_status
ag_pgs_from_client(ag_pgstream *s, const uint8_t *buf, size_t len, size_t *consumed,
				   ag_buf *to_server, ag_buf *to_client)
{
	size_t		pos = 0;
	ag_pgs_status st;

	s->stalled = 0;
	*consumed = 0;
	for (;;)
	{
		size_t		n;

		if (s->cst == C_HEADER && s->chdrlen == 5)
		{
			uint8_t		t = s->chdr[0];
			size_t		mark = to_server->len;
			size_t		qmark = s->qcount;

			/*
			 * Nothing may land among what a refused carrier would skip; and
			 * a shared client's next window waits for the answers of the
			 * one before, which say whether it needs a carrier.
			 */
			if (s->carrier_query || window_waits(s, t))
			{
				s->stalled = 1;
				break;
			}
			/* a message that reads the table waits for earlier batches */
			if ((t == 'P' || t == 'B' || t == 'D' || t == 'C' ||
				 (t == 'Q' && ag_pg_get32(s->chdr + 1) - 4 <= MAX_CLEAR_QUERY)) &&
				s->changers > s->open_changers && !s->skipping)
			{
				s->stalled = 1;
				break;
			}
			window_check(s, t);
			if ((st = client_header(s, to_server)) != AG_PGS_OK)
				return st;
			if (s->cst == C_GATHER && s->gneed == 0 &&
				(st = client_gathered(s, to_server)) != AG_PGS_OK)
				return st;
			if ((st = carrier_place(s, t, mark, qmark, to_server)) != AG_PGS_OK)
				return st;
			if ((st = emit_synth(s, to_client)) != AG_PGS_OK)
				return st;
			continue;
		}
		if (pos >= len)
			break;
		switch (s->cst)
		{
			case C_HEADER:
				n = 5 - (size_t) s->chdrlen;
				if (n > len - pos)
					n = len - pos;
				memcpy(s->chdr + s->chdrlen, buf + pos, n);
				s->chdrlen += (int) n;
				pos += n;
				break;
			case C_GATHER:
				n = s->gneed - s->glen;
				if (n > len - pos)
					n = len - pos;
				memcpy(s->g + s->glen, buf + pos, n);
				s->glen += n;
				s->cleft -= (uint32_t) n;
				pos += n;
				if (s->glen == s->gneed)
				{
					size_t		mark = to_server->len;
					size_t		qmark = s->qcount;

					if ((st = client_gathered(s, to_server)) != AG_PGS_OK ||
						(st = carrier_place(s, s->chdr[0], mark, qmark, to_server)) != AG_PGS_OK)
						return st;
				}
				break;
			case C_STREAM:
			case C_DISCARD:
				n = s->cleft;
				if (n > len - pos)
					n = len - pos;
				if (s->cst == C_STREAM && ag_buf_add(to_server, buf + pos, n) < 0)
					return AG_PGS_NOMEM;
				pos += n;
				s->cleft -= (uint32_t) n;
				if (s->cleft == 0)
				{
					s->cst = C_HEADER;
					if (s->sync_owed)
					{
						s->sync_owed = 0;
						if (ag_buf_add(to_server, sync_msg, 5) < 0)
							return AG_PGS_NOMEM;
					}
				}
				break;
		}
		if ((st = emit_synth(s, to_client)) != AG_PGS_OK)
			return st;
	}
	*consumed = pos;
	return AG_PGS_OK;
}

/* ------------------------------------------------------ server messages */

static int
is_discard_all(const uint8_t *tag, size_t len)
{
	/* the tag is NUL-terminated within len */
	return (len == sizeof("DISCARD ALL") && memcmp(tag, "DISCARD ALL", len) == 0) ||
		(len == sizeof("DEALLOCATE ALL") && memcmp(tag, "DEALLOCATE ALL", len) == 0);
}

static ag_pgs_status
desync(ag_pgstream *s)
{
	return fatal(s, "08P01", "protocol out of step with the pooler",
				 "agentgate-proxy received a message from the pooler it did not expect.", NULL);
}

/* A whole server header is in s->shdr: decide pass, drop or gather. */
static ag_pgs_status
server_header(ag_pgstream *s, ag_buf *to_client)
{
	uint8_t		t = s->shdr[0];
	uint32_t	mlen = ag_pg_get32(s->shdr + 1);
	qentry	   *e;
	int			gather = 0;
	int			drop = 0;

	s->shdrlen = 0;
	s->sglen = 0;
	s->sact = A_NONE;
	if (mlen < 4)
		return fatal(s, "08P01", "invalid message length from the pooler", NULL, NULL);
	s->sleft = mlen - 4;
	s->spoke = 1;

	if (!s->authed && t == 'R')
	{
		if (s->sleft < 4)
			return fatal(s, "08P01", "invalid message from the pooler", NULL, NULL);
		s->sgneed = 4;
		s->sst = S_GATHER;
		return AG_PGS_OK;
	}
	e = q_head(s);
	if (t == 'N' || t == 'A' || (t == 'S' && (e == NULL || e->kind != Q_SYNC)) || e == NULL)
	{
		/* asynchronous messages, and whatever comes with nothing asked */
	}
	else
	{
		switch (e->kind)
		{
			case Q_LOGIN:
			case Q_SIMPLE:
			case Q_SIMPLE_CLEARS:
				if (t == 'Z' || (t == 'C' && s->sleft <= MAX_TAG))
					gather = 1;
				break;
			case Q_SYNC:
				if (t == 'Z')
					gather = 1;
				else if (t != 'E' && t != 'S')
					return desync(s);
				break;
			case Q_PARSE:
			case Q_PARSE_NAMED:
			case Q_PARSE_DROP:
				if (t == '1')
				{
					s->sact = A_POP;
					drop = e->kind == Q_PARSE_DROP;
				}
				else if (t == 'E')
					s->sact = A_ERROR;
				else
					return desync(s);
				break;
			case Q_BIND:
			case Q_CLOSE:
				if (t == (e->kind == Q_BIND ? '2' : '3'))
					s->sact = A_POP;
				else if (t == 'E')
					s->sact = A_ERROR;
				else
					return desync(s);
				break;
			case Q_DESC_STMT:
			case Q_DESC_PORTAL:
				if (t == 'T' || t == 'n')
					s->sact = A_POP;
				else if (t == 'E')
					s->sact = A_ERROR;
				else if (t != 't' || e->kind != Q_DESC_STMT)
					return desync(s);
				break;
			case Q_EXECUTE:
				if (t == 'C')
				{
					s->sact = A_POP;
					gather = s->sleft <= MAX_TAG;
				}
				else if (t == 'I' || t == 's')
					s->sact = A_POP;
				else if (t == 'E')
					s->sact = A_ERROR;
				else if (t != 'D' && t != 'G' && t != 'H' && t != 'd' && t != 'c')
					return desync(s);
				break;
			case Q_FAIL:
				if (t != 'E')
					return desync(s);
				/* the server's syntax error gives way to ours */
				if (ag_buf_add(to_client, e->msg, e->msglen) < 0)
					return AG_PGS_NOMEM;
				s->sact = A_FAIL;
				drop = 1;
				break;
			case Q_CARRIER_PARSE:
			case Q_CARRIER_BIND:
			case Q_CARRIER_EXEC:
				if (t == (e->kind == Q_CARRIER_PARSE ? '1' : e->kind == Q_CARRIER_BIND ? '2' : 'C'))
				{
					s->sact = A_POP;
					drop = 1;
				}
				else if (t == 'E')
					s->sact = A_CARRIER_ERROR;	/* the client sees why */
				else
					return desync(s);
				break;
			case Q_SYNTH_CLOSE:
			case Q_SYNTH_DEALLOC:
			case Q_SYNTH_EXEC_DEALLOC:
			case Q_SYNTH_MSG:
				return desync(s);	/* emitted before any server message */
		}
	}
	/*
	 * application_name is at most 63 bytes on the server: a longer
	 * ParameterStatus is another parameter.
	 */
	if (t == 'S' && (s->stamp[0] != '\0' || s->shared) && !drop && s->sleft <= PS_CAP)
		gather = 1;
	/* PgBouncer's key for this client, which a CancelRequest must name */
	if (t == 'K' && s->sleft == 8 && !drop)
		gather = 1;
	if (gather)
	{
		s->sgneed = s->shdr[0] == 'Z' ? 1 : s->sleft;
		if (s->sgneed > s->sleft)
			return fatal(s, "08P01", "invalid message from the pooler", NULL, NULL);
		s->sst = S_GATHER;
		return AG_PGS_OK;
	}
	if (drop)
		s->sst = S_DROP;
	else
	{
		if (ag_buf_add(to_client, s->shdr, 5) < 0)
			return AG_PGS_NOMEM;
		s->sst = S_PASS;
	}
	return AG_PGS_OK;
}

/* A ParameterStatus body: application_name = the pool's own value. */
static int
is_pool_app_name(const uint8_t *b, size_t len)
{
	static const uint8_t want[] = "application_name\0" AG_PGPROTO_POOL_APPNAME;

	return len == sizeof(want) && memcmp(b, want, sizeof(want)) == 0;
}

/* ParameterStatus(application_name, the client's own), in its place. */
static ag_pgs_status
put_client_app_name(ag_pgstream *s, ag_buf *to_client)
{
	static const char name[] = "application_name";
	size_t		alen = strlen(s->app) + 1;

	if (put_header(to_client, 'S', (uint32_t) (4 + sizeof(name) + alen)) < 0 ||
		ag_buf_add(to_client, name, sizeof(name)) < 0 ||
		ag_buf_add(to_client, s->app, alen) < 0)
		return AG_PGS_NOMEM;
	s->sst = S_PASS;
	return AG_PGS_OK;
}

/* The gathered part of a server message is in s->sg. */
static ag_pgs_status
server_gathered(ag_pgstream *s, ag_buf *to_client)
{
	qentry	   *e = q_head(s);

	switch (s->shdr[0])
	{
		case 'R':
			if (ag_pg_get32(s->sg) != 0)
			{
				/* never reaches the client: it would answer with its token */
				s->auth_request = ag_pg_get32(s->sg);
				return AG_PGS_AUTH_REQUEST;
			}
			s->authed = 1;
			break;
		case 'Z':
			s->status = s->sg[0];
			s->sact = A_POP;
			s->readies++;
			break;
		case 'S':
			if (s->stamp[0] != '\0' && !param_status_keeps_stamp(s, s->sg, s->sglen))
				return fatal(s, "42501", "agent session changed its session stamp",
							 "application_name was set to a value that does not end with this connection's stamp.",
							 "Do not change the session stamp; open a new connection for a new session.");
			if (s->shared && is_pool_app_name(s->sg, s->sglen))
				return put_client_app_name(s, to_client);
			break;
		case 'K':
			memcpy(s->cancel_key, s->sg, 8);
			s->have_key = 1;
			break;
		case 'C':
			if (e && s->sglen > 0 && s->sg[s->sglen - 1] == 0 && is_discard_all(s->sg, s->sglen))
				stmt_clear_before(s, e->seq);
			break;
	}
	if (ag_buf_add(to_client, s->shdr, 5) < 0 || ag_buf_add(to_client, s->sg, s->sglen) < 0)
		return AG_PGS_NOMEM;
	s->sst = S_PASS;
	return AG_PGS_OK;
}

/* The server message is over: do what it meant for the queue. */
static ag_pgs_status
server_end(ag_pgstream *s, ag_buf *to_client, ag_buf *to_server)
{
	ag_pgs_status st;

	s->sst = S_HEADER;
	switch (s->sact)
	{
		case A_NONE:
			break;
		case A_POP:
			if (s->qcount)
			{
				if (q_head(s)->kind == Q_CARRIER_EXEC)
					s->carrier_query = 0;	/* the client may go on */
				q_pop(s);
			}
			break;
		case A_CARRIER_ERROR:
			s->sact = A_NONE;
			if ((st = carrier_failed(s, to_server)) != AG_PGS_OK)
				return st;
			break;
		case A_ERROR:
		case A_FAIL:
			/* the failed message's entry first of all: it is no Sync */
			q_skip_to_sync(s);
			break;
	}
	s->sact = A_NONE;
	return emit_synth(s, to_client);
}

ag_pgs_status
ag_pgs_from_server(ag_pgstream *s, const uint8_t *buf, size_t len, ag_buf *to_client,
				   ag_buf *to_server)
{
	size_t		pos = 0;
	ag_pgs_status st;

	while (pos < len)
	{
		size_t		n;

		switch (s->sst)
		{
			case S_HEADER:
				n = 5 - (size_t) s->shdrlen;
				if (n > len - pos)
					n = len - pos;
				memcpy(s->shdr + s->shdrlen, buf + pos, n);
				s->shdrlen += (int) n;
				pos += n;
				if (s->shdrlen < 5)
					break;
				if ((st = server_header(s, to_client)) != AG_PGS_OK)
					return st;
				if (s->sst == S_GATHER && s->sgneed == 0 &&
					(st = server_gathered(s, to_client)) != AG_PGS_OK)
					return st;
				break;
			case S_GATHER:
				n = s->sgneed - s->sglen;
				if (n > len - pos)
					n = len - pos;
				memcpy(s->sg + s->sglen, buf + pos, n);
				s->sglen += n;
				s->sleft -= (uint32_t) n;
				pos += n;
				if (s->sglen == s->sgneed && (st = server_gathered(s, to_client)) != AG_PGS_OK)
					return st;
				break;
			case S_PASS:
			case S_DROP:
				n = s->sleft;
				if (n > len - pos)
					n = len - pos;
				if (s->sst == S_PASS && ag_buf_add(to_client, buf + pos, n) < 0)
					return AG_PGS_NOMEM;
				pos += n;
				s->sleft -= (uint32_t) n;
				break;
		}
		if ((s->sst == S_PASS || s->sst == S_DROP) && s->sleft == 0 &&
			(st = server_end(s, to_client, to_server)) != AG_PGS_OK)
			return st;
	}
	return AG_PGS_OK;
}
