/*-------------------------------------------------------------------------
 *
 * proxy_main.c
 *	  agentgate-proxy: startup, signals, configuration reload, shutdown.
 *
 *	  agentgate-proxy -c FILE		run in the foreground, log to stderr
 *	  agentgate-proxy -t -c FILE	check the configuration and exit
 *
 * SIGHUP reloads the configuration (an invalid one is logged and the old
 * one kept); established connections are never dropped by a reload.
 * SIGTERM stops accepting, closes idle connections, waits up to
 * shutdown_timeout seconds for the others, then exits.  SIGINT (or a
 * second SIGTERM) exits at once.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>

/* The keysource may keep pointers to its configuration strings. */
typedef struct ks_holder
{
	ag_keysource *src;
	char	   *file;
	char	   *uri;
	char	   *ca;
	int			refresh;
	int			min_refetch;
} ks_holder;

static int	fd_limit_check(const ag_proxy_config *cfg, int apply, char *err, size_t errlen);

static ks_holder keys_now;
static struct event *shutdown_timer;
static time_t shutdown_deadline;

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
keysource_open(const ag_proxy_config *cfg, ks_holder *h, char *err, size_t errlen)
{
	ag_keysource_config kc;

	memset(h, 0, sizeof(*h));
	h->file = dup_or_null(cfg->jwks_file);
	h->uri = dup_or_null(cfg->jwks_uri);
	h->ca = dup_or_null(cfg->jwks_ca_file);
	h->refresh = cfg->jwks_refresh;
	h->min_refetch = cfg->jwks_min_refetch;
	kc.jwks_file = h->file;
	kc.jwks_uri = h->uri;
	kc.ca_file = h->ca;
	kc.refresh_s = h->refresh;
	kc.min_refetch_s = h->min_refetch;
	h->src = ag_keysource_new(&kc, err, errlen);
	if (h->src == NULL)
	{
		free(h->file);
		free(h->uri);
		free(h->ca);
		return -1;
	}
	return 0;
}

static void
keysource_close(ks_holder *h)
{
	if (h->src)
		ag_keysource_free(h->src);
	free(h->file);
	free(h->uri);
	free(h->ca);
	memset(h, 0, sizeof(*h));
}

static int
keysource_same(const ag_proxy_config *cfg, const ks_holder *h)
{
	return str_eq(cfg->jwks_file, h->file) && str_eq(cfg->jwks_uri, h->uri) &&
		str_eq(cfg->jwks_ca_file, h->ca) && cfg->jwks_refresh == h->refresh &&
		cfg->jwks_min_refetch == h->min_refetch;
}

static void
set_policy(const ag_proxy_config *cfg)
{
	ag_jwt_policy *p = &ag_proxy_g.policy;

	p->issuer = cfg->issuer;
	p->audience = cfg->audience;
	p->leeway = cfg->leeway;
	p->identity_claim = cfg->identity_claim;
	p->groups_claim = cfg->groups_claim;
	p->scope_claim = cfg->scope_claim;
}

static void
reload(void)
{
	ag_proxy   *g = &ag_proxy_g;
	ag_proxy_config *old = g->cfg;
	ag_proxy_config *cfg;
	SSL_CTX    *ctx;
	ks_holder	nks;
	char		err[512];
	int			admin_changed;

	ag_log(AG_LOG_INFO, NULL, "SIGHUP: reloading \"%s\"", g->config_path);
	cfg = ag_proxy_config_load(g->config_path, err, sizeof(err));
	if (cfg == NULL)
	{
		ag_log(AG_LOG_ERROR, NULL, "reload failed, keeping the old configuration: %s", err);
		return;
	}
	if (fd_limit_check(cfg, 1, err, sizeof(err)) < 0)
	{
		ag_log(AG_LOG_ERROR, NULL, "reload failed, keeping the old configuration: %s", err);
		ag_proxy_config_free(cfg);
		return;
	}
	ctx = ag_tls_context_new(cfg, err, sizeof(err));
	if (ctx == NULL)
	{
		ag_log(AG_LOG_ERROR, NULL, "reload failed, keeping the old configuration: %s", err);
		ag_proxy_config_free(cfg);
		return;
	}
	if (!keysource_same(cfg, &keys_now))
	{
		if (keysource_open(cfg, &nks, err, sizeof(err)) < 0)
		{
			ag_log(AG_LOG_ERROR, NULL, "reload failed, keeping the old configuration: %s", err);
			SSL_CTX_free(ctx);
			ag_proxy_config_free(cfg);
			return;
		}
		keysource_close(&keys_now);
		keys_now = nks;
		g->keys = keys_now.src;
	}
	else if (ag_keysource_reload(keys_now.src, err, sizeof(err)) < 0)
		ag_log(AG_LOG_ERROR, NULL, "keys not reloaded, keeping the old ones: %s", err);

	if (ag_proxy_config_listen_changed(old, cfg))
	{
		ag_listen_close();
		if (ag_listen_open(cfg, err, sizeof(err)) < 0)
		{
			ag_log(AG_LOG_ERROR, NULL, "new listen addresses failed (%s); keeping the old ones", err);
			free(cfg->listen_addr);
			cfg->listen_addr = strdup(old->listen_addr);
			cfg->listen_port = old->listen_port;
			if (ag_listen_open(cfg, err, sizeof(err)) < 0)
				ag_log(AG_LOG_ERROR, NULL, "could not reopen the old listeners: %s", err);
		}
	}
	admin_changed = strcmp(old->admin_conninfo, cfg->admin_conninfo) != 0 ||
		old->admin_connections != cfg->admin_connections;

	SSL_CTX_free(g->ssl_ctx);	/* live sessions hold their own reference */
	g->ssl_ctx = ctx;
	g->cfg = cfg;
	set_policy(cfg);
	ag_proxy_config_free(old);
	/* issuer, audience, claims or keys may have changed: verify again */
	ag_logincache_reset();
	if (admin_changed)
	{
		ag_admin_stop();
		ag_admin_start();
	}
	ag_log(AG_LOG_INFO, NULL, "configuration reloaded");
}

/* Idle connections' queue memory, given back every TRIM_SECONDS. */
#define TRIM_SECONDS 5
static struct event *trim_timer;
static const struct timeval trim_every = {TRIM_SECONDS, 0};

static void
trim_tick(evutil_socket_t fd, short what, void *arg)
{
	static uint64_t last_id;
	size_t		freed = ag_client_trim_idle();

	/*
	 * Handshakes and logins leave freed memory between the blocks that
	 * connections keep; glibc gives whole free pages inside the heap back
	 * only when asked.  Asked when connections came or queues were freed
	 * since the last tick, so an idle proxy does no work here.
	 */
	if (ag_proxy_g.next_id != last_id || freed > 0)
	{
		last_id = ag_proxy_g.next_id;
		malloc_trim(0);
	}
}

static void
shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
	int			left = ag_client_shutdown_idle();

	if (left == 0)
	{
		ag_log(AG_LOG_INFO, NULL, "all connections closed");
		event_base_loopexit(ag_proxy_g.base, NULL);
		return;
	}
	if (time(NULL) >= shutdown_deadline)
	{
		ag_log(AG_LOG_INFO, NULL, "shutdown_timeout reached, closing %d connection(s)", left);
		event_base_loopexit(ag_proxy_g.base, NULL);
	}
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	ag_proxy   *g = &ag_proxy_g;
	struct timeval tick = {0, 100000};

	switch (sig)
	{
		case SIGHUP:
			if (!g->shutting_down)
				reload();
			break;
		case SIGTERM:
			if (g->shutting_down)
			{
				event_base_loopbreak(g->base);
				break;
			}
			ag_log(AG_LOG_INFO, NULL, "SIGTERM: no new connections; waiting up to %d s for %d connection(s)",
				   g->cfg->shutdown_timeout, g->nclients);
			g->shutting_down = 1;
			ag_listen_close();
			shutdown_deadline = time(NULL) + g->cfg->shutdown_timeout;
			shutdown_timer = event_new(g->base, -1, EV_PERSIST, shutdown_tick, NULL);
			event_add(shutdown_timer, &tick);
			shutdown_tick(-1, 0, NULL);
			break;
		case SIGINT:
			ag_log(AG_LOG_INFO, NULL, "SIGINT: exiting now");
			event_base_loopbreak(g->base);
			break;
	}
}

static int
write_pid_file(const char *path)
{
	FILE	   *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "%ld\n", (long) getpid());
	return fclose(f);
}

/*
 * Descriptors the configuration can use at once: every client socket
 * (max_clients), one PgBouncer socket per logged-in connection
 * (max_connections) and per cancel in flight (max_cancel_connections), the
 * admin connections, the listeners, and a few for files and the JWKS fetch.
 */
static rlim_t
fds_needed(const ag_proxy_config *cfg)
{
	return (rlim_t) cfg->max_clients + (rlim_t) cfg->max_connections +
		(rlim_t) cfg->max_cancel_connections + (rlim_t) cfg->admin_connections + 64;
}

/*
 * Raise the soft open file limit to what the configuration needs (only
 * checked when apply is 0).  Running out of descriptors would refuse
 * connections at random, the identity's own connection or the admin
 * connection alike; refusing to start says why instead.
 */
static int
fd_limit_check(const ag_proxy_config *cfg, int apply, char *err, size_t errlen)
{
	struct rlimit rl;
	rlim_t		want = fds_needed(cfg);

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
	{
		snprintf(err, errlen, "could not read the open file limit: %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
	{
		snprintf(err, errlen,
				 "open file limit %llu is too low: max_clients (%d) + max_connections (%d) + "
				 "max_cancel_connections (%d) + admin_connections (%d) + 64 need %llu; "
				 "raise the limit (ulimit -n, LimitNOFILE= in systemd) or lower those settings",
				 (unsigned long long) rl.rlim_max, cfg->max_clients, cfg->max_connections,
				 cfg->max_cancel_connections, cfg->admin_connections,
				 (unsigned long long) want);
		return -1;
	}
	if (apply && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
	{
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		{
			snprintf(err, errlen, "could not raise the open file limit to %llu: %s",
					 (unsigned long long) want, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-t] -c CONFIG_FILE\n"
			"  -c FILE  configuration file\n"
			"  -t       check the configuration (and the keys and TLS files) and exit\n",
			prog);
}

int
main(int argc, char **argv)
{
	ag_proxy   *g = &ag_proxy_g;
	char		err[512];
	int			check_only = 0;
	int			opt;
	struct event *sigs[3];
	int			signums[3] = {SIGHUP, SIGTERM, SIGINT};
	int			i;
	ag_client  *c;
	uint64_t	seed;

	while ((opt = getopt(argc, argv, "c:th")) != -1)
	{
		switch (opt)
		{
			case 'c':
				g->config_path = optarg;
				break;
			case 't':
				check_only = 1;
				break;
			default:
				usage(argv[0]);
				return 2;
		}
	}
	if (g->config_path == NULL || optind != argc)
	{
		usage(argv[0]);
		return 2;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	g->cfg = ag_proxy_config_load(g->config_path, err, sizeof(err));
	if (g->cfg == NULL)
	{
		ag_log(AG_LOG_FATAL, NULL, "%s", err);
		return 1;
	}
	g->ssl_ctx = ag_tls_context_new(g->cfg, err, sizeof(err));
	if (g->ssl_ctx == NULL)
	{
		ag_log(AG_LOG_FATAL, NULL, "%s", err);
		return 1;
	}
	if (keysource_open(g->cfg, &keys_now, err, sizeof(err)) < 0)
	{
		ag_log(AG_LOG_FATAL, NULL, "could not load signing keys: %s", err);
		return 1;
	}
	g->keys = keys_now.src;
	set_policy(g->cfg);

	/* a jwks_uri is fetched in the background: give it a moment */
	if (!ag_keysource_wait(g->keys, 10000))
	{
		ag_keysource_last_error(g->keys, err, sizeof(err));
		ag_log(check_only ? AG_LOG_FATAL : AG_LOG_WARNING, NULL,
			   "no signing keys yet%s%s; every token is refused until they load",
			   err[0] ? ": " : "", err);
		if (check_only)
			return 1;
	}
	if (check_only && fd_limit_check(g->cfg, 0, err, sizeof(err)) < 0)
	{
		ag_log(AG_LOG_FATAL, NULL, "%s", err);
		return 1;
	}
	ag_logincache_reset();
	if (check_only)
	{
		fprintf(stderr, "configuration file \"%s\" is valid\n", g->config_path);
		ag_logincache_free();
		keysource_close(&keys_now);
		SSL_CTX_free(g->ssl_ctx);
		ag_proxy_config_free(g->cfg);
		return 0;
	}

	if (fd_limit_check(g->cfg, 1, err, sizeof(err)) < 0)
	{
		ag_log(AG_LOG_FATAL, NULL, "%s", err);
		return 1;
	}
	if (RAND_bytes((unsigned char *) &seed, sizeof(seed)) != 1)
		seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
	g->idents = ag_ident_table_new(seed);
	g->cancel_rates = ag_rate_table_new(AG_CANCEL_RATE_SLOTS, seed);
	if (g->idents == NULL || g->cancel_rates == NULL)
	{
		ag_log(AG_LOG_FATAL, NULL, "out of memory");
		return 1;
	}
	g->base = event_base_new();
	if (g->base == NULL)
	{
		ag_log(AG_LOG_FATAL, NULL, "could not create the event loop");
		return 1;
	}
	if (ag_listen_open(g->cfg, err, sizeof(err)) < 0)
	{
		ag_log(AG_LOG_FATAL, NULL, "%s", err);
		return 1;
	}
	if (g->cfg->pid_file && write_pid_file(g->cfg->pid_file) < 0)
	{
		ag_log(AG_LOG_FATAL, NULL, "could not write pid file \"%s\": %s",
			   g->cfg->pid_file, strerror(errno));
		return 1;
	}
	for (i = 0; i < 3; i++)
	{
		sigs[i] = evsignal_new(g->base, signums[i], signal_cb, NULL);
		event_add(sigs[i], NULL);
	}
	trim_timer = event_new(g->base, -1, EV_PERSIST, trim_tick, NULL);
	event_add(trim_timer, &trim_every);
	ag_admin_start();
	ag_log(AG_LOG_INFO, NULL, "agentgate-proxy listening on %s port %d (TLS required), pooler %s/.s.PGSQL.%d",
		   g->cfg->listen_addr, g->cfg->listen_port, g->cfg->pgbouncer_socket_dir,
		   g->cfg->pgbouncer_port);

	event_base_dispatch(g->base);

	while ((c = g->clients) != NULL)
		ag_client_free(c, "proxy exiting");
	ag_admin_stop();
	ag_listen_close();
	if (g->cfg->pid_file)
		unlink(g->cfg->pid_file);
	ag_log(AG_LOG_INFO, NULL, "agentgate-proxy stopped");
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	if (shutdown_timer)
		event_free(shutdown_timer);
	if (trim_timer)
		event_free(trim_timer);
	ag_logincache_free();
	ag_tickets_forget();
	keysource_close(&keys_now);
	SSL_CTX_free(g->ssl_ctx);
	ag_proxy_config_free(g->cfg);
	ag_ident_table_free(g->idents);
	ag_rate_table_free(g->cancel_rates);
	event_base_free(g->base);
	return 0;
}
