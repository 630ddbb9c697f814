/*
 * fuzz_relay.c
 *	  libFuzzer target: the relay's stream scanners.  The first byte picks
 *	  a chunk size; the rest is scanned as a client stream and as a server
 *	  stream, cut into chunks the way the relay reads them (held bytes in
 *	  front of the next chunk).  Checked: the bytes passed never overtake
 *	  the input, held bytes stay within the relay's headroom, a whole
 *	  scan and a chunked scan agree, and FunctionCall never passes.
 */
#include "ag_pgproto.h"

#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSG		(1 << 16)

typedef int (*scan_fn) (void *sc, const uint8_t *buf, size_t n, size_t *pass);

static int
scan_client(void *sc, const uint8_t *buf, size_t n, size_t *pass)
{
	return ag_pgproto_scan_client(sc, buf, n, MAX_MSG, pass);
}

static int
scan_server(void *sc, const uint8_t *buf, size_t n, size_t *pass)
{
	return ag_pgproto_scan_server(sc, buf, n, pass);
}

/*
 * Feed s to scan in chunks, as the relay reads: the bytes a scan holds back
 * go in front of the next chunk, and never more than max_held of them.
 * Returns the bytes passed before a refusal or the end; *st the outcome.
 */
static size_t
chunked(const uint8_t *s, size_t len, size_t chunk, scan_fn scan, void *sc,
		int ok, size_t max_held, int *st)
{
	uint8_t    *buf = malloc(chunk + 16);
	size_t		held = 0;
	size_t		pos = 0;
	size_t		total = 0;

	if (buf == NULL)
		abort();
	*st = ok;
	while (pos < len)
	{
		size_t		n = len - pos < chunk ? len - pos : chunk;
		size_t		pass;

		memcpy(buf + held, s + pos, n);
		pos += n;
		n += held;
		*st = scan(sc, buf, n, &pass);
		if (pass > n)
			abort();
		total += pass;
		if (*st != ok)
			break;
		held = n - pass;
		if (held > max_held)
			abort();
		memmove(buf, buf + pass, held);
	}
	free(buf);
	return total;
}

static size_t
client_chunked(const uint8_t *s, size_t len, size_t chunk, int *st, uint64_t *syncs)
{
	ag_pg_client_scan sc;
	size_t		total;

	memset(&sc, 0, sizeof(sc));
	total = chunked(s, len, chunk, scan_client, &sc, AG_FRAME_OK, 4, st);
	*syncs = sc.syncs;
	return total;
}

static size_t
server_chunked(const uint8_t *s, size_t len, size_t chunk, int *st, uint64_t *ready)
{
	ag_pg_server_scan sc;
	size_t		total;

	memset(&sc, 0, sizeof(sc));
	total = chunked(s, len, chunk, scan_server, &sc, AG_SERVER_OK, 8, st);
	*ready = sc.ready;
	return total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		chunk;
	size_t		whole;
	size_t		part;
	int			st1;
	int			st2;
	uint64_t	n1;
	uint64_t	n2;
	size_t		pass;
	ag_pg_client_scan cs;

	if (size < 1)
		return 0;
	chunk = 1 + data[0] % 256;
	data++;
	size--;

	/* client: chunked and whole scans agree on where they stop and why */
	whole = client_chunked(data, size, size ? size : 1, &st1, &n1);
	part = client_chunked(data, size, chunk, &st2, &n2);
	if (st1 != st2 || n1 != n2 || (st1 != AG_FRAME_OK && whole != part))
		abort();
	if (st1 == AG_FRAME_OK && (whole > size || size - whole >= 5 || part != whole))
		abort();
	/* the refused message's header is where the scan stopped */
	if (st1 == AG_FRAME_FUNCTION_CALL && data[whole] != 'F')
		abort();
	memset(&cs, 0, sizeof(cs));
	if (ag_pgproto_scan_client(&cs, data, size, MAX_MSG, &pass) != (ag_pg_frame_status) st1 ||
		pass != whole)
		abort();

	/* server: the same */
	whole = server_chunked(data, size, size ? size : 1, &st1, &n1);
	part = server_chunked(data, size, chunk, &st2, &n2);
	if (st1 != st2 || n1 != n2 || whole != part)
		abort();
	return 0;
}
