/*-------------------------------------------------------------------------
 *
 * proxy_listen.c
 *	  TCP listeners and the server TLS context.
 *
 * Every TCP listener requires TLS: the password is a bearer token.  The
 * TLS context is rebuilt on SIGHUP; connections already accepted keep the
 * SSL object (and so the context) they started with.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>
#include <openssl/err.h>

#define MAX_LISTENERS 16

static struct evconnlistener *listeners[MAX_LISTENERS];
static int	nlisteners;

static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	char		buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errlen, "%s \"%s\": %s", what, file, buf);
	ERR_clear_error();
}

SSL_CTX *
ag_tls_context_new(const ag_proxy_config *cfg, char *err, size_t errlen)
{
	SSL_CTX    *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
	{
		tls_error(err, errlen, "could not create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, strcmp(cfg->tls_min_version, "TLSv1.3") == 0
								  ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
						SSL_OP_CIPHER_SERVER_PREFERENCE);

	/*
	 * Session tickets for clients that connect again (proxy_tickets.c);
	 * tls_ticket_lifetime = 0 turns them off.
	 */
	ag_tickets_setup(ctx, cfg->tls_ticket_lifetime);

	/*
	 * An idle connection should cost no TLS buffers: OpenSSL frees a
	 * session's read and write buffers (about 34 KiB) whenever they are
	 * empty and allocates them again on the next record.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

	/*
	 * Fast and strong first, with the server's preference: X25519 key
	 * exchange, AES-128-GCM (AES-NI) then ChaCha20-Poly1305 (fast without
	 * it).  TLS 1.2 is limited to forward-secret AEAD suites.  The
	 * certificate may be RSA or ECDSA; an ECDSA P-256 certificate makes
	 * the handshake several times cheaper for the proxy than RSA-2048.
	 */
	if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1 ||
		SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
								 "TLS_AES_256_GCM_SHA384") != 1 ||
		SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM+AES128:ECDHE+CHACHA20:ECDHE+AESGCM:!aNULL") != 1)
	{
		tls_error(err, errlen, "could not set TLS parameters", "");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1)
	{
		tls_error(err, errlen, "could not load certificate", cfg->tls_cert_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
		SSL_CTX_check_private_key(ctx) != 1)
	{
		tls_error(err, errlen, "could not load private key", cfg->tls_key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		  int salen, void *arg)
{
	ag_client_accept(fd, sa, (socklen_t) salen);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	int			i;

	for (i = 0; i < nlisteners; i++)
		evconnlistener_enable(listeners[i]);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	static struct event *resume;
	struct timeval tv = {0, 100000};
	int			e = EVUTIL_SOCKET_ERROR();

	/*
	 * EMFILE and friends: the pending connection stays in the backlog and
	 * would wake us again at once, so pause accepting for 100 ms.
	 */
	ag_log(AG_LOG_WARNING, NULL, "accept failed: %s", evutil_socket_error_to_string(e));
	if (resume == NULL)
		resume = evtimer_new(ag_proxy_g.base, resume_cb, NULL);
	ag_listen_pause();
	evtimer_add(resume, &tv);
}

static int
open_one(const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct addrinfo *ai;
	char		portstr[16];
	int			rc;
	int			opened = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	if (rc != 0)
	{
		snprintf(err, errlen, "could not resolve listen_addr \"%s\": %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next)
	{
		struct evconnlistener *l;

		if (nlisteners >= MAX_LISTENERS)
		{
			snprintf(err, errlen, "too many listen addresses");
			freeaddrinfo(res);
			return -1;
		}
		l = evconnlistener_new_bind(ag_proxy_g.base, accept_cb, NULL,
									LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
									LEV_OPT_CLOSE_ON_EXEC, 1024,
									ai->ai_addr, (int) ai->ai_addrlen);
		if (l == NULL)
		{
			char		name[NI_MAXHOST] = "?";

			getnameinfo(ai->ai_addr, ai->ai_addrlen, name, sizeof(name), NULL, 0,
						NI_NUMERICHOST);
			snprintf(err, errlen, "could not listen on %s port %d: %s", name, port,
					 strerror(errno));
			freeaddrinfo(res);
			return -1;
		}
		evconnlistener_set_error_cb(l, accept_error_cb);
		listeners[nlisteners++] = l;
		opened++;
	}
	freeaddrinfo(res);
	return opened > 0 ? 0 : -1;
}

int
ag_listen_open(const ag_proxy_config *cfg, char *err, size_t errlen)
{
	char	   *list = strdup(cfg->listen_addr);
	char	   *save = NULL;
	char	   *tok;

	if (list == NULL)
		return -1;
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		char	   *end;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*tok == '\0')
			continue;
		if (open_one(tok, cfg->listen_port, err, errlen) < 0)
		{
			free(list);
			ag_listen_close();
			return -1;
		}
	}
	free(list);
	if (nlisteners == 0)
	{
		snprintf(err, errlen, "listen_addr names no address");
		return -1;
	}
	return 0;
}

void
ag_listen_close(void)
{
	int			i;

	for (i = 0; i < nlisteners; i++)
		evconnlistener_free(listeners[i]);
	nlisteners = 0;
}

void
ag_listen_pause(void)
{
	int			i;

	for (i = 0; i < nlisteners; i++)
		evconnlistener_disable(listeners[i]);
}
