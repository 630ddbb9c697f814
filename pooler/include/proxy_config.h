/*-------------------------------------------------------------------------
 *
 * proxy_config.h
 *	  agentgate-proxy configuration file: `key = value` lines.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROXY_CONFIG_H
#define PROXY_CONFIG_H

#include <stddef.h>

typedef struct ag_proxy_config
{
	char	   *listen_addr;		/* comma-separated list */
	int			listen_port;
	char	   *tls_cert_file;
	char	   *tls_key_file;
	char	   *tls_min_version;	/* TLSv1.2 or TLSv1.3 */
	int			tls_ticket_lifetime;	/* seconds; 0 = no session tickets */
	char	   *pgbouncer_socket_dir;
	int			pgbouncer_port;
	char	   *admin_conninfo;
	int			admin_connections;
	char	   *jwks_file;
	char	   *jwks_uri;
	char	   *jwks_ca_file;
	int			jwks_refresh;
	int			jwks_min_refetch;
	char	   *issuer;
	char	   *audience;
	int			leeway;
	char	   *identity_claim;
	char	   *groups_claim;
	char	   *scope_claim;
	int			exp_grace;
	int			max_clients;
	int			max_connections;
	int			max_connections_per_identity;
	int			max_cancel_connections;
	int			cancel_rate;
	int			cancel_burst;
	int			max_startup_bytes;
	int			max_message_bytes;
	int			max_prepared_statements;	/* named, per connection */
	int			max_prepared_bytes;
	int			auth_timeout;
	int			login_cache_seconds;	/* 0 = no cache of verified tokens */
	int			login_cache_size;
	int			shutdown_timeout;
	int			shared_pool;	/* one PgBouncer pool per database (bool) */
	char	   *pid_file;
} ag_proxy_config;

/* Load and validate a file; NULL with a reason (file:line) in err. */
extern ag_proxy_config *ag_proxy_config_load(const char *path,
											 char *err, size_t errlen);
extern void ag_proxy_config_free(ag_proxy_config *cfg);

/* 1 if two configs need different listening sockets. */
extern int	ag_proxy_config_listen_changed(const ag_proxy_config *a,
										   const ag_proxy_config *b);

#endif							/* PROXY_CONFIG_H */
