/*-------------------------------------------------------------------------
 *
 * audit_scan.c
 *	  Scanners of statement text that need no backend state: the reader
 *	  that splits common statements into literals and the rest without the
 *	  server's lexer, and the scrubber for text the server could not parse.
 *
 * Both read untrusted text (whatever an agent sends) and run inside the
 * backend, so both are also built into a libFuzzer target
 * (test/fuzz/fuzz_audit_scan.c) that checks they never read out of bounds
 * and never let a string literal through.
 *
 * ag_audit_scan_tokens reads text the way the server's lexer would, without
 * the lexer (which raises errors): ag_audit_scrub builds the log's text from
 * it for text the server could not parse (syntax errors, reported through
 * emit_log_hook, where raising an error is not allowed) and for text whose
 * reading depends on standard_conforming_strings, which an agent controls.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "audit_scan.h"

/* "$n" without a printf: for every literal of every statement */
void
ag_audit_append_param(StringInfo out, int n)
{
	char		num[12];

	appendStringInfoChar(out, '$');
	appendBinaryStringInfo(out, num, pg_ltoa(n, num));
}

/*
 * The common case without the lexer: statements made only of identifiers,
 * keywords, plain integers, '...' strings, punctuation and white space --
 * what agents and ORMs send most -- split into tokens exactly where the
 * lexer splits literals from the rest.  The output is rebuilt from literal
 * positions and white space alone, so this only has to agree with the
 * lexer on those; anything whose reading depends on context (comments,
 * quoted identifiers, $ parameters and dollar quotes, backslashes, string
 * prefixes such as E'' U&'' B'' X'' N'', string continuation across lines,
 * decimals and exponents, numbers glued to letters, non-ASCII bytes,
 * control characters) returns false and the lexer does the whole statement.
 * The caller also keeps it away from text long enough to be cut, where
 * token granularity would matter (fast_fits in audit_text.c).  tl->toks
 * must hold at least one entry; it grows with repalloc.
 */
#define FAST_IDENT(c)	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || (c) == '_')
#define FAST_DIGIT(c)	((c) >= '0' && (c) <= '9')
#define FAST_SPACE(c)	((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || (c) == '\f')

bool
ag_audit_fast_tokens(const char *buf, int len, AgAuditTokens *tl)
{
	int			i = 0;
	int			prev_end = 0;

	while (i < len)
	{
		unsigned char c = (unsigned char) buf[i];
		int			start = i;
		bool		literal = false;
		AgAuditToken *t;

		if (FAST_SPACE(c))
		{
			i++;
			continue;
		}
		if (FAST_IDENT(c))
		{
			while (i < len && (FAST_IDENT((unsigned char) buf[i]) ||
							   FAST_DIGIT((unsigned char) buf[i])))
				i++;
			/* ident$, E'..', U&'..' and friends are the lexer's */
			if (i < len && (buf[i] == '$' || buf[i] == '\'' || buf[i] == '&'))
				return false;
		}
		else if (FAST_DIGIT(c))
		{
			/* ".5", "t.1": decimals and the like are the lexer's */
			if (start > 0 && buf[start - 1] == '.')
				return false;
			while (i < len && FAST_DIGIT((unsigned char) buf[i]))
				i++;
			/* so are numbers glued to letters, "1.", "1e5" ("t1" is a name) */
			if (i < len && (FAST_IDENT((unsigned char) buf[i]) || buf[i] == '.' ||
							buf[i] == '$' || buf[i] == '\''))
				return false;
			literal = true;
		}
		else if (c == '\'')
		{
			i++;
			for (;;)
			{
				if (i >= len)
					return false;	/* unterminated: the lexer's error */
				if (buf[i] == '\\' || buf[i] == '\0')
					return false;
				if (buf[i] == '\'')
				{
					if (i + 1 < len && buf[i + 1] == '\'')
					{
						i += 2;
						continue;
					}
					i++;
					break;
				}
				i++;
			}
			/* 'a' 'b' on two lines is one literal to the lexer */
			for (int j = i; j < len && (FAST_SPACE((unsigned char) buf[j]) ||
										buf[j] == '\''); j++)
				if (buf[j] == '\'')
					return false;
			literal = true;
		}
		else if ((c != '\0' && strchr("(),;:[]=<>+*%^!~@#|?", c) != NULL) ||
				 (c == '-' && !(i + 1 < len && buf[i + 1] == '-')) ||
				 (c == '/' && !(i + 1 < len && buf[i + 1] == '*')) ||
				 (c == '.' && !(i + 1 < len && FAST_DIGIT((unsigned char) buf[i + 1]))))
		{
			/* '*' followed by '/' is harmless: no comment is open here */
			i++;
		}
		else
			return false;

		if (tl->ntoks >= tl->maxtoks)
		{
			tl->maxtoks *= 2;
			tl->toks = repalloc(tl->toks, sizeof(AgAuditToken) * tl->maxtoks);
		}
		t = &tl->toks[tl->ntoks++];
		t->loc = start;
		t->len = i - start;
		t->literal = literal;
		t->gap_before = start > prev_end;
		prev_end = i;
	}
	return true;
}

/*
 * ag_audit_scan_tokens: where the server's lexer (scan.l, PostgreSQL 15)
 * draws the boundaries of literals, comments and quoted names, without the
 * lexer: it never fails and never reads past len.  scs is the
 * standard_conforming_strings the text is read with: off, a plain '...'
 * string takes backslash escapes like E'...'.
 *
 * Literal tokens: '...' strings and their E B X N U& prefixed forms,
 * continued across a newline as the lexer continues them ('a'<newline>'b'
 * is one literal), dollar-quoted strings and numbers.  Comments are gaps.
 * Returns the offset where the reading ends: len, or the start of the first
 * token at which the lexer would stop with an error (an unterminated quote,
 * comment, quoted name or dollar quote; junk after a number or parameter;
 * U&'' with scs off; a zero-length quoted name).  Nothing after that point
 * has a defined reading, so callers keep nothing of it.
 */
#define SCAN_SPACE(c)	((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || (c) == '\f' || (c) == '\v')
#define SCAN_IDSTART(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || (c) == '_' || IS_HIGHBIT_SET(c))
#define SCAN_IDCONT(c)	(SCAN_IDSTART(c) || FAST_DIGIT(c) || (c) == '$')
#define SCAN_DQCONT(c)	(SCAN_IDSTART(c) || FAST_DIGIT(c))

/*
 * After the closing quote at q-1: the offset just past the opening quote of
 * a continuation ({quotecontinue}: white space holding a newline, -- comments
 * allowed, then a quote), or -1.
 */
static int
quote_continues(const char *buf, int len, int q)
{
	bool		newline = false;

	while (q < len)
	{
		char		c = buf[q];

		if (c == '\n' || c == '\r')
			newline = true, q++;
		else if (SCAN_SPACE(c))
			q++;
		else if (c == '-' && q + 1 < len && buf[q + 1] == '-')
		{
			while (q < len && buf[q] != '\n' && buf[q] != '\r')
				q++;
		}
		else
			break;
	}
	return (newline && q < len && buf[q] == '\'') ? q + 1 : -1;
}

/*
 * A quoted string whose opening quote is at buf[q - 1]; esc: backslash
 * escapes (E'', or any string with scs off); dbl: '' stands for a quote
 * (not in B'' and X'' strings, where '' ends the string and starts
 * another, read by the rules of a plain one).  Returns the offset after it,
 * or -1 when it never ends.
 */
static int
scan_string(const char *buf, int len, int q, bool esc, bool dbl)
{
	for (;;)
	{
		if (q >= len)
			return -1;
		if (esc && buf[q] == '\\')
		{
			if (q + 1 >= len)
				return -1;
			q += 2;
		}
		else if (buf[q] == '\'')
		{
			int			next;

			if (dbl && q + 1 < len && buf[q + 1] == '\'')
			{
				q += 2;
				continue;
			}
			next = quote_continues(buf, len, q + 1);
			if (next < 0)
				return q + 1;
			q = next;
		}
		else
			q++;
	}
}

static void
scan_push(AgAuditTokens *tl, int loc, int len, bool literal, int *prev_end)
{
	AgAuditToken *t;

	if (tl->ntoks >= tl->maxtoks)
	{
		tl->maxtoks *= 2;
		tl->toks = repalloc(tl->toks, sizeof(AgAuditToken) * tl->maxtoks);
	}
	t = &tl->toks[tl->ntoks++];
	t->loc = loc;
	t->len = len;
	t->literal = literal;
	t->gap_before = loc > *prev_end;
	*prev_end = loc + len;
}

int
ag_audit_scan_tokens(const char *buf, int len, bool scs, AgAuditTokens *tl)
{
	int			i = 0;
	int			prev_end = 0;

	while (i < len)
	{
		unsigned char c = (unsigned char) buf[i];
		int			start = i;
		int			q;

		if (SCAN_SPACE(c))
		{
			i++;
			continue;
		}
		if (c == '-' && i + 1 < len && buf[i + 1] == '-')
		{
			while (i < len && buf[i] != '\n' && buf[i] != '\r')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < len && buf[i + 1] == '*')
		{
			int			depth = 1;

			i += 2;
			while (depth > 0)
			{
				if (i + 1 >= len)
					return start;	/* unterminated comment */
				if (buf[i] == '/' && buf[i + 1] == '*')
					depth++, i += 2;
				else if (buf[i] == '*' && buf[i + 1] == '/')
					depth--, i += 2;
				else
					i++;
			}
			continue;
		}

		/* string literals, with their prefixes */
		q = -1;
		if (c == '\'')
			q = scan_string(buf, len, i + 1, !scs, true);
		else if ((c == 'e' || c == 'E') && i + 1 < len && buf[i + 1] == '\'')
			q = scan_string(buf, len, i + 2, true, true);
		else if ((c == 'b' || c == 'B' || c == 'x' || c == 'X') &&
				 i + 1 < len && buf[i + 1] == '\'')
			q = scan_string(buf, len, i + 2, false, false);
		else if ((c == 'n' || c == 'N') && i + 1 < len && buf[i + 1] == '\'')
			q = scan_string(buf, len, i + 2, !scs, true);
		else if ((c == 'u' || c == 'U') && i + 2 < len && buf[i + 1] == '&' &&
				 buf[i + 2] == '\'')
		{
			if (!scs)
				return start;	/* "unsafe use of string constant with Unicode escapes" */
			q = scan_string(buf, len, i + 3, false, true);
		}
		else
			q = -2;				/* not a string */
		if (q == -1)
			return start;		/* unterminated */
		if (q >= 0)
		{
			scan_push(tl, start, q - start, true, &prev_end);
			i = q;
			continue;
		}

		/* quoted identifiers, U&"..." too: kept */
		if (c == '"' || ((c == 'u' || c == 'U') && i + 2 < len &&
						 buf[i + 1] == '&' && buf[i + 2] == '"'))
		{
			int			j = (c == '"') ? i + 1 : i + 3;
			int			body = j;

			for (;;)
			{
				if (j >= len)
					return start;	/* unterminated */
				if (buf[j] == '"')
				{
					if (j + 1 < len && buf[j + 1] == '"')
					{
						j += 2;
						continue;
					}
					break;
				}
				j++;
			}
			if (j == body)
				return start;	/* zero-length delimited identifier */
			i = j + 1;
			scan_push(tl, start, i - start, false, &prev_end);
			continue;
		}

		if (SCAN_IDSTART(c))
		{
			while (i < len && SCAN_IDCONT((unsigned char) buf[i]))
				i++;
			scan_push(tl, start, i - start, false, &prev_end);
			continue;
		}

		/* numbers: 1  1.5  .5  1.  1e5  1.5e-3; "1..2" is 1 then ".." */
		if (FAST_DIGIT(c) || (c == '.' && i + 1 < len && FAST_DIGIT((unsigned char) buf[i + 1])))
		{
			while (i < len && FAST_DIGIT((unsigned char) buf[i]))
				i++;
			if (i < len && buf[i] == '.' && !(i + 1 < len && buf[i + 1] == '.'))
			{
				i++;
				while (i < len && FAST_DIGIT((unsigned char) buf[i]))
					i++;
			}
			if (i < len && (buf[i] == 'e' || buf[i] == 'E'))
			{
				int			j = i + 1;

				if (j < len && (buf[j] == '+' || buf[j] == '-'))
					j++;
				if (j < len && FAST_DIGIT((unsigned char) buf[j]))
				{
					i = j;
					while (i < len && FAST_DIGIT((unsigned char) buf[i]))
						i++;
				}
				else
					return start;	/* "trailing junk after numeric literal" */
			}
			if (i < len && SCAN_IDSTART((unsigned char) buf[i]))
				return start;	/* likewise */
			scan_push(tl, start, i - start, true, &prev_end);
			continue;
		}

		if (c == '$')
		{
			int			j = i + 1;

			/* $n: a parameter */
			if (j < len && FAST_DIGIT((unsigned char) buf[j]))
			{
				int			n = 0;

				while (j < len && FAST_DIGIT((unsigned char) buf[j]))
				{
					if (n < 100000000)
						n = n * 10 + (buf[j] - '0');
					j++;
				}
				if (j < len && SCAN_IDSTART((unsigned char) buf[j]))
					return start;	/* "trailing junk after parameter" */
				if (n > tl->highest_param)
					tl->highest_param = n;
				i = j;
				scan_push(tl, start, i - start, false, &prev_end);
				continue;
			}
			/* $tag$ ... $tag$ (the tag may be empty) */
			if (j < len && SCAN_IDSTART((unsigned char) buf[j]))
			{
				j++;
				while (j < len && SCAN_DQCONT((unsigned char) buf[j]))
					j++;
			}
			if (j < len && buf[j] == '$')
			{
				int			taglen = j - i + 1;
				int			k = j + 1;

				for (;;)
				{
					if (k + taglen > len)
						return start;	/* unterminated */
					if (buf[k] == '$' && memcmp(buf + k, buf + i, taglen) == 0)
						break;
					k++;
				}
				i = k + taglen;
				scan_push(tl, start, i - start, true, &prev_end);
				continue;
			}
			/* a lone "$" */
		}

		/* anything else: one byte (operators split where comments start) */
		i++;
		scan_push(tl, start, 1, false, &prev_end);
	}
	return len;
}

/*
 * The tokens the server's lexer sees in the text whichever way
 * standard_conforming_strings is set (an agent can change it between the
 * parse and the audit row, and a cached plan outlives it): the readings
 * with it on and off, up to the first token where they differ or either
 * stops.  tl holds the common tokens.  Returns AG_SCAN_ON_WHOLE and
 * AG_SCAN_OFF_WHOLE for the readings that cover the whole text without an
 * error, AG_SCAN_SAME when the two are the same throughout.
 */
int
ag_audit_scan_both(const char *buf, int len, AgAuditTokens *tl)
{
	AgAuditTokens off;
	int			stop_on;
	int			stop_off;
	int			n;
	int			result = 0;

	off.maxtoks = 16;
	off.ntoks = 0;
	off.highest_param = 0;
	off.toks = palloc(sizeof(AgAuditToken) * off.maxtoks);
	stop_on = ag_audit_scan_tokens(buf, len, true, tl);
	stop_off = ag_audit_scan_tokens(buf, len, false, &off);
	for (n = 0; n < tl->ntoks && n < off.ntoks; n++)
	{
		AgAuditToken *a = &tl->toks[n];
		AgAuditToken *b = &off.toks[n];

		if (a->loc != b->loc || a->len != b->len || a->literal != b->literal)
			break;
	}
	if (stop_on == len)
		result |= AG_SCAN_ON_WHOLE;
	if (stop_off == len)
		result |= AG_SCAN_OFF_WHOLE;
	if (stop_on == stop_off && n == tl->ntoks && n == off.ntoks)
		result |= AG_SCAN_SAME;
	tl->ntoks = n;
	if (off.highest_param > tl->highest_param)
		tl->highest_param = off.highest_param;
	pfree(off.toks);
	return result;
}

/*
 * Statement text without literals, comments or anything whose reading is
 * in doubt, for text the server could not parse (reported through
 * emit_log_hook, where raising an error is not allowed) and for text whose
 * reading depends on standard_conforming_strings.  Never raises an error
 * and never reads past len.  The text ends before the first token whose
 * reading differs with standard_conforming_strings on and off, or at which
 * the lexer would stop, or at maxlen; each of these sets *truncated.
 */
char *
ag_audit_scrub(const char *sql, int len, int maxlen, bool *truncated)
{
	StringInfoData out;
	AgAuditTokens tl;
	int			next_param;

	*truncated = false;
	/* tokens past the output cap are never used: read a bounded prefix */
	if (len > 8 * maxlen)
	{
		len = 8 * maxlen;
		*truncated = true;
	}
	tl.maxtoks = 64;
	tl.ntoks = 0;
	tl.highest_param = 0;
	tl.toks = palloc(sizeof(AgAuditToken) * tl.maxtoks);
	if ((ag_audit_scan_both(sql, len, &tl) & AG_SCAN_ALL) != AG_SCAN_ALL)
		*truncated = true;
	initStringInfo(&out);
	next_param = tl.highest_param + 1;
	for (int i = 0; i < tl.ntoks; i++)
	{
		AgAuditToken *t = &tl.toks[i];
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
			appendBinaryStringInfo(&out, sql + t->loc, t->len);
	}
	pfree(tl.toks);

	/* never end in the middle of a multibyte character */
	if (out.len > 0)
		out.len = pg_mbcliplen(out.data, out.len, out.len);
	out.data[out.len] = '\0';
	return out.data;
}
