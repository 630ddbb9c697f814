/*-------------------------------------------------------------------------
 *
 * pgquery.h
 *	  Statement fingerprints and normalised text from libpg_query (pgquery.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_PGQUERY_H
#define AG_PGQUERY_H

/* Inputs larger than this are never handed to libpg_query. */
#define AG_PGQ_MAX_INPUT	(64 * 1024)
/* Nor inputs whose operators and parentheses suggest a deeper tree. */
#define AG_PGQ_MAX_TERMS	4000
#define AG_PGQ_FINGERPRINT_LEN 16	/* hex digits */

/*
 * Both take a statement's text (len bytes, need not be NUL-terminated) that
 * the server itself has already parsed successfully.  They return false
 * with a palloc'd reason in *errmsg when the input is over the caps or
 * libpg_query refuses it; results are palloc'd in CurrentMemoryContext.
 */
extern bool ag_pgq_normalize(const char *sql, int len, char **out, char **errmsg);
extern bool ag_pgq_fingerprint(const char *sql, int len, char *out_hex,
							   char **errmsg);

#endif							/* AG_PGQUERY_H */
