/*
 * fuzz_relay.c
 *	  libFuzzer target: the relay's protocol state (pgstream.c), both
 *	  directions.  The first byte picks a chunk size (its low six bits) and
 *	  the shared pool's carrier mode (bit 6); the rest is split at
 *	  the first "\n--\n" into a client stream and a server stream, which
 *	  are fed alternately in chunks, the way the relay reads them.
 *	  Checked: nothing crashes or leaks (ASan), a chunked run and a whole
 *	  run end the same way with the same output, FunctionCall never
 *	  reaches the server, the statement table stays within its limits, and
 *	  every message the proxy sends either way is well framed (the
 *	  carrier and the proxy's Sync included).
 */
#include "ag_pgstream.h"
#include "ag_pgproto.h"

#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ag_pgs_limits lim = {1 << 16, 8, 4096};

/* Every message in q is well framed, and none is a FunctionCall. */
static void
check_framing(const ag_buf *q, int to_server)
{
	size_t		pos = 0;

	while (pos + 5 <= q->len)
	{
		const uint8_t *p = q->data + q->off + pos;
		uint32_t	len = ag_pg_get32(p + 1);

		if (len < 4 || (to_server && p[0] == 'F'))
			abort();
		pos += 1 + (size_t) len;
	}
}

typedef struct outcome
{
	int			cst;
	int			sst;
	ag_buf		to_server;
	ag_buf		to_client;
} outcome;

static void
run(const uint8_t *c, size_t clen, const uint8_t *s, size_t slen, size_t chunk, int shared,
	outcome *o)
{
	ag_pgstream *ps = ag_pgs_new(&lim);
	ag_buf		held = {0};
	size_t		used;
	size_t		cp = 0;
	size_t		sp = 0;
	size_t		bytes;

	memset(o, 0, sizeof(*o));
	if (ps == NULL)
		abort();
	if (shared && ag_pgs_set_shared(ps, "agent", "ag1.s.mac", "app") < 0)
		abort();
	while ((cp < clen && o->cst == AG_PGS_OK) || (sp < slen && o->sst == AG_PGS_OK))
	{
		if (cp < clen && o->cst == AG_PGS_OK)
		{
			size_t		n = clen - cp < chunk ? clen - cp : chunk;

			/* a stall's leftover goes first, as in the relay */
			if (ag_buf_add(&held, c + cp, n) < 0)
				abort();
			o->cst = ag_pgs_from_client(ps, held.data + held.off, held.len, &used,
										&o->to_server, &o->to_client);
			if (used > held.len || (used < held.len && o->cst == AG_PGS_OK &&
									!ag_pgs_client_stalled(ps)))
				abort();
			ag_buf_consume(&held, used);
			cp += n;
		}
		else
			cp = clen;
		if (sp < slen && o->sst == AG_PGS_OK)
		{
			size_t		n = slen - sp < chunk ? slen - sp : chunk;

			o->sst = ag_pgs_from_server(ps, s + sp, n, &o->to_client, &o->to_server);
			sp += n;
			if (held.len > 0 && o->cst == AG_PGS_OK && o->sst == AG_PGS_OK)
			{
				o->cst = ag_pgs_from_client(ps, held.data + held.off, held.len, &used,
											&o->to_server, &o->to_client);
				if (used > held.len)
					abort();
				ag_buf_consume(&held, used);
			}
		}
		else
			sp = slen;
		if (ag_pgs_statements(ps, &bytes) > lim.max_statements ||
			bytes > lim.max_statement_bytes)
			abort();
	}
	ag_pgs_free(ps);
	ag_buf_free(&held);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep;
	const uint8_t *c;
	const uint8_t *s;
	size_t		clen;
	size_t		slen;
	size_t		chunk;
	int			shared;
	outcome		whole;
	outcome		part;

	if (size < 1)
		return 0;
	chunk = 1 + data[0] % 64;
	shared = (data[0] & 0x40) != 0;
	data++;
	size--;
	sep = memmem(data, size, "\n--\n", 4);
	c = data;
	clen = sep ? (size_t) (sep - data) : size;
	s = sep ? sep + 4 : data + size;
	slen = sep ? size - clen - 4 : 0;

	/*
	 * Fed whole, each side goes in one call: the client's first, then the
	 * server's.  Fed in chunks they interleave, which changes what the
	 * server's answers meet, so only the client's own stream is compared
	 * when there is no server stream.
	 */
	run(c, clen, s, slen, (size_t) -1 / 2, shared, &whole);
	run(c, clen, s, slen, chunk, shared, &part);
	check_framing(&whole.to_server, 1);
	check_framing(&part.to_server, 1);
	check_framing(&whole.to_client, 0);
	check_framing(&part.to_client, 0);
	if (slen == 0 &&
		(whole.cst != part.cst || whole.to_server.len != part.to_server.len ||
		 (whole.to_server.len > 0 && memcmp(whole.to_server.data + whole.to_server.off,
				part.to_server.data + part.to_server.off, whole.to_server.len) != 0)))
		abort();
	ag_buf_free(&whole.to_server);
	ag_buf_free(&whole.to_client);
	ag_buf_free(&part.to_server);
	ag_buf_free(&part.to_client);
	return 0;
}
