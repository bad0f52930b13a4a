import { KeyObject } from 'node:crypto';
import type { JWTVerifyGetKey } from 'jose';

/** The smallest RSA modulus accepted for a signature: below it a key is no key. */
export const MIN_RSA_BITS = 2048;
/** The smallest RSA public exponent accepted (65537, `AQAB`): with e = 1 anyone can "sign". */
const MIN_RSA_EXPONENT = 65_537n;

/**
 * Why a public key cannot be trusted to verify signatures, or undefined. An RSA key with an even
 * or small exponent, or a short modulus, makes forgery easy: with e = 1 the "signature" is the
 * padded hash itself, which anyone can write without the private key.
 */
export function weakKeyProblem(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') return undefined;
  const { modulusLength, publicExponent } = key.asymmetricKeyDetails ?? {};
  if (modulusLength === undefined || modulusLength < MIN_RSA_BITS)
    return `an RSA key needs at least ${MIN_RSA_BITS} bits`;
  if (publicExponent === undefined || publicExponent < MIN_RSA_EXPONENT || publicExponent % 2n === 0n)
    return 'an RSA key needs an odd public exponent e of at least 65537 (AQAB)';
  return undefined;
}

/**
 * `getKey` that refuses the weak keys `weakKeyProblem` names, whatever published them (a key set
 * registered before the check, a JWKS URL, an identity provider): the verification fails as for
 * an unknown key.
 */
export function strongKeysOnly(getKey: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    const key = await getKey(header, token);
    const object =
      key instanceof KeyObject
        ? key
        : key instanceof Uint8Array || !('algorithm' in key)
          ? undefined
          : KeyObject.from(key);
    const problem = object === undefined ? 'not a public key' : weakKeyProblem(object);
    if (problem !== undefined) throw new Error(`verification key refused: ${problem}`);
    return key;
  };
}
