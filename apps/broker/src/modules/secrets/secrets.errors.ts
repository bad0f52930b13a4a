import { defineErrors, errorFrom, type NexusErrorOptions } from '../../errors/nexus-error.ts';

/**
 * Errors of every secret backend. A backend maps its own failures onto these codes and puts the
 * backend's text in `detail` (logged, never sent): a Vault or AWS message can name paths,
 * policies, account ids or ARNs that callers must not see.
 */
export const secretErrors = defineErrors({
  secret_path_invalid: { status: 400, message: 'The secret path is not valid.' },
  secret_value_empty: {
    status: 400,
    message: 'A secret value must not be empty (AWS and GCP cannot store one).',
  },
  secret_too_large: { status: 413, message: 'The secret value is larger than 64 KiB.' },
  secret_conflict: {
    status: 409,
    message: 'The secret was changed concurrently and the write was refused; retry.',
  },
  secret_backend_unavailable: {
    status: 503,
    message: 'The secret backend is unreachable or not ready; retry later.',
  },
  secret_backend_sealed: { status: 503, message: 'The secret backend (Vault/OpenBao) is sealed.' },
  secret_backend_denied: {
    status: 503,
    message: "The secret backend refused the broker's credentials or permissions.",
  },
  secret_backend_error: { status: 502, message: 'The secret backend answered with an error.' },
});

export type SecretErrorCode = keyof typeof secretErrors;

export function secretError(code: SecretErrorCode, options?: NexusErrorOptions) {
  return errorFrom(secretErrors, code, options);
}
