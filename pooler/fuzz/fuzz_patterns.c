/*
 * fuzz_patterns.c
 *	  libFuzzer target: content patterns (patterns.c) and the server-side
 *	  filter that applies them (pgfilter.c).  The first byte picks a chunk
 *	  size; the rest is a server stream fed to the filter with the built-in
 *	  patterns, whole and in chunks, and also given to the matcher as one
 *	  text.  Checked: nothing crashes or leaks (ASan), a chunked run and a
 *	  whole run end the same way with the same output, the output is the
 *	  input's messages, in order, each well framed, and a DataRow that was
 *	  well formed still is.
 */
#include "ag_pgfilter.h"
#include "ag_pgproto.h"

#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ag_patterns *set;

/* A DataRow body whose column lengths add up exactly. */
static int
datarow_ok(const uint8_t *b, size_t len)
{
	size_t		pos = 2;
	int			n,
				i;

	if (len < 2)
		return 0;
	n = (b[0] << 8) | b[1];
	for (i = 0; i < n; i++)
	{
		uint32_t	vl;

		if (len - pos < 4)
			return 0;
		vl = ag_pg_get32(b + pos);
		pos += 4;
		if (vl == 0xFFFFFFFF)
			continue;
		if (vl > len - pos)
			return 0;
		pos += vl;
	}
	return pos == len;
}

/* Messages of a stream: type and body, up to max of them. */
typedef struct msgs
{
	int			n;
	uint8_t		type[256];
	int			row_ok[256];
} msgs;

static size_t
split(const uint8_t *p, size_t len, msgs *m)
{
	size_t		pos = 0;

	m->n = 0;
	while (pos + 5 <= len && m->n < 256)
	{
		uint32_t	ml = ag_pg_get32(p + pos + 1);

		if (ml < 4 || ml - 4 > len - pos - 5)
			break;
		m->type[m->n] = p[pos];
		m->row_ok[m->n] = p[pos] == 'D' && datarow_ok(p + pos + 5, ml - 4);
		m->n++;
		pos += 1 + (size_t) ml;
	}
	return pos;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ag_pgfilter *whole;
	ag_pgfilter *chunked;
	ag_buf		o1 = {0},
				o2 = {0},
				text = {0};
	ag_pgf_status s1,
				s2 = AG_PGF_OK;
	size_t		chunk,
				pos;
	msgs		in,
				out;
	char		err[256];
	int			i;

	if (set == NULL && (set = ag_patterns_builtins(err, sizeof(err))) == NULL)
		abort();
	if (size < 1)
		return 0;
	chunk = 1 + data[0] % 64;
	data++;
	size--;

	/* the matcher alone, on the raw bytes */
	if (ag_patterns_apply(set, NULL, data, size, &text) < 0)
		abort();
	ag_buf_free(&text);

	whole = ag_pgf_new(1 << 20);
	chunked = ag_pgf_new(1 << 20);
	if (whole == NULL || chunked == NULL)
		abort();
	ag_pgf_set(whole, set, NULL);
	ag_pgf_set(chunked, set, NULL);
	s1 = ag_pgf_from_server(whole, data, size, &o1);
	for (pos = 0; pos < size && s2 == AG_PGF_OK; pos += chunk)
		s2 = ag_pgf_from_server(chunked, data + pos, size - pos < chunk ? size - pos : chunk, &o2);
	if (s1 != s2 || o1.len != o2.len ||
		(o1.len > 0 && memcmp(o1.data + o1.off, o2.data + o2.off, o1.len) != 0))
		abort();
	if (s1 == AG_PGF_OK)
	{
		/* whole messages in, the same messages out (a partial one may trail) */
		size_t		in_whole = split(data, size, &in);
		size_t		out_whole = o1.len ? split(o1.data + o1.off, o1.len, &out) : (out.n = 0);

		if (out.n != in.n || (in_whole == size && out_whole != o1.len))
			abort();
		for (i = 0; i < in.n; i++)
			if (in.type[i] != out.type[i] || (in.row_ok[i] && !out.row_ok[i]))
				abort();
	}
	ag_buf_free(&o1);
	ag_buf_free(&o2);
	ag_pgf_free(whole);
	ag_pgf_free(chunked);
	return 0;
}
