/*-------------------------------------------------------------------------
 *
 * proxy_tickets.c
 *	  TLS session tickets: keys made and rotated by the proxy itself.
 *
 * A client that kept the ticket of an earlier connection resumes its TLS
 * session: no certificate, no signature, one round trip less.  Resumption
 * skips only the handshake; the token is sent and checked on every
 * connection as before.  TLS 1.3 resumption still runs an (EC)DHE key
 * exchange (psk_dhe_ke; OpenSSL refuses psk_ke unless told otherwise), so
 * a resumed session keeps forward secrecy for its traffic.
 *
 * The ticket is the session state encrypted (AES-256-CBC) and MACed
 * (HMAC-SHA256) with a key only this process holds, made from the random
 * generator at the first ticket and never written anywhere.  Every
 * tls_ticket_lifetime seconds a new key replaces it; the previous one is
 * kept for one more period only to read tickets it made (they are renewed
 * under the new key), then wiped.  A ticket older than
 * tls_ticket_lifetime is refused anyway (the session timeout), so no
 * ticket outlives two periods, and a restart forgets every key: clients
 * just make a full handshake.  Tickets are not shared between proxy
 * processes.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

typedef struct ticket_key
{
	int			valid;
	time_t		made;
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
} ticket_key;

static ticket_key keys[2];		/* [0] current, [1] previous */

static void
key_wipe(ticket_key *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

/* Make keys[0] current for now; -1 if the random generator failed. */
static int
rotate(time_t now, int lifetime)
{
	ticket_key	k;

	if (keys[0].valid && now - keys[0].made < lifetime)
		return 0;
	if (keys[1].valid && now - keys[1].made >= 2 * (time_t) lifetime)
		key_wipe(&keys[1]);
	memset(&k, 0, sizeof(k));
	if (RAND_priv_bytes(k.name, sizeof(k.name)) != 1 ||
		RAND_priv_bytes(k.aes, sizeof(k.aes)) != 1 ||
		RAND_priv_bytes(k.hmac, sizeof(k.hmac)) != 1)
	{
		key_wipe(&k);
		return -1;
	}
	k.valid = 1;
	k.made = now;
	key_wipe(&keys[1]);
	if (keys[0].valid)
		keys[1] = keys[0];
	keys[0] = k;
	key_wipe(&k);
	return 0;
}

static int
set_mac_key(EVP_MAC_CTX *hctx, const ticket_key *k)
{
	OSSL_PARAM	params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
												  (void *) k->hmac, sizeof(k->hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params);
}

/*
 * OpenSSL's ticket key callback.  enc = 1: a new ticket, under the current
 * key.  enc = 0: find the ticket's key; 0 = unknown (full handshake),
 * 2 = resume and issue a new ticket (under the current key).  Always a new
 * one: TLS 1.3 clients use each ticket once (RFC 8446, 4.6.1 and C.4), so
 * a client that connects again and again needs a fresh ticket from every
 * connection, resumed ones included.  -1 aborts the handshake.
 */
static int
ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
			  EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	time_t		now = time(NULL);
	int			lifetime = ag_proxy_g.cfg->tls_ticket_lifetime;
	int			i;

	if (lifetime <= 0)
		return enc ? -1 : 0;	/* not issued; old ones are not read */
	if (enc)
	{
		if (rotate(now, lifetime) < 0 ||
			RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
			EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, keys[0].aes, iv) != 1 ||
			set_mac_key(hctx, &keys[0]) != 1)
			return -1;
		memcpy(key_name, keys[0].name, 16);
		return 1;
	}
	(void) rotate(now, lifetime);
	for (i = 0; i < 2; i++)
	{
		const ticket_key *k = &keys[i];

		if (!k->valid || CRYPTO_memcmp(key_name, k->name, 16) != 0)
			continue;
		if (now - k->made >= 2 * (time_t) lifetime)
			return 0;
		if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1 ||
			set_mac_key(hctx, k) != 1)
			return -1;
		return 2;
	}
	return 0;
}

void
ag_tickets_setup(SSL_CTX *ctx, int lifetime)
{
	if (lifetime <= 0)
	{
		/* no tickets at all, and no server-side session cache either */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		return;
	}

	/*
	 * Stateless tickets only: the server-side cache would hold every
	 * session in the proxy's memory for nothing.  One ticket per TLS 1.3
	 * handshake is enough for a client that connects again.
	 */
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_timeout(ctx, (long) lifetime);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
}

void
ag_tickets_forget(void)
{
	key_wipe(&keys[0]);
	key_wipe(&keys[1]);
}
