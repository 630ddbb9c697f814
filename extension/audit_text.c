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
 * ag_audit_scrub is the fallback for text the server could not parse
 * (syntax errors, reported through emit_log_hook, where raising an error is
 * not allowed): a small scanner that never fails and removes quoted
 * strings, dollar-quoted bodies, numbers and comments.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "parser/gramparse.h"
#include "parser/scanner.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "agentgate.h"
#include "audit.h"

typedef struct Token
{
	int			loc;
	int			len;
	bool		literal;
	bool		gap_before;		/* white space or comment before it */
} Token;

/* Lexer output. */
typedef struct TokenList
{
	Token	   *toks;
	int			ntoks;
	int			maxtoks;
	int			highest_param;
} TokenList;

static void
lex_tokens(const char *buf, TokenList *tl)
{
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	core_yyscan_t scanner;
	int			prev_end = 0;

	scanner = scanner_init(buf, &yyextra, &ScanKeywords, ScanKeywordTokens);
	yyextra.escape_string_warning = false;
	for (;;)
	{
		int			tok = core_yylex(&yylval, &yylloc, scanner);
		Token	   *t;

		if (tok == 0)
			break;
		if (tl->ntoks >= tl->maxtoks)
		{
			tl->maxtoks *= 2;
			tl->toks = repalloc(tl->toks, sizeof(Token) * tl->maxtoks);
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
 * token granularity would matter (fast_need).
 */
#define FAST_IDENT(c)	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || (c) == '_')
#define FAST_DIGIT(c)	((c) >= '0' && (c) <= '9')
#define FAST_SPACE(c)	((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || (c) == '\f')

static bool
fast_tokens(const char *buf, int len, TokenList *tl)
{
	int			i = 0;
	int			prev_end = 0;

	while (i < len)
	{
		unsigned char c = (unsigned char) buf[i];
		int			start = i;
		bool		literal = false;
		Token	   *t;

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
			/* a number glued to a name ("t1" was read as a name above) */
			if (start > 0 && buf[start - 1] == '.')
				return false;
			while (i < len && FAST_DIGIT((unsigned char) buf[i]))
				i++;
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
		else if (strchr("(),;:[]=<>+*%^!~@#|?", c) != NULL ||
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
			tl->toks = repalloc(tl->toks, sizeof(Token) * tl->maxtoks);
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
 * What the builder below would charge for every token.  The lexer splits
 * literals where fast_tokens does and the rest no finer, so its charge is
 * no higher: when this fits, neither reading is cut and the two outputs
 * are the same.
 */
static int
fast_need(TokenList *tl)
{
	int			need = 0;

	for (int i = 0; i < tl->ntoks; i++)
		need += (tl->toks[i].literal ? 12 : tl->toks[i].len) + 1;
	return need;
}

char *
ag_audit_normalize(const char *sql, int len, int maxlen, bool *truncated)
{
	char	   *buf;
	int			inlen;
	TokenList  *tl;
	StringInfoData out;
	int			next_param;

	*truncated = false;

	/*
	 * Lex the whole statement, not a prefix: the server has just parsed this
	 * very text, so the lexer cannot fail on it, whereas a prefix cut inside
	 * a literal or comment would make it raise an ERROR -- and this runs
	 * while a refusal is being raised, where catching a second error would
	 * wipe the first.  The cap applies to the output, at a token boundary.
	 */
	inlen = len;
	buf = palloc(inlen + 1);
	memcpy(buf, sql, inlen);
	buf[inlen] = '\0';
	tl = palloc0(sizeof(TokenList));
	tl->maxtoks = 64;
	tl->toks = palloc(sizeof(Token) * tl->maxtoks);

	if (!fast_tokens(buf, inlen, tl) || fast_need(tl) > maxlen)
	{
		tl->ntoks = 0;
		lex_tokens(buf, tl);
	}

	initStringInfo(&out);
	next_param = tl->highest_param + 1;
	for (int i = 0; i < tl->ntoks; i++)
	{
		Token	   *t = &tl->toks[i];
		int			need = (t->literal ? 12 : t->len) + 1;

		if (out.len + need > maxlen)
		{
			*truncated = true;
			break;
		}
		if (t->gap_before && out.len > 0)
			appendStringInfoChar(&out, ' ');
		if (t->literal)
		{
			char		num[12];

			appendStringInfoChar(&out, '$');
			appendBinaryStringInfo(&out, num, pg_ltoa(next_param++, num));
		}
		else
			appendBinaryStringInfo(&out, buf + t->loc, t->len);
	}
	pfree(buf);
	pfree(tl->toks);
	pfree(tl);
	return out.data;
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
			appendStringInfo(&out, "$%d", n++);
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
			appendStringInfo(&out, "$%d", n++);
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
			appendStringInfo(&out, "$%d", n++);
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
