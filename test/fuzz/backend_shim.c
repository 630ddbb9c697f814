/*
 * The few backend functions extension/audit_scan.c calls, for building it
 * into a libFuzzer target outside the server: memory from malloc (never
 * freed before the input is done: the target frees what it keeps),
 * StringInfo as in src/common/stringinfo.c, pg_ltoa, and pg_mbcliplen for
 * UTF-8.  No printf: the server headers route it to libpgport.
 */
#include "postgres.h"

#include <stdlib.h>
#include <string.h>

#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

void *
palloc(Size size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
palloc0(Size size)
{
	void	   *p = palloc(size);

	memset(p, 0, size);
	return p;
}

void *
repalloc(void *pointer, Size size)
{
	void	   *p = realloc(pointer, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void
pfree(void *pointer)
{
	free(pointer);
}

void
initStringInfo(StringInfo str)
{
	str->maxlen = 1024;
	str->data = palloc(str->maxlen);
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen;

	if (needed < 0 || needed >= (int) (MaxAllocSize - str->len))
		abort();
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	str->data = repalloc(str->data, newlen);
	str->maxlen = newlen;
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	appendBinaryStringInfo(str, &ch, 1);
}

int
pg_ltoa(int32 value, char *a)
{
	char		tmp[12];
	int			n = 0;
	int			len = 0;
	int64		v = value;

	if (v < 0)
	{
		a[len++] = '-';
		v = -v;
	}
	do
	{
		tmp[n++] = '0' + (char) (v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		a[len++] = tmp[--n];
	a[len] = '\0';
	return len;
}

/* the longest prefix of at most limit bytes that ends on a UTF-8 boundary */
int
pg_mbcliplen(const char *mbstr, int len, int limit)
{
	int			n = Min(len, limit);

	while (n > 0 && n < len && (((unsigned char) mbstr[n]) & 0xC0) == 0x80)
		n--;
	return n;
}
