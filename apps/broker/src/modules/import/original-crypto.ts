import { createDecipheriv } from 'node:crypto';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** A problem with what the operator gave the command (exit code 2): never echoes the value. */
export class ImportInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportInputError';
  }
}

/**
 * The original's `ENCRYPTION_KEY`: 32 bytes, written in standard base64. Anything else is refused
 * with a message that says what was expected, never what was given.
 */
export function parseOriginalKey(text: string): Uint8Array {
  const trimmed = text.trim();
  const bytes = Buffer.from(trimmed, 'base64');
  // Buffer.from skips characters outside the alphabet: the round trip refuses them.
  const canonical = bytes.toString('base64');
  if (bytes.length !== 32 || canonical.replace(/=+$/, '') !== trimmed.replace(/=+$/, ''))
    throw new ImportInputError(
      `--encryption-key must be the original's ENCRYPTION_KEY: 32 bytes in standard base64 (44 characters); the value given ${
        bytes.length === 32 ? 'is not valid base64' : `decodes to ${bytes.length} bytes`
      }`,
    );
  return new Uint8Array(bytes);
}

/** Why a stored value could not be opened (the reason only: never the value). */
export class OriginalDecryptError extends Error {}

/**
 * Opens one `tokens.encrypted_data` value as the original wrote it: base64 (standard alphabet) of
 * nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes), AES-256-GCM, no associated data.
 */
export function openOriginal(key: Uint8Array, encoded: string): string {
  const data = Buffer.from(encoded.trim(), 'base64');
  if (data.length < NONCE_BYTES + TAG_BYTES)
    throw new OriginalDecryptError('encrypted_data is too short to be nonce ‖ ciphertext ‖ tag');
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES));
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
  try {
    return Buffer.concat([
      decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    throw new OriginalDecryptError('does not decrypt under this key (AES-256-GCM authentication failed)');
  }
}
