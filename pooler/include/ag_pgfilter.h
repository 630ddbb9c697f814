/*-------------------------------------------------------------------------
 *
 * ag_pgfilter.h
 *	  Content patterns applied to what the server sends a client: the
 *	  values of DataRow messages, the lines of COPY ... TO STDOUT in text or
 *	  CSV, the fields of NoticeResponse and ErrorResponse, and the payloads
 *	  of NotificationResponse.
 *
 * The filter reads the server's side of a relayed connection after
 * pgstream.c (whole messages, in order, the proxy's own answers among
 * them).  A message it may rewrite is gathered whole, rewritten, and its
 * lengths fixed; every other message passes as it arrives.
 *
 * Which values of a DataRow are text: the last RowDescription says each
 * column's type and format.  A text-format value is text whatever its
 * type; a binary one is scanned only when its type's binary form is its
 * text (text, varchar, bpchar, name, unknown, json, jsonb, xml).  Where the
 * format is not known (no RowDescription since the last command, or one
 * answering a Describe of a statement, whose formats the later Bind
 * chooses) the value is scanned as text: a binary value of another type
 * might then be rewritten and rejected by the client, which fails closed.
 * A RowDescription holds until the command's end (CommandComplete,
 * EmptyQueryResponse, PortalSuspended, ErrorResponse, NoData,
 * ReadyForQuery).
 *
 * Pure: no I/O, so it is unit tested and fuzzed alone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_PGFILTER_H
#define AG_PGFILTER_H

#include <stddef.h>
#include <stdint.h>

#include "ag_patterns.h"
#include "ag_pgstream.h"

/* Largest message the filter gathers to rewrite. */
#define AG_PGF_MAX_MESSAGE	(64 * 1024 * 1024)

typedef enum ag_pgf_status
{
	AG_PGF_OK = 0,
	AG_PGF_NOMEM,
	AG_PGF_TOO_LARGE,			/* a message to check is over the limit */
	AG_PGF_SCAN_FAILED,			/* the matcher failed: fail closed */
	AG_PGF_BAD_MESSAGE			/* a malformed length */
} ag_pgf_status;

typedef struct ag_pgfilter ag_pgfilter;

extern ag_pgfilter *ag_pgf_new(size_t max_message);
extern void ag_pgf_free(ag_pgfilter *f);

/*
 * The patterns to apply from the next message on: the set and, for each of
 * its patterns, whether it applies (both stay the caller's and must live
 * until the next call; set NULL: none).
 */
extern void ag_pgf_set(ag_pgfilter *f, ag_patterns *set, const uint8_t *active);

/* Between messages (a new pattern set may be given). */
extern int	ag_pgf_at_boundary(const ag_pgfilter *f);

/* Server bytes in, client bytes appended to out. */
extern ag_pgf_status ag_pgf_from_server(ag_pgfilter *f, const uint8_t *buf, size_t len,
										ag_buf *out);

/* Values rewritten so far (for logs and tests). */
extern uint64_t ag_pgf_rewrites(const ag_pgfilter *f);

#endif							/* AG_PGFILTER_H */
