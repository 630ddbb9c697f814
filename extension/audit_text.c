/*-------------------------------------------------------------------------
 *
 * audit_text.c
 *	  The statement text that goes into the audit log: literals replaced by
 *	  $n, comments removed, length capped.
 *
 * ag_audit_normalize runs the server's own SQL lexer (the one that just
 * parsed the statement, with the session's standard_conforming_strings) on
 * at most maxlen bytes and rebuilds the text from its tokens: every string,
 * bit-string, numeric and Unicode-escape literal becomes $n, numbered after
 * the highest parameter the statement already uses; comments disappear;
 * runs of white space become one space.  The lexer is iterative, so no
 * expression depth can overflow the stack.  A lexer error (only possible
 * when the cap cut a literal in half) ends the text there, flagged
 * truncated, so half a secret never reaches the log.
 *
 * The scanners that need no backend state -- the lexer-free reader for
 * common statements and the scrubber for text the server could not parse --
 * are in audit_scan.c, where a libFuzzer target can reach them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "parser/gramparse.h"
#include "parser/parser.h"
#include "parser/scanner.h"

#include "agentgate.h"
#include "audit.h"
#include "audit_scan.h"

static void
lex_tokens(const char *buf, bool scs, AgAuditTokens *tl)
{
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	core_yyscan_t scanner;
	int			prev_end = 0;

	scanner = scanner_init(buf, &yyextra, &ScanKeywords, ScanKeywordTokens);

	/*
	 * Settings the agent controls do not change how this reads: the caller
	 * says how standard_conforming_strings is to be taken, and "\'" is read
	 * as an escaped quote whatever backslash_quote says (the lexer would
	 * raise an error).
	 */
	yyextra.standard_conforming_strings = scs;
	yyextra.backslash_quote = BACKSLASH_QUOTE_ON;
	yyextra.escape_string_warning = false;
	for (;;)
	{
		int			tok = core_yylex(&yylval, &yylloc, scanner);
		AgAuditToken *t;

		if (tok == 0)
			break;
		if (tl->ntoks >= tl->maxtoks)
		{
			tl->maxtoks *= 2;
			tl->toks = repalloc(tl->toks, sizeof(AgAuditToken) * tl->maxtoks);
		}
		t = &tl->toks[tl->ntoks];
		t->loc = yylloc;
		/* the lexer NUL-terminates the current token in its buffer */
		t->len = strlen(yyextra.scanbuf + yylloc);
		t->literal = (tok == SCONST || tok == USCONST || tok == BCONST ||
					  tok == XCONST || tok == ICONST || tok == FCONST);
		t->gap_before = yylloc > prev_end;
		prev_end = yylloc + t->len;
		if (tok == PARAM && yylval.ival > tl->highest_param)
			tl->highest_param = yylval.ival;
		tl->ntoks++;			/* only complete tokens count */
	}
	scanner_finish(scanner);
}

/*
 * What the builder below would charge for every token.  The lexer splits
 * literals where ag_audit_fast_tokens does and the rest no finer, so its
 * charge is no higher: when this fits, neither reading is cut and the two
 * outputs are the same.
 */
static bool
fast_fits(AgAuditTokens *tl, int maxlen)
{
	int			need = 0;

	for (int i = 0; i < tl->ntoks && need <= maxlen; i++)
		need += (tl->toks[i].literal ? 12 : tl->toks[i].len) + 1;
	return need <= maxlen;
}

char *
ag_audit_normalize(const char *sql, int len, int maxlen, bool *truncated)
{
	const char *text = sql;
	char	   *buf = NULL;
	AgAuditTokens *tl;
	StringInfoData out;
	int			next_param;
	bool		scs = true;		/* no backslash: both readings are the same */

	*truncated = false;

	/*
	 * A backslash may make the text read differently with
	 * standard_conforming_strings on and off ('a\' is a whole string only
	 * when it is on).  The agent can change that setting after the text was
	 * parsed (a SET in the same message, a cached plan), so the setting now
	 * says nothing of how the server read it.  The server read it one of the
	 * two ways without an error: when only one reading is whole, that is
	 * the one; when both are and they differ, which literals the server saw
	 * cannot be known, and the text is built from what the two readings
	 * share, up to the first difference.
	 */
	if (memchr(sql, '\\', len) != NULL)
	{
		AgAuditTokens both;
		int			r;

		both.maxtoks = 64;
		both.ntoks = 0;
		both.highest_param = 0;
		both.toks = palloc(sizeof(AgAuditToken) * both.maxtoks);
		r = ag_audit_scan_both(sql, len, &both);
		pfree(both.toks);
		if ((r & AG_SCAN_ALL) == AG_SCAN_ALL || r == AG_SCAN_ON_WHOLE)
			scs = true;
		else if (r == AG_SCAN_OFF_WHOLE)
			scs = false;
		else
			return ag_audit_scrub(sql, len, maxlen, truncated);
	}

	tl = palloc0(sizeof(AgAuditTokens));
	tl->maxtoks = 64;
	tl->toks = palloc(sizeof(AgAuditToken) * tl->maxtoks);

	/*
	 * The lexer reads the whole statement, not a prefix: the server has just
	 * parsed this very text, so the lexer cannot fail on it, whereas a prefix
	 * cut inside a literal or comment would make it raise an ERROR -- and
	 * this runs while a refusal is being raised, where catching a second
	 * error would wipe the first.  The cap applies to the output, at a token
	 * boundary.  It needs its own NUL-terminated copy; the fast reader reads
	 * the text in place.
	 */
	if (!ag_audit_fast_tokens(sql, len, tl) || !fast_fits(tl, maxlen))
	{
		buf = palloc(len + 1);
		memcpy(buf, sql, len);
		buf[len] = '\0';
		text = buf;
		tl->ntoks = 0;
		lex_tokens(buf, scs, tl);
	}

	initStringInfo(&out);
	next_param = tl->highest_param + 1;
	for (int i = 0; i < tl->ntoks; i++)
	{
		AgAuditToken *t = &tl->toks[i];
		int			need = (t->literal ? 12 : t->len) + 1;

		if (out.len + need > maxlen)
		{
			*truncated = true;
			break;
		}
		if (t->gap_before && out.len > 0)
			appendStringInfoChar(&out, ' ');
		if (t->literal)
			ag_audit_append_param(&out, next_param++);
		else
			appendBinaryStringInfo(&out, text + t->loc, t->len);
	}
	if (buf)
		pfree(buf);
	pfree(tl->toks);
	pfree(tl);
	return out.data;
}
