/*-------------------------------------------------------------------------
 *
 * ag_tokensource.h
 *	  Where agentgate-connect gets its identity tokens: a file that the
 *	  IdP's agent keeps fresh, or a command whose output is cached until
 *	  shortly before the token's exp.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_TOKENSOURCE_H
#define AG_TOKENSOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#define AG_TOKEN_MAX	16384	/* the proxy's own limit */
#define AG_TOKEN_ERRLEN 256

typedef struct ag_tokensrc ag_tokensrc;
typedef struct ag_token_wait ag_token_wait;

/*
 * The answer: a token and its exp, or NULL and a reason.  Called from the
 * event loop, never inside ag_tokensrc_get().
 */
typedef void (*ag_token_cb) (void *arg, const char *token, int64_t exp, const char *err);

/*
 * Exactly one of file and command.  margin: a cached token is used while
 * its exp is more than margin seconds away; timeout bounds a command.
 */
extern ag_tokensrc *ag_tokensrc_new(struct event_base *base, const char *file,
									const char *command, int margin, int timeout);
extern void ag_tokensrc_free(ag_tokensrc *ts);

/* Ask for a fresh token; the wait can be forgotten until cb has run. */
extern ag_token_wait *ag_tokensrc_get(ag_tokensrc *ts, ag_token_cb cb, void *arg);
extern void ag_tokensrc_forget(ag_token_wait *w);

/*
 * Pure helpers (unit tested).  ag_token_clean trims surrounding white
 * space in place and checks what is left is one token: 1 to AG_TOKEN_MAX
 * bytes of base64url characters and dots.  ag_token_exp reads the exp
 * claim of a JWT without verifying anything (the proxy verifies).  Both
 * return 0, or -1 with a reason in err.
 */
extern int	ag_token_clean(char *buf, size_t *len, char *err, size_t errlen);
extern int	ag_token_exp(const char *token, size_t len, int64_t *exp, char *err, size_t errlen);

#endif							/* AG_TOKENSOURCE_H */
