import { createPrivateKey, type JsonWebKey, type KeyObject, type webcrypto } from 'node:crypto';

/**
 * The private key of a provider registered with `auth_header: private_key_jwt`, given in the
 * write-only `client_secret` field as a PKCS#8/PKCS#1/SEC1 PEM or a private JWK (JSON). The broker
 * signs its client assertions with it (RFC 7523); the provider knows the public half.
 */
export interface ClientKey {
  readonly key: KeyObject;
  /**
   * The JWK's own `kid`. A PEM key sends none: servers then try every key registered for the
   * client, whereas a made-up kid (say, a thumbprint) is refused by servers that select by kid.
   */
  readonly kid: string | undefined;
  readonly alg: 'RS256' | 'ES256' | 'ES384' | 'EdDSA';
  /** WebCrypto import parameters for this key (what oauth4webapi signs with). */
  readonly webCrypto: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams | webcrypto.Algorithm;
}

export type ClientKeyResult = { ok: true; value: ClientKey } | { ok: false; message: string };

const MAX_TEXT = 16 * 1024;

/** Parses and checks a client private key; messages never include the key material. */
export function parseClientKey(text: string): ClientKeyResult {
  if (text.length > MAX_TEXT) return { ok: false, message: `at most ${MAX_TEXT} characters` };
  let key: KeyObject;
  let kid: string | undefined;
  try {
    const trimmed = text.trim();
    if (trimmed.startsWith('{')) {
      const jwk = JSON.parse(trimmed) as JsonWebKey & { kid?: unknown };
      if (typeof jwk.kid === 'string' && jwk.kid.length > 0 && jwk.kid.length <= 256) kid = jwk.kid;
      key = createPrivateKey({ key: jwk, format: 'jwk' });
    } else {
      key = createPrivateKey({ key: trimmed, format: 'pem' });
    }
  } catch {
    return {
      ok: false,
      message: 'for private_key_jwt, client_secret must be a private key: PEM (PKCS#8) or a private JWK',
    };
  }
  const details = key.asymmetricKeyDetails ?? {};
  let alg: ClientKey['alg'];
  let webCrypto: ClientKey['webCrypto'];
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((details.modulusLength ?? 0) < 2048)
        return { ok: false, message: 'an RSA key needs at least 2048 bits' };
      alg = 'RS256';
      webCrypto = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      break;
    case 'ec':
      if (details.namedCurve === 'prime256v1') {
        alg = 'ES256';
        webCrypto = { name: 'ECDSA', namedCurve: 'P-256' };
      } else if (details.namedCurve === 'secp384r1') {
        alg = 'ES384';
        webCrypto = { name: 'ECDSA', namedCurve: 'P-384' };
      } else {
        return { ok: false, message: 'an EC key must be on P-256 or P-384' };
      }
      break;
    case 'ed25519':
      alg = 'EdDSA';
      webCrypto = { name: 'Ed25519' };
      break;
    default:
      return { ok: false, message: 'the key must be RSA (2048+ bits), EC P-256/P-384 or Ed25519' };
  }
  return { ok: true, value: { key, kid, alg, webCrypto } };
}

/** The key as a non-extractable WebCrypto signing key, for oauth4webapi's PrivateKeyJwt. */
export function toSigningKey(value: ClientKey): webcrypto.CryptoKey {
  return value.key.toCryptoKey(value.webCrypto, false, ['sign']);
}
