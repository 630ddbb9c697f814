/*-------------------------------------------------------------------------
 *
 * connect_config.h
 *	  agentgate-connect configuration file: `key = value` lines.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNECT_CONFIG_H
#define CONNECT_CONFIG_H

#include <stddef.h>

typedef struct ag_connect_config
{
	char	   *listen_socket_dir;	/* 0700, created if missing */
	int			listen_port;		/* names the socket file .s.PGSQL.<port> */
	int			listen_tcp_port;	/* 127.0.0.1; 0 = off */
	char	   *allowed_users;		/* OS users besides our own, comma-separated */
	int			max_clients;
	char	   *proxy_host;
	int			proxy_port;
	char	   *sslmode;			/* verify-full, verify-ca, require */
	char	   *ca_file;
	char	   *tls_server_name;	/* name checked in the certificate */
	char	   *token_file;
	char	   *token_command;
	int			token_refresh_margin;	/* seconds before exp */
	int			command_timeout;
	int			connect_timeout;
	char	   *user;				/* the user name sent upstream (ignored) */
	char	   *database;			/* used when a client sends none */
} ag_connect_config;

/* Load and validate a file; NULL with a reason (file:line) in err. */
extern ag_connect_config *ag_connect_config_load(const char *path,
												 char *err, size_t errlen);
extern void ag_connect_config_free(ag_connect_config *cfg);

#endif							/* CONNECT_CONFIG_H */
