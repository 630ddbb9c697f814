/*
 * libFuzzer target for extension/audit_scan.c: the lexer-free reader of
 * common statements and the scrubber for text the server could not parse.
 * Both read whatever an agent sends, inside the backend.
 *
 * Beyond "no crash, no out-of-bounds read" (AddressSanitizer, UBSan):
 *  - the reader's tokens are in order, inside the text, cover every byte
 *    that is not white space, and a token is a literal exactly when it is a
 *    digit run or a quoted string; no other token holds a quote, so no
 *    string content can reach the log through it;
 *  - the lexer-like reader (ag_audit_scan_tokens), with
 *    standard_conforming_strings on and off: tokens in order, inside the
 *    text and before where the reading stops; a token that is not a literal
 *    holds no single quote unless it is a quoted identifier; the two
 *    readings agree wherever the text has no backslash;
 *  - the scrubber's output is NUL-terminated, and when the input has no
 *    double quote (quoted identifiers are kept), it holds no single quote,
 *    whichever way standard_conforming_strings is read.
 */
#include "postgres.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit_scan.h"

static void
check_tokens(const char *buf, int len, AgAuditTokens *tl)
{
	int			end = 0;

	for (int i = 0; i < tl->ntoks; i++)
	{
		AgAuditToken *t = &tl->toks[i];

		if (t->loc < end || t->len <= 0 || t->loc + t->len > len)
			abort();
		for (int j = end; j < t->loc; j++)
			if (!(buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' ||
				  buf[j] == '\r' || buf[j] == '\f'))
				abort();		/* something skipped that is not space */
		if (t->gap_before != (t->loc > end))
			abort();
		if (t->literal)
		{
			bool		digits = true;

			for (int j = 0; j < t->len; j++)
				digits &= (buf[t->loc + j] >= '0' && buf[t->loc + j] <= '9');
			if (!digits && !(t->len >= 2 && buf[t->loc] == '\'' &&
							 buf[t->loc + t->len - 1] == '\''))
				abort();
		}
		else
		{
			if (memchr(buf + t->loc, '\'', t->len) != NULL ||
				memchr(buf + t->loc, '\0', t->len) != NULL)
				abort();
			if (buf[t->loc] >= '0' && buf[t->loc] <= '9')
				abort();
		}
		end = t->loc + t->len;
	}
	for (int j = end; j < len; j++)
		if (!(buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' ||
			  buf[j] == '\r' || buf[j] == '\f'))
			abort();
}

static int
check_scan(const char *buf, int len, bool scs, AgAuditTokens *tl)
{
	int			stop = ag_audit_scan_tokens(buf, len, scs, tl);
	int			end = 0;

	if (stop < 0 || stop > len)
		abort();
	for (int i = 0; i < tl->ntoks; i++)
	{
		AgAuditToken *t = &tl->toks[i];

		if (t->loc < end || t->len <= 0 || t->loc + t->len > stop)
			abort();
		if (!t->literal && memchr(buf + t->loc, '\'', t->len) != NULL &&
			buf[t->loc] != '"' && !(t->len > 2 && buf[t->loc + 1] == '&' && buf[t->loc + 2] == '"'))
			abort();			/* string content outside a literal */
		end = t->loc + t->len;
	}
	return stop;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *buf;
	AgAuditTokens tl;
	char	   *out;
	bool		truncated;
	int			maxlen;

	if (size > 1 << 16)
		return 0;
	/* the text exactly as long as the input: no terminator to lean on */
	buf = malloc(size ? size : 1);
	memcpy(buf, data, size);

	tl.maxtoks = 4;
	tl.ntoks = 0;
	tl.highest_param = 0;
	tl.toks = malloc(sizeof(AgAuditToken) * tl.maxtoks);
	if (ag_audit_fast_tokens(buf, (int) size, &tl))
		check_tokens(buf, (int) size, &tl);
	free(tl.toks);

	{
		AgAuditTokens on = {0},
					off = {0};
		int			stop_on,
					stop_off;

		on.maxtoks = off.maxtoks = 4;
		on.toks = malloc(sizeof(AgAuditToken) * 4);
		off.toks = malloc(sizeof(AgAuditToken) * 4);
		stop_on = check_scan(buf, (int) size, true, &on);
		stop_off = check_scan(buf, (int) size, false, &off);
		/* without a backslash or U&, the setting changes nothing */
		if (memchr(buf, '\\', size) == NULL && memchr(buf, '&', size) == NULL)
		{
			if (stop_on != stop_off || on.ntoks != off.ntoks)
				abort();
			for (int i = 0; i < on.ntoks; i++)
				if (on.toks[i].loc != off.toks[i].loc ||
					on.toks[i].len != off.toks[i].len ||
					on.toks[i].literal != off.toks[i].literal)
					abort();
		}
		free(on.toks);
		free(off.toks);
	}

	/* the cap comes from the input too, so cuts land everywhere */
	maxlen = size > 0 ? 1 + data[0] * 4 : 256;
	out = ag_audit_scrub(buf, (int) size, maxlen, &truncated);
	if (out == NULL)
		abort();
	if (memchr(buf, '"', size) == NULL && strchr(out, '\'') != NULL)
		abort();
	free(out);
	free(buf);
	return 0;
}
