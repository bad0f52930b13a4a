import { inspect } from 'node:util';

/**
 * Bytes that must never be printed. `toString`, JSON and `util.inspect` all render a placeholder,
 * so a config object or key ring that reaches a logger by accident shows nothing of the key.
 */
export class SecretBytes {
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** The raw bytes; call only where the key is used, never to print. */
  reveal(): Uint8Array {
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'SecretBytes([redacted])';
  }
}

/** Decodes standard or URL-safe base64 strictly; returns undefined when the text is not base64. */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) return undefined;
  const bytes = Buffer.from(trimmed.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
  return new Uint8Array(bytes);
}
