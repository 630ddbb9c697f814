/*
 * tokensource_test.c
 *	  Unit tests for agentgate-connect's token source: cleaning, reading
 *	  exp, a file re-read when it changes, a command cached until near exp,
 *	  and the command's failures.
 */
#include "ag_tokensource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ag_test.h"
#include "../src/jwt_int.h"

/* An unsigned JWT-shaped token with the given payload JSON. */
static void
make_token(char *out, size_t outlen, const char *payload)
{
	char		p[1024];
	size_t		n = ag_b64url_encode((const unsigned char *) payload, strlen(payload), p);

	p[n] = '\0';
	snprintf(out, outlen, "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p);
}

static int	answered;
static char got_token[AG_TOKEN_MAX + 1];
static int64_t got_exp;
static char got_err[AG_TOKEN_ERRLEN];

static void
cb(void *arg, const char *token, int64_t exp, const char *err)
{
	answered++;
	snprintf(got_token, sizeof(got_token), "%s", token ? token : "");
	snprintf(got_err, sizeof(got_err), "%s", err ? err : "");
	got_exp = exp;
	event_base_loopbreak(arg);
}

static void
ask(struct event_base *base, ag_tokensrc *ts)
{
	struct timeval tv = {10, 0};

	answered = 0;
	got_token[0] = got_err[0] = '\0';
	ag_tokensrc_get(ts, cb, base);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
write_file(const char *path, const char *text)
{
	char		tmp[256];
	FILE	   *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	fputs(text, f);
	fclose(f);
	rename(tmp, path);
}

int
main(void)
{
	char		buf[AG_TOKEN_MAX + 64];
	char		tok[2048];
	char		tok2[2048];
	char		err[AG_TOKEN_ERRLEN];
	size_t		len;
	int64_t		exp;
	char		dir[] = "/tmp/tokensource_test_XXXXXX";
	char		file[300];
	char		cmd[1200];
	char		counter[300];
	struct event_base *base = event_base_new();
	ag_tokensrc *ts;
	time_t		now = time(NULL);

	/* ag_token_clean */
	strcpy(buf, "  \n abc.def-_.ghi\r\n");
	len = strlen(buf);
	CHECK(ag_token_clean(buf, &len, err, sizeof(err)) == 0 && strcmp(buf, "abc.def-_.ghi") == 0 && len == 13,
		  "white space around a token is trimmed");
	strcpy(buf, " \n\t ");
	len = strlen(buf);
	CHECK(ag_token_clean(buf, &len, err, sizeof(err)) < 0 && strstr(err, "empty"), "an empty token is refused");
	strcpy(buf, "abc def");
	len = strlen(buf);
	CHECK(ag_token_clean(buf, &len, err, sizeof(err)) < 0 && strstr(err, "at byte 4"),
		  "a space inside is refused, with its place");
	strcpy(buf, "abc\001");
	len = strlen(buf);
	CHECK(ag_token_clean(buf, &len, err, sizeof(err)) < 0, "a control character is refused");
	memset(buf, 'a', AG_TOKEN_MAX + 1);
	len = AG_TOKEN_MAX + 1;
	CHECK(ag_token_clean(buf, &len, err, sizeof(err)) < 0 && strstr(err, "longer"), "a token over the limit is refused");

	/* ag_token_exp */
	make_token(tok, sizeof(tok), "{\"sub\":\"a\",\"exp\":1900000000}");
	CHECK(ag_token_exp(tok, strlen(tok), &exp, err, sizeof(err)) == 0 && exp == 1900000000, "exp read");
	make_token(tok, sizeof(tok), "{\"sub\":\"a\",\"exp\":1900000000.5}");
	CHECK(ag_token_exp(tok, strlen(tok), &exp, err, sizeof(err)) == 0 && exp == 1900000000, "a real exp read");
	make_token(tok, sizeof(tok), "{\"sub\":\"a\"}");
	CHECK(ag_token_exp(tok, strlen(tok), &exp, err, sizeof(err)) < 0 && strstr(err, "no numeric exp"), "no exp");
	make_token(tok, sizeof(tok), "{\"exp\":\"1900000000\"}");
	CHECK(ag_token_exp(tok, strlen(tok), &exp, err, sizeof(err)) < 0, "a string exp is refused");
	make_token(tok, sizeof(tok), "{\"exp\":1,\"exp\":1900000000}");
	CHECK(ag_token_exp(tok, strlen(tok), &exp, err, sizeof(err)) < 0, "a duplicate claim is refused");
	CHECK(ag_token_exp("abc", 3, &exp, err, sizeof(err)) < 0 && strstr(err, "not a JWT"), "not a JWT");
	CHECK(ag_token_exp("a.%%%.b", 7, &exp, err, sizeof(err)) < 0 && strstr(err, "base64url"), "bad payload");

	CHECK(mkdtemp(dir) != NULL, "temp dir");
	snprintf(file, sizeof(file), "%s/token", dir);

	/* file: read, cached while unchanged, re-read when it changes */
	snprintf(buf, sizeof(buf), "{\"exp\":%lld}", (long long) now + 600);
	make_token(tok, sizeof(tok), buf);
	snprintf(buf, sizeof(buf), "%s\n", tok);
	write_file(file, buf);
	ts = ag_tokensrc_new(base, file, NULL, 60, 5);
	ask(base, ts);
	CHECK(answered == 1 && strcmp(got_token, tok) == 0 && got_exp == now + 600, "file: token and exp");
	snprintf(buf, sizeof(buf), "{\"exp\":%lld,\"n\":2}", (long long) now + 900);
	make_token(tok2, sizeof(tok2), buf);
	write_file(file, tok2);
	ask(base, ts);
	CHECK(answered == 1 && strcmp(got_token, tok2) == 0 && got_exp == now + 900, "file: a rewritten file is read again");
	write_file(file, "not a token at all");
	ask(base, ts);
	CHECK(answered == 1 && got_token[0] == '\0' && strstr(got_err, "token_file"), "file: garbage is an error");
	unlink(file);
	ask(base, ts);
	CHECK(answered == 1 && strstr(got_err, "No such file"), "file: a missing file is an error");
	ag_tokensrc_free(ts);

	/* command: run once, cached until margin before exp */
	snprintf(counter, sizeof(counter), "%s/runs", dir);
	snprintf(buf, sizeof(buf), "{\"exp\":%lld}", (long long) now + 600);
	make_token(tok, sizeof(tok), buf);
	snprintf(cmd, sizeof(cmd), "echo x >> %s; echo '%s'", counter, tok);
	ts = ag_tokensrc_new(base, NULL, cmd, 60, 5);
	ask(base, ts);
	CHECK(answered == 1 && strcmp(got_token, tok) == 0, "command: token from standard output");
	ask(base, ts);
	CHECK(answered == 1 && strcmp(got_token, tok) == 0, "command: second ask answered");
	{
		FILE	   *f = fopen(counter, "r");
		int			lines = 0;
		int			ch;

		while (f && (ch = fgetc(f)) != EOF)
			lines += ch == '\n';
		if (f)
			fclose(f);
		CHECK(lines == 1, "command: cached, ran once");
	}
	ag_tokensrc_free(ts);

	/* command: a token within the margin is fetched again every time */
	snprintf(buf, sizeof(buf), "{\"exp\":%lld}", (long long) now + 30);
	make_token(tok, sizeof(tok), buf);
	unlink(counter);
	snprintf(cmd, sizeof(cmd), "echo x >> %s; echo '%s'", counter, tok);
	ts = ag_tokensrc_new(base, NULL, cmd, 60, 5);
	ask(base, ts);
	ask(base, ts);
	{
		FILE	   *f = fopen(counter, "r");
		int			lines = 0;
		int			ch;

		while (f && (ch = fgetc(f)) != EOF)
			lines += ch == '\n';
		if (f)
			fclose(f);
		CHECK(lines == 2, "command: a token near exp is not cached");
	}
	ag_tokensrc_free(ts);

	ts = ag_tokensrc_new(base, NULL, "echo oops >&2; exit 3", 60, 5);
	ask(base, ts);
	CHECK(answered == 1 && strstr(got_err, "exited with status 3"), "command: a non-zero exit is an error");
	ag_tokensrc_free(ts);
	ts = ag_tokensrc_new(base, NULL, "sleep 5", 60, 1);
	ask(base, ts);
	CHECK(answered == 1 && strstr(got_err, "command_timeout"), "command: a hung command times out");
	ag_tokensrc_free(ts);
	ts = ag_tokensrc_new(base, NULL, "head -c 20000 /dev/zero | tr '\\0' a", 60, 5);
	ask(base, ts);
	CHECK(answered == 1 && strstr(got_err, "larger than"), "command: oversized output is an error");
	ag_tokensrc_free(ts);
	CHECK(ag_tokensrc_new(base, NULL, NULL, 60, 5) == NULL, "neither file nor command is refused");
	CHECK(ag_tokensrc_new(base, "f", "c", 60, 5) == NULL, "both file and command is refused");

	unlink(counter);
	rmdir(dir);
	event_base_free(base);
	return ag_test_report();
}
