/*-------------------------------------------------------------------------
 *
 * tokensource.c
 *	  Identity tokens for agentgate-connect: from a file or a command.
 *
 * File: an IdP's agent (or a cron job) rewrites it.  It is read again
 * whenever it changed (inode, size or modification time) and whenever the
 * token read last is within the margin of its exp, so an atomic rename
 * and an in-place rewrite are both seen.
 *
 * Command: run with /bin/sh -c, standard output is the token, standard
 * error goes to the connector's log, a non-zero exit or no answer within
 * the timeout is an error.  Its token is cached until the margin before
 * its exp; one run serves every request made while it runs.  The command
 * runs as a child process watched by the event loop, so a slow IdP never
 * stalls open connections.
 *
 * The token is never logged.  Its exp is read without verifying the token
 * (the proxy does that): it only decides when to ask for a new one.
 *
 *-------------------------------------------------------------------------
 */
#include "ag_tokensource.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "jwt_int.h"

struct ag_token_wait
{
	struct ag_token_wait *next;
	ag_tokensrc *ts;
	ag_token_cb cb;				/* NULL once forgotten */
	void	   *arg;
};

struct ag_tokensrc
{
	struct event_base *base;
	char	   *file;
	char	   *command;
	int			margin;
	int			timeout;
	/* the cached token */
	char		token[AG_TOKEN_MAX + 1];
	size_t		len;
	int64_t		exp;
	char		err[AG_TOKEN_ERRLEN];
	struct stat st;				/* of the file when it was read */
	/* waiters and the command run */
	ag_token_wait *waiters;
	struct event *answer_ev;	/* delivers answers from the loop */
	pid_t		pid;
	int			pipe_fd;
	struct event *pipe_ev;
	struct event *timeout_ev;
	struct event *reap_ev;
	char		out[AG_TOKEN_MAX + 2];
	size_t		outlen;
	int			overflow;
};

int
ag_token_clean(char *buf, size_t *len, char *err, size_t errlen)
{
	size_t		s = 0;
	size_t		e = *len;
	size_t		i;

	while (s < e && (buf[s] == ' ' || buf[s] == '\t' || buf[s] == '\n' || buf[s] == '\r'))
		s++;
	while (e > s && (buf[e - 1] == ' ' || buf[e - 1] == '\t' || buf[e - 1] == '\n' ||
					 buf[e - 1] == '\r'))
		e--;
	if (e == s)
	{
		snprintf(err, errlen, "the token is empty");
		return -1;
	}
	if (e - s > AG_TOKEN_MAX)
	{
		snprintf(err, errlen, "the token is longer than %d bytes", AG_TOKEN_MAX);
		return -1;
	}
	for (i = s; i < e; i++)
	{
		char		ch = buf[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
		{
			snprintf(err, errlen, "the token holds a character that is not base64url or '.' (at byte %zu)",
					 i - s + 1);
			return -1;
		}
	}
	memmove(buf, buf + s, e - s);
	buf[e - s] = '\0';
	*len = e - s;
	return 0;
}

int
ag_token_exp(const char *token, size_t len, int64_t *exp, char *err, size_t errlen)
{
	const char *d1 = memchr(token, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t) (d1 + 1 - token)) : NULL;
	unsigned char *buf;
	size_t		plen;
	json_t	   *claims;
	json_t	   *v;
	int			rc = -1;

	if (d1 == NULL || d2 == NULL)
	{
		snprintf(err, errlen, "the token is not a JWT (header.payload.signature)");
		return -1;
	}
	buf = malloc(AG_B64URL_DECODED_MAX((size_t) (d2 - d1 - 1)) + 1);
	if (buf == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!ag_b64url_decode(d1 + 1, (size_t) (d2 - d1 - 1), buf,
						  AG_B64URL_DECODED_MAX((size_t) (d2 - d1 - 1)) + 1, &plen) ||
		(claims = json_loadb((const char *) buf, plen, JSON_REJECT_DUPLICATES, NULL)) == NULL)
	{
		snprintf(err, errlen, "the token's payload is not base64url-encoded JSON");
		free(buf);
		return -1;
	}
	v = json_object_get(claims, "exp");
	if (json_is_integer(v) && json_integer_value(v) > 0)
	{
		*exp = (int64_t) json_integer_value(v);
		rc = 0;
	}
	else if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1e15)
	{
		*exp = (int64_t) json_real_value(v);
		rc = 0;
	}
	else
		snprintf(err, errlen, "the token has no numeric exp claim");
	json_decref(claims);
	OPENSSL_cleanse(buf, plen);
	free(buf);
	return rc;
}

static void
answer_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_tokensrc *ts = arg;
	ag_token_wait *w;
	ag_token_wait *list = ts->waiters;

	ts->waiters = NULL;
	while ((w = list) != NULL)
	{
		list = w->next;
		if (w->cb)
		{
			if (ts->len > 0)
				w->cb(w->arg, ts->token, ts->exp, NULL);
			else
				w->cb(w->arg, NULL, 0, ts->err[0] ? ts->err : "no token");
		}
		free(w);
	}
}

/* Take a token read from the file or the command. */
static void
accept_token(ag_tokensrc *ts, char *buf, size_t len, const char *what)
{
	char		err[AG_TOKEN_ERRLEN - 32];
	int64_t		exp;

	if (ag_token_clean(buf, &len, err, sizeof(err)) < 0 ||
		ag_token_exp(buf, len, &exp, err, sizeof(err)) < 0)
	{
		snprintf(ts->err, sizeof(ts->err), "%s: %s", what, err);
		OPENSSL_cleanse(ts->token, sizeof(ts->token));
		ts->len = 0;
		return;
	}
	OPENSSL_cleanse(ts->token, sizeof(ts->token));
	memcpy(ts->token, buf, len);
	ts->token[len] = '\0';
	ts->len = len;
	ts->exp = exp;
	ts->err[0] = '\0';
}

static int
fresh(const ag_tokensrc *ts)
{
	return ts->len > 0 && ts->exp - (int64_t) time(NULL) > ts->margin;
}

static void
read_file(ag_tokensrc *ts)
{
	struct stat st;
	char	   *buf;
	int			fd;
	ssize_t		n;
	size_t		len = 0;

	if (stat(ts->file, &st) < 0)
	{
		snprintf(ts->err, sizeof(ts->err), "token_file \"%s\": %s", ts->file, strerror(errno));
		ts->len = 0;
		return;
	}
	if (ts->len > 0 && fresh(ts) && st.st_ino == ts->st.st_ino && st.st_size == ts->st.st_size &&
		st.st_mtim.tv_sec == ts->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == ts->st.st_mtim.tv_nsec)
		return;					/* unchanged, still fresh */
	buf = malloc(AG_TOKEN_MAX + 2);
	if (buf == NULL)
		return;
	fd = open(ts->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		snprintf(ts->err, sizeof(ts->err), "token_file \"%s\": %s", ts->file, strerror(errno));
		ts->len = 0;
		free(buf);
		return;
	}
	while (len < AG_TOKEN_MAX + 1 && (n = read(fd, buf + len, AG_TOKEN_MAX + 1 - len)) > 0)
		len += (size_t) n;
	close(fd);
	if (len > AG_TOKEN_MAX)
	{
		/* white space around a token this long is not worth allowing */
		snprintf(ts->err, sizeof(ts->err), "token_file \"%s\": larger than %d bytes", ts->file,
				 AG_TOKEN_MAX);
		ts->len = 0;
	}
	else
		accept_token(ts, buf, len, "token_file");
	ts->st = st;
	OPENSSL_cleanse(buf, AG_TOKEN_MAX + 2);
	free(buf);
}

static void
command_done(ag_tokensrc *ts, const char *err)
{
	if (ts->pipe_ev)
		event_free(ts->pipe_ev);
	ts->pipe_ev = NULL;
	if (ts->pipe_fd >= 0)
		close(ts->pipe_fd);
	ts->pipe_fd = -1;
	evtimer_del(ts->timeout_ev);
	if (err)
	{
		snprintf(ts->err, sizeof(ts->err), "token_command: %s", err);
		OPENSSL_cleanse(ts->token, sizeof(ts->token));
		ts->len = 0;
	}
	else if (ts->overflow)
	{
		snprintf(ts->err, sizeof(ts->err), "token_command: output larger than %d bytes", AG_TOKEN_MAX);
		ts->len = 0;
	}
	else
		accept_token(ts, ts->out, ts->outlen, "token_command");
	OPENSSL_cleanse(ts->out, sizeof(ts->out));
	ts->outlen = 0;
	ts->overflow = 0;
	event_active(ts->answer_ev, EV_TIMEOUT, 0);
}

/* The child closed its output: collect its exit status. */
static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_tokensrc *ts = arg;
	int			status;
	pid_t		r = waitpid(ts->pid, &status, WNOHANG);
	char		why[100];

	if (r == 0)
	{
		struct timeval tv = {0, 20000};

		evtimer_add(ts->reap_ev, &tv);	/* the timeout still runs */
		return;
	}
	ts->pid = 0;
	if (r < 0)
		command_done(ts, "could not collect its exit status");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		command_done(ts, NULL);
	else
	{
		if (WIFEXITED(status))
			snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
		else
			snprintf(why, sizeof(why), "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		command_done(ts, why);
	}
}

static void
pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_tokensrc *ts = arg;
	char		chunk[4096];
	ssize_t		n;

	for (;;)
	{
		n = read(fd, chunk, sizeof(chunk));
		if (n > 0)
		{
			if (ts->outlen + (size_t) n > AG_TOKEN_MAX + 1)
				ts->overflow = 1;
			else
			{
				memcpy(ts->out + ts->outlen, chunk, (size_t) n);
				ts->outlen += (size_t) n;
			}
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		break;
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	event_free(ts->pipe_ev);
	ts->pipe_ev = NULL;
	reap_cb(-1, 0, ts);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_tokensrc *ts = arg;

	if (ts->pid > 0)
	{
		kill(ts->pid, SIGKILL);
		(void) waitpid(ts->pid, NULL, 0);
		ts->pid = 0;
	}
	evtimer_del(ts->reap_ev);
	command_done(ts, "no answer within command_timeout");
}

static void
run_command(ag_tokensrc *ts)
{
	int			p[2];
	pid_t		pid;
	struct timeval tv = {ts->timeout, 0};

	if (pipe2(p, O_CLOEXEC) < 0)
	{
		command_done(ts, strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0)
	{
		close(p[0]);
		close(p[1]);
		command_done(ts, strerror(errno));
		return;
	}
	if (pid == 0)
	{
		int			devnull = open("/dev/null", O_RDONLY);

		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(p[1], 1);
		execl("/bin/sh", "sh", "-c", ts->command, (char *) NULL);
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	ts->pid = pid;
	ts->pipe_fd = p[0];
	ts->pipe_ev = event_new(ts->base, p[0], EV_READ | EV_PERSIST, pipe_cb, ts);
	event_add(ts->pipe_ev, NULL);
	evtimer_add(ts->timeout_ev, &tv);
}

ag_token_wait *
ag_tokensrc_get(ag_tokensrc *ts, ag_token_cb cb, void *arg)
{
	ag_token_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->ts = ts;
	w->cb = cb;
	w->arg = arg;
	w->next = ts->waiters;
	ts->waiters = w;
	if (ts->file)
	{
		read_file(ts);
		event_active(ts->answer_ev, EV_TIMEOUT, 0);
	}
	else if (ts->pid > 0 || ts->pipe_ev)
		;						/* the run in progress answers it */
	else if (fresh(ts))
		event_active(ts->answer_ev, EV_TIMEOUT, 0);
	else
		run_command(ts);
	return w;
}

void
ag_tokensrc_forget(ag_token_wait *w)
{
	w->cb = NULL;				/* freed when the answer comes */
}

ag_tokensrc *
ag_tokensrc_new(struct event_base *base, const char *file, const char *command,
				int margin, int timeout)
{
	ag_tokensrc *ts = calloc(1, sizeof(*ts));

	if (ts == NULL)
		return NULL;
	ts->base = base;
	ts->margin = margin;
	ts->timeout = timeout;
	ts->pipe_fd = -1;
	ts->file = file ? strdup(file) : NULL;
	ts->command = command ? strdup(command) : NULL;
	ts->answer_ev = event_new(base, -1, 0, answer_cb, ts);
	ts->timeout_ev = evtimer_new(base, timeout_cb, ts);
	ts->reap_ev = evtimer_new(base, reap_cb, ts);
	if ((file == NULL) == (command == NULL) || (file && !ts->file) || (command && !ts->command) ||
		!ts->answer_ev || !ts->timeout_ev || !ts->reap_ev)
	{
		ag_tokensrc_free(ts);
		return NULL;
	}
	return ts;
}

void
ag_tokensrc_free(ag_tokensrc *ts)
{
	ag_token_wait *w;

	if (ts == NULL)
		return;
	if (ts->pid > 0)
	{
		kill(ts->pid, SIGKILL);
		(void) waitpid(ts->pid, NULL, 0);
	}
	if (ts->pipe_ev)
		event_free(ts->pipe_ev);
	if (ts->pipe_fd >= 0)
		close(ts->pipe_fd);
	if (ts->answer_ev)
		event_free(ts->answer_ev);
	if (ts->timeout_ev)
		event_free(ts->timeout_ev);
	if (ts->reap_ev)
		event_free(ts->reap_ev);
	while ((w = ts->waiters) != NULL)
	{
		ts->waiters = w->next;
		free(w);
	}
	free(ts->file);
	free(ts->command);
	OPENSSL_cleanse(ts, sizeof(*ts));
	free(ts);
}
