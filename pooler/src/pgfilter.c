/*-------------------------------------------------------------------------
 *
 * pgfilter.c
 *	  Content patterns applied to the server's messages to a client (see
 *	  ag_pgfilter.h for what is scanned and why).
 *
 *-------------------------------------------------------------------------
 */
#include "ag_pgfilter.h"
#include "ag_pgproto.h"

#include <stdlib.h>
#include <string.h>

/* Types whose binary send form is their text (jsonb: a version byte first). */
#define TEXTOID			25
#define VARCHAROID		1043
#define BPCHAROID		1042
#define NAMEOID			19
#define UNKNOWNOID		705
#define JSONOID			114
#define JSONBOID		3802
#define XMLOID			142

typedef enum
{
	F_HEADER, F_GATHER, F_PASS
} fstate;

struct ag_pgfilter
{
	size_t		max_message;
	ag_patterns *set;
	const uint8_t *active;
	int			on;				/* some pattern applies */

	fstate		st;
	uint8_t		hdr[5];
	int			hdrlen;
	uint32_t	left;			/* body bytes still to come */
	uint8_t    *msg;			/* a gathered body */
	size_t		msglen;
	size_t		msgcap;

	/* the row description in force: ncols < 0 when there is none */
	int			ncols;
	uint32_t   *types;
	int16_t    *formats;
	int			ncap;
	int			formats_known;	/* the description does not answer a
								 * statement Describe */
	int			after_param_desc;	/* the last message was a
									 * ParameterDescription */
	int			copy_text;		/* inside COPY OUT, text or CSV */

	ag_buf		out;			/* a rewritten message */
	ag_buf		val;			/* a rewritten value */
	uint64_t	rewrites;
};

ag_pgfilter *
ag_pgf_new(size_t max_message)
{
	ag_pgfilter *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->max_message = max_message;
	f->ncols = -1;
	return f;
}

void
ag_pgf_free(ag_pgfilter *f)
{
	if (f == NULL)
		return;
	free(f->msg);
	free(f->types);
	free(f->formats);
	ag_buf_free(&f->out);
	ag_buf_free(&f->val);
	free(f);
}

void
ag_pgf_set(ag_pgfilter *f, ag_patterns *set, const uint8_t *active)
{
	int			i;

	f->set = set;
	f->active = active;
	f->on = 0;
	for (i = 0; i < ag_patterns_count(set); i++)
		if (active == NULL || active[i])
			f->on = 1;
}

int
ag_pgf_at_boundary(const ag_pgfilter *f)
{
	return f->st == F_HEADER && f->hdrlen == 0;
}

uint64_t
ag_pgf_rewrites(const ag_pgfilter *f)
{
	return f->rewrites;
}

static int
binary_is_text(uint32_t type)
{
	switch (type)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
		case UNKNOWNOID:
		case JSONOID:
		case JSONBOID:
		case XMLOID:
			return 1;
		default:
			return 0;
	}
}

/* Is column i of the current description's rows to be scanned? */
static int
column_scanned(const ag_pgfilter *f, int i)
{
	if (f->ncols < 0 || i >= f->ncols || !f->formats_known)
		return 1;
	return f->formats[i] == 0 || binary_is_text(f->types[i]);
}

/* Read a RowDescription; a malformed one leaves no description (scan all). */
static void
read_row_description(ag_pgfilter *f, const uint8_t *b, size_t len)
{
	size_t		pos = 2;
	int			n,
				i;

	f->ncols = -1;
	if (len < 2)
		return;
	n = (b[0] << 8) | b[1];
	if (n > f->ncap)
	{
		uint32_t   *t = realloc(f->types, n * sizeof(uint32_t));
		int16_t    *fm;

		if (t == NULL)
			return;
		f->types = t;
		fm = realloc(f->formats, n * sizeof(int16_t));
		if (fm == NULL)
			return;
		f->formats = fm;
		f->ncap = n;
	}
	for (i = 0; i < n; i++)
	{
		const uint8_t *nul = memchr(b + pos, 0, len - pos);

		if (nul == NULL)
			return;
		pos = (size_t) (nul - b) + 1;
		if (len - pos < 18)
			return;
		f->types[i] = ag_pg_get32(b + pos + 6);
		f->formats[i] = (int16_t) ((b[pos + 16] << 8) | b[pos + 17]);
		pos += 18;
	}
	f->ncols = n;
}

/*
 * Apply the patterns to one value.  1: the new value is in f->val;
 * 0: unchanged; -1: failure.
 */
static int
scan_value(ag_pgfilter *f, const uint8_t *v, size_t len)
{
	f->val.off = 0;
	f->val.len = 0;
	return ag_patterns_apply(f->set, f->active, v, len, &f->val);
}

static int
out_start(ag_pgfilter *f, const uint8_t *upto, size_t n)
{
	f->out.off = 0;
	f->out.len = 0;
	return ag_buf_add(&f->out, f->hdr, 5) < 0 || ag_buf_add(&f->out, upto, n) < 0 ? -1 : 0;
}

static int
out_put32(ag_pgfilter *f, uint32_t v)
{
	uint8_t		b[4];

	ag_pg_put32(b, v);
	return ag_buf_add(&f->out, b, 4);
}

/* A DataRow: each scanned value rewritten, the lengths fixed. */
static ag_pgf_status
rewrite_data_row(ag_pgfilter *f, const uint8_t *b, size_t len, int *changed)
{
	size_t		pos = 2;
	int			n,
				i;

	if (len < 2)
		return AG_PGF_BAD_MESSAGE;
	n = (b[0] << 8) | b[1];
	for (i = 0; i < n; i++)
	{
		uint32_t	vl;
		size_t		start = pos;
		int			rc = 0;

		if (len - pos < 4)
			return AG_PGF_BAD_MESSAGE;
		vl = ag_pg_get32(b + pos);
		pos += 4;
		if (vl == 0xFFFFFFFF)
		{
			if (*changed && ag_buf_add(&f->out, b + start, 4) < 0)
				return AG_PGF_NOMEM;
			continue;			/* NULL */
		}
		if (vl > len - pos)
			return AG_PGF_BAD_MESSAGE;
		if (column_scanned(f, i) && (rc = scan_value(f, b + pos, vl)) < 0)
			return AG_PGF_SCAN_FAILED;
		if (rc == 1 && !*changed)
		{
			if (out_start(f, b, start) < 0)
				return AG_PGF_NOMEM;
			*changed = 1;
		}
		if (rc == 1)
		{
			if (f->val.len > INT32_MAX)
				return AG_PGF_TOO_LARGE;
			if (out_put32(f, (uint32_t) f->val.len) < 0 ||
				ag_buf_add(&f->out, f->val.data + f->val.off, f->val.len) < 0)
				return AG_PGF_NOMEM;
			f->rewrites++;
		}
		else if (*changed && ag_buf_add(&f->out, b + start, 4 + vl) < 0)
			return AG_PGF_NOMEM;
		pos += vl;
	}
	if (*changed && ag_buf_add(&f->out, b + pos, len - pos) < 0)
		return AG_PGF_NOMEM;
	return AG_PGF_OK;
}

/*
 * A run of NUL-terminated strings: in Notice/ErrorResponse each field is a
 * code byte and a string (skip = 1), and the severity, SQLSTATE and the
 * like are left alone; in a NotificationResponse the channel and payload
 * are scanned (skip = 0).  Bytes after the last complete string are kept.
 */
static ag_pgf_status
rewrite_strings(ag_pgfilter *f, const uint8_t *b, size_t len, size_t pos, int fields,
				int *changed)
{
	while (pos < len)
	{
		size_t		start = pos;
		const uint8_t *nul;
		size_t		vl;
		int			rc = 0;

		if (fields)
		{
			if (b[pos] == 0)
				break;			/* the terminator */
			pos++;
		}
		nul = memchr(b + pos, 0, len - pos);
		if (nul == NULL)
			break;
		vl = (size_t) (nul - (b + pos));
		if (!(fields && (b[start] == 'S' || b[start] == 'V' || b[start] == 'C')) &&
			(rc = scan_value(f, b + pos, vl)) < 0)
			return AG_PGF_SCAN_FAILED;
		if (rc == 1 && !*changed)
		{
			if (out_start(f, b, start) < 0)
				return AG_PGF_NOMEM;
			*changed = 1;
		}
		if (rc == 1)
		{
			if (ag_buf_add(&f->out, b + start, pos - start) < 0 ||
				ag_buf_add(&f->out, f->val.data + f->val.off, f->val.len) < 0 ||
				ag_buf_add(&f->out, "", 1) < 0)
				return AG_PGF_NOMEM;
			f->rewrites++;
		}
		else if (*changed && ag_buf_add(&f->out, b + start, vl + 1 + (pos - start)) < 0)
			return AG_PGF_NOMEM;
		pos += vl + 1;
	}
	if (*changed && ag_buf_add(&f->out, b + pos, len - pos) < 0)
		return AG_PGF_NOMEM;
	return AG_PGF_OK;
}

/* A gathered message: rewritten or not, it goes out. */
static ag_pgf_status
process(ag_pgfilter *f, ag_buf *out)
{
	const uint8_t *b = f->msg;
	size_t		len = f->msglen;
	int			changed = 0;
	ag_pgf_status st = AG_PGF_OK;

	switch (f->hdr[0])
	{
		case 'T':
			read_row_description(f, b, len);
			break;
		case 'H':
			f->copy_text = len >= 1 && b[0] == 0;
			break;
		case 'D':
			if (f->on)
				st = rewrite_data_row(f, b, len, &changed);
			break;
		case 'd':
			if (f->on && f->copy_text)
			{
				int			rc = scan_value(f, b, len);

				if (rc < 0)
					st = AG_PGF_SCAN_FAILED;
				else if (rc == 1)
				{
					f->out.off = 0;
					f->out.len = 0;
					if (ag_buf_add(&f->out, f->hdr, 5) < 0 ||
						ag_buf_add(&f->out, f->val.data + f->val.off, f->val.len) < 0)
						st = AG_PGF_NOMEM;
					changed = 1;
					f->rewrites++;
				}
			}
			break;
		case 'N':
		case 'E':
			if (f->on)
				st = rewrite_strings(f, b, len, 0, 1, &changed);
			break;
		case 'A':
			if (f->on && len >= 4)
				st = rewrite_strings(f, b, len, 4, 0, &changed);
			break;
	}
	if (st != AG_PGF_OK)
		return st;
	if (changed)
	{
		if (f->out.len - 1 > INT32_MAX)
			return AG_PGF_TOO_LARGE;
		ag_pg_put32(f->out.data + f->out.off + 1, (uint32_t) (f->out.len - 1));
		if (ag_buf_add(out, f->out.data + f->out.off, f->out.len) < 0)
			return AG_PGF_NOMEM;
	}
	else if (ag_buf_add(out, f->hdr, 5) < 0 || ag_buf_add(out, b, len) < 0)
		return AG_PGF_NOMEM;
	return AG_PGF_OK;
}

/* A message's header is in: what it ends, and whether to gather it. */
static ag_pgf_status
header(ag_pgfilter *f, ag_buf *out)
{
	uint8_t		t = f->hdr[0];
	uint32_t	mlen = ag_pg_get32(f->hdr + 1);
	int			gather;

	f->hdrlen = 0;
	if (mlen < 4)
		return AG_PGF_BAD_MESSAGE;
	f->left = mlen - 4;
	switch (t)
	{
		case 'C':
		case 'I':
		case 's':
		case 'E':
		case 'Z':
		case 'n':
			f->ncols = -1;
			f->copy_text = 0;
			break;
		case 'c':
			f->copy_text = 0;
			break;
	}
	if (t == 'T')
		f->formats_known = !f->after_param_desc;
	f->after_param_desc = t == 't';
	gather = t == 'T' || t == 'H' ||
		(f->on && (t == 'D' || t == 'N' || t == 'E' || t == 'A' || (t == 'd' && f->copy_text)));
	if (gather)
	{
		if (f->left > f->max_message)
			return AG_PGF_TOO_LARGE;
		if (f->left > f->msgcap)
		{
			uint8_t    *m = realloc(f->msg, f->left);

			if (m == NULL)
				return AG_PGF_NOMEM;
			f->msg = m;
			f->msgcap = f->left;
		}
		f->msglen = 0;
		f->st = F_GATHER;
		if (f->left == 0)
		{
			f->st = F_HEADER;
			return process(f, out);
		}
		return AG_PGF_OK;
	}
	if (ag_buf_add(out, f->hdr, 5) < 0)
		return AG_PGF_NOMEM;
	f->st = f->left ? F_PASS : F_HEADER;
	return AG_PGF_OK;
}

ag_pgf_status
ag_pgf_from_server(ag_pgfilter *f, const uint8_t *buf, size_t len, ag_buf *out)
{
	size_t		pos = 0;
	ag_pgf_status st;

	while (pos < len)
	{
		size_t		n;

		switch (f->st)
		{
			case F_HEADER:
				n = 5 - (size_t) f->hdrlen;
				if (n > len - pos)
					n = len - pos;
				memcpy(f->hdr + f->hdrlen, buf + pos, n);
				f->hdrlen += (int) n;
				pos += n;
				if (f->hdrlen == 5 && (st = header(f, out)) != AG_PGF_OK)
					return st;
				break;
			case F_GATHER:
				n = f->left;
				if (n > len - pos)
					n = len - pos;
				memcpy(f->msg + f->msglen, buf + pos, n);
				f->msglen += n;
				f->left -= (uint32_t) n;
				pos += n;
				if (f->left == 0)
				{
					f->st = F_HEADER;
					if ((st = process(f, out)) != AG_PGF_OK)
						return st;
				}
				break;
			case F_PASS:
				n = f->left;
				if (n > len - pos)
					n = len - pos;
				if (ag_buf_add(out, buf + pos, n) < 0)
					return AG_PGF_NOMEM;
				f->left -= (uint32_t) n;
				pos += n;
				if (f->left == 0)
					f->st = F_HEADER;
				break;
		}
	}
	return AG_PGF_OK;
}
