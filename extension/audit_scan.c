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
 * ag_audit_scrub is the fallback for text the server could not parse
 * (syntax errors, reported through emit_log_hook, where raising an error is
 * not allowed): a small scanner that never fails and removes quoted
 * strings, dollar-quoted bodies, numbers and comments.
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
 * Never raises an error and never reads past len.  Whatever follows an
 * unterminated quote is dropped (flagged truncated).
 */
char *
ag_audit_scrub(const char *sql, int len, int maxlen, bool *truncated)
{
	StringInfoData out;
	int			i = 0;
	int			n = 1;
	bool		pending_space = false;

	*truncated = false;
	if (len > maxlen)
	{
		len = maxlen;
		*truncated = true;
	}
	initStringInfo(&out);

#define EMIT_SPACE() \
	do { if (pending_space && out.len > 0) appendStringInfoChar(&out, ' '); \
		 pending_space = false; } while (0)

	while (i < len)
	{
		unsigned char c = (unsigned char) sql[i];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f')
		{
			pending_space = true;
			i++;
		}
		else if (c == '-' && i + 1 < len && sql[i + 1] == '-')
		{
			while (i < len && sql[i] != '\n')
				i++;
			pending_space = true;
		}
		else if (c == '/' && i + 1 < len && sql[i + 1] == '*')
		{
			int			depth = 1;

			i += 2;
			while (i < len && depth > 0)
			{
				if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*')
					depth++, i += 2;
				else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/')
					depth--, i += 2;
				else
					i++;
			}
			pending_space = true;
		}
		else if (c == '\'')
		{
			/* E'' strings honour backslashes; plain ones only '' */
			bool		esc = (i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e'));
			bool		closed = false;

			if (esc && out.len > 0 &&
				(out.data[out.len - 1] == 'E' || out.data[out.len - 1] == 'e'))
				out.data[--out.len] = '\0';
			i++;
			while (i < len)
			{
				if (esc && sql[i] == '\\' && i + 1 < len)
					i += 2;
				else if (sql[i] == '\'')
				{
					if (i + 1 < len && sql[i + 1] == '\'')
						i += 2;
					else
					{
						i++;
						closed = true;
						break;
					}
				}
				else
					i++;
			}
			EMIT_SPACE();
			ag_audit_append_param(&out, n++);
			if (!closed)
			{
				*truncated = true;
				break;
			}
		}
		else if (c == '$' && i + 1 < len && !isdigit((unsigned char) sql[i + 1]))
		{
			/* $tag$ ... $tag$ (tag may be empty) */
			int			j = i + 1;
			int			taglen;
			bool		closed = false;

			while (j < len && (isalnum((unsigned char) sql[j]) || sql[j] == '_' ||
							   IS_HIGHBIT_SET(sql[j])))
				j++;
			if (j >= len || sql[j] != '$')
			{
				EMIT_SPACE();
				appendStringInfoChar(&out, c);
				i++;
				continue;
			}
			taglen = j - i + 1;
			j++;
			while (j + taglen <= len)
			{
				if (memcmp(sql + j, sql + i, taglen) == 0)
				{
					j += taglen;
					closed = true;
					break;
				}
				j++;
			}
			EMIT_SPACE();
			ag_audit_append_param(&out, n++);
			if (!closed)
			{
				*truncated = true;
				break;
			}
			i = j;
		}
		else if (c == '"')
		{
			int			j = i + 1;

			while (j < len && !(sql[j] == '"' && !(j + 1 < len && sql[j + 1] == '"')))
				j += (sql[j] == '"') ? 2 : 1;
			j = Min(j + 1, len);
			EMIT_SPACE();
			appendBinaryStringInfo(&out, sql + i, j - i);
			i = j;
		}
		else if (isdigit(c) &&
				 !(out.len > 0 && !pending_space &&
				   (isalnum((unsigned char) out.data[out.len - 1]) ||
					out.data[out.len - 1] == '_' || out.data[out.len - 1] == '$' ||
					IS_HIGHBIT_SET(out.data[out.len - 1]))))
		{
			while (i < len && (isalnum((unsigned char) sql[i]) || sql[i] == '.' ||
							   sql[i] == '_'))
				i++;
			EMIT_SPACE();
			ag_audit_append_param(&out, n++);
		}
		else
		{
			EMIT_SPACE();
			appendStringInfoChar(&out, c);
			i++;
		}
	}
#undef EMIT_SPACE

	/* never end in the middle of a multibyte character */
	if (out.len > 0)
		out.len = pg_mbcliplen(out.data, out.len, out.len);
	out.data[out.len] = '\0';
	return out.data;
}
