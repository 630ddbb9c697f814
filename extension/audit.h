/*-------------------------------------------------------------------------
 *
 * audit.h
 *	  Audit log: records, the shared-memory ring and its writer
 *	  (audit.c, audit_ring.c, audit_worker.c, audit_text.c).
 *
 * A record is a fixed header followed by its variable text (statement,
 * error message, relations, masked columns), stored in one or more consecutive ring slots.
 * Backends reserve slots under a spinlock, fill them without any ereport
 * in between, and publish by writing the record's sequence number into the
 * header last.  The worker copies published records in order, inserts them
 * into agentgate.audit_log, commits, and only then frees the slots and
 * wakes backends waiting for their record to be durable.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_AUDIT_H
#define AG_AUDIT_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "port/atomics.h"

#include "decision.h"

#define AG_AUDIT_SLOT_SIZE		512
#define AG_AUDIT_MAX_TEXT		(64 * 1024)	/* hard cap of one record's text */
#define AG_AUDIT_NAME_LEN		64
#define AG_AUDIT_SID_LEN		24
#define AG_AUDIT_ADDR_LEN		48
#define AG_AUDIT_TAG_LEN		32
#define AG_AUDIT_FP_LEN			24
#define AG_AUDIT_RELSEP			'\x1f'	/* separates relation names */

/* record kinds */
#define AG_AUDIT_KIND_STMT		0
#define AG_AUDIT_KIND_GAP		1	/* written by the worker only */

/* flags */
#define AG_AUDIT_NESTED			0x01
#define AG_AUDIT_NORMALIZED		0x02
#define AG_AUDIT_TRUNCATED		0x04
#define AG_AUDIT_HAS_ROWS		0x08
#define AG_AUDIT_HAS_DURATION	0x10
#define AG_AUDIT_LOCAL			0x20	/* stub: its backend wrote the row
										 * itself; counts in the summary only */
#define AG_AUDIT_NO_SUMMARY		0x40	/* a row whose stub was counted */

typedef struct AgAuditRecord
{
	/* rseq + 1 once the record is complete; written last (publish) */
	volatile uint64 ready;
	uint64		rseq;			/* record sequence number in this epoch */
	uint32		nslots;			/* slots this record occupies */
	uint8		kind;
	uint8		decision;		/* an AgDecision (decision.h) */
	uint16		flags;
	TimestampTz ts;				/* when the statement started */
	int64		rule_id;
	int64		rows;
	double		duration_ms;
	int32		pid;
	char		sqlstate[6];
	char		role_name[AG_AUDIT_NAME_LEN];
	char		database[AG_AUDIT_NAME_LEN];
	char		identity[AG_AUDIT_NAME_LEN];
	char		session_id[AG_AUDIT_SID_LEN];
	char		backend_session[AG_AUDIT_SID_LEN];
	char		client_addr[AG_AUDIT_ADDR_LEN];
	char		command_tag[AG_AUDIT_TAG_LEN];
	char		fingerprint[AG_AUDIT_FP_LEN];
	/* variable part: statement, error message, relations, masked columns, chain */
	uint32		stmt_len;
	uint32		err_len;
	uint32		rel_len;
	uint32		mask_len;
	uint32		chain_len;		/* delegation chain: names, each NUL-ended */
} AgAuditRecord;

StaticAssertDecl(sizeof(AgAuditRecord) <= AG_AUDIT_SLOT_SIZE,
				 "audit record header must fit in one slot");

/* What a backend hands to the ring (pointers into its own memory). */
typedef struct AgAuditEntry
{
	AgAuditRecord hdr;			/* fixed fields; ready/rseq/nslots ignored */
	const char *stmt;
	const char *err;
	const char *rels;
	const char *masked;
	const char *chain;
} AgAuditEntry;

/* audit_ring.c */
typedef enum AgAppendResult
{
	AG_APPEND_OK,
	AG_APPEND_FULL,				/* no room (caller decides: wait, drop) */
	AG_APPEND_NO_RING
} AgAppendResult;

extern int	ag_audit_ring_slots;
extern void ag_audit_ring_init(void);
extern void ag_audit_ring_request(void);
extern void ag_audit_ring_startup(void);
extern bool ag_audit_ring_ready(void);
extern AgAppendResult ag_audit_ring_append(AgAuditEntry *e, uint64 *rseq_out);
extern bool ag_audit_ring_wait_space(uint32 nslots, int timeout_ms);
extern bool ag_audit_ring_wait_flushed(uint64 rseq, int timeout_ms,
									   XLogRecPtr *commit_lsn);
extern uint64 ag_audit_ring_appended(void);
extern uint32 ag_audit_slots_needed(AgAuditEntry *e);
extern void ag_audit_ring_count_drop(void);
extern bool ag_audit_ring_has_room(uint32 nslots);

/* worker side of the ring */
typedef struct AgAuditBatch
{
	int			n;
	int			cap;
	char	  **recs;			/* palloc'd copies (header + text) */
	uint64		end_pos;		/* slot position after the last record */
	uint64		end_rseq;		/* rseq after the last record */
} AgAuditBatch;

extern void ag_audit_ring_set_worker(int pgprocno);
extern int	ag_audit_ring_take(AgAuditBatch *b, int max);
extern void ag_audit_ring_committed(AgAuditBatch *b, XLogRecPtr commit_lsn);
extern bool ag_audit_ring_unfreed(uint64 *upto, XLogRecPtr *lsn);
extern void ag_audit_ring_free(uint64 upto);
extern int	ag_audit_ring_used_pct(void);
extern uint64 ag_audit_ring_take_dropped(void);
extern void ag_audit_ring_return_dropped(uint64 n);
extern int64 ag_audit_ring_epoch(void);
extern bool ag_audit_ring_prev(int64 *epoch, uint64 *head);
extern void ag_audit_ring_prev_done(void);
extern uint64 ag_audit_ring_pending(void);
extern void ag_audit_ring_hold(int64 delta);

/* audit_worker.c */
extern void ag_audit_worker_init(void);
extern PGDLLEXPORT void agentgate_audit_worker_main(Datum arg);
extern int	ag_audit_flush_interval(void);
extern Oid	ag_audit_database_oid(void);
extern bool ag_audit_write_local(char **recs, int n);

/* audit.c */
extern void ag_audit_approval_row(AgDecision decision, const char *role,
								  const char *identity, const char *sid,
								  const char *stmt, const char *note,
								  int64 rule_id);

/* audit_text.c */
extern char *ag_audit_normalize(const char *sql, int len, int maxlen,
								bool *truncated);

#endif							/* AG_AUDIT_H */
